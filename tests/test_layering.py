"""The package's imports run one way: face -> core -> outbox -> backends -> keys/codec -> base.

docs/architecture.md draws the same layers. The test reads every module with :mod:`ast`
(nothing is imported) and fails on an import that runs upward, on a cycle, and on a module
nobody placed in a layer.

What counts as an import:

- module-level and function-level (lazy) imports both count, for direction and for cycles:
  a lazy import is still a dependency, it only runs later;
- imports under ``if TYPE_CHECKING:`` do not count: they never run;
- importing ``a.b.c`` is an edge to ``a.b.c`` only, not to the packages ``a`` and ``a.b``
  whose ``__init__`` Python also runs.

The emulator is an island: it imports nothing of sheetcache outside ``sheetcache.emulator``,
and any layer may use it (the Sheets client routes gspread to it; the CLI serves it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sheetcache"

FACE, CORE, OUTBOX, BACKENDS, KEYS, BASE = 6, 5, 4, 3, 2, 1
ISLAND = 0  # the emulator
NAMES = {FACE: "face", CORE: "core", OUTBOX: "outbox", BACKENDS: "backends", KEYS: "keys/codec",
         BASE: "base", ISLAND: "emulator"}  # fmt: skip

#: Top-level modules by layer. Packages are placed by prefix in :func:`layer_of`.
LAYERS: dict[str, int] = {
    "sheetcache": FACE,
    "sheetcache.pydantic_ai": FACE,
    "sheetcache.langchain": FACE,
    "sheetcache.transport": FACE,
    "sheetcache.proxy": FACE,
    "sheetcache._http": FACE,  # the transport and proxy core (sans I/O)
    "sheetcache._demo_agent": FACE,
    "sheetcache._migrate": FACE,
    "sheetcache._cache": CORE,
    "sheetcache._miss": CORE,
    "sheetcache._l1": CORE,
    "sheetcache._flight": CORE,
    "sheetcache._stats": CORE,
    "sheetcache._modes": CORE,
    "sheetcache._answer": CORE,
    "sheetcache._decorator": CORE,
    "sheetcache._explain": CORE,
    "sheetcache._store": CORE,
    "sheetcache._samples": CORE,
    "sheetcache._outbox": OUTBOX,
    "sheetcache._urls": BACKENDS,  # compatibility alias of backends._registry
    "sheetcache._breaker": BACKENDS,
    "sheetcache._keys": KEYS,
    "sheetcache._keys_v1": KEYS,
    "sheetcache._codec": KEYS,
    "sheetcache._cachekey": KEYS,
    "sheetcache._errors": BASE,
    "sheetcache._logging": BASE,
    "sheetcache._savings": BASE,
    "sheetcache._display": BASE,
}

# Violations that exist until the code that owns them is changed (issue 12 names them). An
# entry that no longer occurs fails the test too, so these lists only shrink.
KNOWN: set[tuple[str, str]] = set()
#: Packages whose modules still import each other in a circle: a cycle inside one of them is
#: excused (issue 12 names both), a cycle anywhere else fails.
KNOWN_CYCLE_PACKAGES: set[str] = set()  # issue 12's cycles (cli, sheets._admin) are gone


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    if module in LAYERS:
        return LAYERS[module]
    for prefix, layer in (("sheetcache.cli", FACE), ("sheetcache.backends", BACKENDS),
                          ("sheetcache.emulator", ISLAND)):  # fmt: skip
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str) -> set[str]:
    """The sheetcache modules ``module`` imports, at run time (module level or lazily)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def target(name: str) -> str:
        return name if name in MODULES else name.rpartition(".")[0] or name

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                walk(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.add(full if full in MODULES else source)
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(ast.parse(path.read_text(encoding="utf-8")))
    return {target(name) for name in found if name.split(".")[0] == "sheetcache"} - {module}


GRAPH = {module: imports_of(module) for module in MODULES}


def upward_edges() -> set[tuple[str, str]]:
    bad = set()
    for source, targets in GRAPH.items():
        src = layer_of(source)
        for dest in targets:
            dst = layer_of(dest)
            if src is None or dst is None:
                continue
            if src == ISLAND:
                if dst != ISLAND:
                    bad.add((source, dest))
            elif dst != ISLAND and dst > src:
                bad.add((source, dest))
    return bad


def cycles() -> list[frozenset[str]]:
    """The sets of modules that import each other in a circle (Tarjan's strongly connected
    components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in GRAPH:
                continue
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            components.append(component)

    for node in GRAPH:
        if node not in index:
            connect(node)
    return [frozenset(c) for c in components if len(c) > 1]


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"place these modules in LAYERS in {Path(__file__).name}: {unplaced}"


def test_imports_never_run_upward() -> None:
    bad = upward_edges() - KNOWN
    assert not bad, "\n".join(
        f"{s} ({NAMES[layer_of(s) or 0]}) imports {d} ({NAMES[layer_of(d) or 0]})"
        for s, d in sorted(bad)
    )


def _inside(package: str, modules: frozenset[str]) -> bool:
    return all(m == package or m.startswith(package + ".") for m in modules)


def test_there_are_no_import_cycles() -> None:
    found = cycles()
    new = [sorted(c) for c in found if not any(_inside(p, c) for p in KNOWN_CYCLE_PACKAGES)]
    assert not new, f"import cycles: {new}"
    stale = sorted(p for p in KNOWN_CYCLE_PACKAGES if not any(_inside(p, c) for c in found))
    assert not stale, (
        f"fixed, so remove from KNOWN_CYCLE_PACKAGES in {Path(__file__).name}: {stale}"
    )


def test_known_upward_imports_still_exist() -> None:
    stale = sorted(KNOWN - upward_edges())
    assert not stale, f"fixed, so remove from KNOWN in {Path(__file__).name}: {stale}"


def test_the_emulator_is_an_island() -> None:
    for module, targets in GRAPH.items():
        if layer_of(module) == ISLAND:
            outside = {t for t in targets if layer_of(t) != ISLAND} - {
                d for s, d in KNOWN if s == module
            }
            assert not outside, f"{module} imports {sorted(outside)}"


def test_the_check_sees_a_cycle() -> None:
    GRAPH["sheetcache._keys"].add("sheetcache._cachekey")
    try:
        assert frozenset({"sheetcache._keys", "sheetcache._cachekey"}) in cycles()
    finally:
        GRAPH["sheetcache._keys"].discard("sheetcache._cachekey")


@pytest.mark.parametrize(
    ("source", "dest"),
    [("sheetcache.backends.sqlite", "sheetcache._cache"), ("sheetcache._keys", "sheetcache")],
)
def test_the_check_sees_an_upward_edge(source: str, dest: str) -> None:
    # The checker itself: a made-up upward edge is reported.
    GRAPH[source].add(dest)
    try:
        assert (source, dest) in upward_edges()
    finally:
        GRAPH[source].discard(dest)

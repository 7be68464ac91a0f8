"""The ``sheetcache`` command line, driven through typer's runner on real SQLite files.

Every invocation goes through :func:`run`, which asserts that no output holds a traceback.
Tests that print tables or progress run twice: through a pipe and on an 80-column terminal.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
import socket
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from sheetcache import Cache, Entry
from sheetcache.cli import _ui, app
from sheetcache.cli._emulator import _listen_address

MOVES = re.compile(r"\x1b\[[0-9;?]*[A-HJK]|\r")  # cursor moves and line erases: new frame
STYLES = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07")


def run(
    *args: str,
    code: int | None = 0,
    input: str | None = None,
    terminal: bool = False,
    env: dict[str, str | None] | None = None,
) -> Result:
    """Invoke the CLI at 80 columns (a pipe, or a terminal); never a traceback."""
    base: dict[str, str | None] = {"COLUMNS": "80", "SHEETCACHE_URL": None}
    if terminal:
        base |= {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    result = CliRunner(env=base | (env or {})).invoke(app, list(args), input=input)
    output = result.output + result.stderr
    assert "Traceback" not in output, output
    if code is not None:
        assert result.exit_code == code, output + repr(result.exception)
    return result


def visible_lines(text: str) -> list[str]:
    return [line for line in STYLES.sub("", MOVES.sub("\n", text)).splitlines() if line.strip()]


@pytest.fixture(params=["pipe", "terminal"])
def terminal(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "terminal")


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    with Cache(url) as cache:
        for i in range(3):
            cache.get_or_call(f"question {i}", lambda p: f"answer to {p}", model="gpt-4o")
        cache.get_or_call("question 0", lambda p: "unused", model="gpt-4o")
        cache.get_or_call("other", lambda p: {"json": [1, 2]}, model="claude")
    return url


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_second_run_is_all_hits(tmp_path: Path) -> None:
    out = run("demo", "--url", f"sqlite:///{tmp_path}/demo.db", "--latency", "0", "--no-agent")
    rows = [line for line in out.output.splitlines() if line.strip().startswith("│")]
    first, second = ([cell.strip() for cell in row.strip("│ ").split("│")] for row in rows[:2])
    assert first[0] == "1" and first[2:] == ["0", "24", "0"]  # hits, misses, calls saved
    assert second[0] == "2" and second[2:] == ["24", "0", "24"]
    assert "SIMULATED" in out.output and "24 hits, 24 misses" in out.output


# -- inspection ----------------------------------------------------------------------------


def test_stats_shows_tokens_and_dollars_saved_per_namespace_and_model(
    tmp_path: Path, terminal: bool
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    usage = {"usage": {"model": "gpt-4o", "input_tokens": 100, "output_tokens": 20}}
    with Cache(url) as cache:
        cache.set("q1", "a1", model="gpt-4o")
        cache.set("q2", "a2", model="claude")
        e1, e2 = sorted(cache.entries(), key=lambda e: e.key_parts["model"], reverse=True)
        e1.metadata, e1.hits, e1.namespace = usage, 3, "evals"
        e2.hits = 2
        cache.backend.put_many([e1, e2])
    out = run("stats", "--url", url, terminal=terminal).stdout
    assert re.search(r"tokens saved\s+360\b", out)  # 3 hits x (100 + 20)
    assert re.search(r"hits recorded\s+5\b", out)
    # gpt-4o is priced by genai-prices: 3 x (100 x $2.50 + 20 x $10.00 per million tokens)
    assert re.search(r"evals\s+│\s+1\s+│\s+3\s+│.*│\s+360\s+│\s+\$0\.0014\b", out)
    assert re.search(r"dollars saved\s+\$0\.0014 \+ unknown", out)
    assert re.search(r"claude\s+│\s+1\s+│\s+2\s+│.*│\s+0\s+│\s+unknown", out)
    assert "2 hits on entries with no known price" in out
    tables = [line for line in visible_lines(out) if line[0] in "┏┃┡│└"]
    assert len(tables) == 2 * 6 and all(len(line) <= 80 for line in tables)


def test_ls_is_one_line_per_entry_at_80_columns_and_reads_like_text(
    url: str, terminal: bool
) -> None:
    readable = (
        "Paris is the capital.\n\n--- sheetcache: pydantic-ai response v1. Edit the answer "
        'above; keep this line and below ---\n{"response": {"parts": []}}'
    )
    with Cache(url) as cache:
        cache.backend.put_many(
            [
                Entry(key="a" * 64, value=readable, value_type="pydantic-ai-response",
                      namespace="agents", prompt="Where is Paris? " * 30,
                      key_parts={"model": "openai:gpt-4o"}, created_at=time.time() - 7200),
            ]
        )  # fmt: skip
    out = run("ls", "--url", url, terminal=terminal).stdout
    lines = visible_lines(out)
    assert lines[0].startswith("5 entries in ") and "(from --url)" in lines[0]
    assert lines[1].split()[:5] == ["key", "namespace", "model", "age", "hits"]
    assert len(lines) == 2 + 5 and all(len(line) <= 80 for line in lines[1:])
    agent = next(line for line in lines if line.startswith("aaaaaaaa"))
    assert "agents" in agent and " 2h " in agent and "Paris is the capital." in agent
    assert "--- sheetcache" not in out and "Where is" in agent


def test_show_prints_everything_untruncated(url: str) -> None:
    long_answer = "start " + "x" * 5000 + " THE END"
    with Cache(url) as cache:
        cache.set("long one", long_answer, model="gpt-4o")
        key = cache.key("long one", model="gpt-4o")
    out = run("show", key[:10], "--url", url).output
    assert long_answer in out and "…" not in out
    assert key in out and "unreviewed" in out and '"model": "gpt-4o"' in out
    missing = run("show", "0" * 64, "--url", url, code=1)
    assert "no entry" in missing.stderr


# -- export / import -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_import_round_trip(url: str, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"dump.{fmt}"
    run("export", "--url", url, "--format", fmt, "--output", str(path))
    target = f"sqlite:///{tmp_path}/copy-{fmt}.db"
    out = run("import", str(path), "--url", target).output
    assert "imported 4 entries" in out and "0 lines rejected" in out
    with Cache(url) as a, Cache(target) as b:
        assert sorted(a.entries(), key=lambda e: e.key) == sorted(b.entries(), key=lambda e: e.key)
        assert b.get_or_call("other", lambda p: "x", model="claude") == {"json": [1, 2]}


def test_csv_times_are_iso_8601(url: str) -> None:
    rows = list(csv.reader(io.StringIO(run("export", "--url", url, "--format", "csv").stdout)))
    created = rows[1][rows[0].index("created_at")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", created), created


def test_export_to_stdout_is_jsonl_and_says_how_many_on_stderr(url: str) -> None:
    result = run("export", "--url", url)
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and {"key", "value", "prompt", "hits", "metadata"} <= set(lines[0])
    assert "exported 4 entries" in result.stderr


def _export_line(url: str) -> dict[str, object]:
    """The first exported entry holding a plain text answer."""
    lines = (orjson.loads(line) for line in run("export", "--url", url).stdout.splitlines())
    return dict(next(e for e in lines if e["value_type"] == "str"))


def test_a_bad_value_type_is_rejected_and_never_replaces_the_entry(
    url: str, tmp_path: Path
) -> None:
    good = _export_line(url)
    path = tmp_path / "bad.jsonl"
    lines = [
        good | {"value_type": "nonsense"},
        good | {"value_type": "json", "value": "{not json"},
        good | {"metadata": "usage"},
        good | {"status": "maybe"},
        {"key": "short", "value": "x"},
    ]
    path.write_text("\n".join(orjson.dumps(x).decode() for x in lines) + "\nnot json\n")
    result = run("import", str(path), "--url", url, "--overwrite", code=1)
    for n, reason in [(1, "nonsense"), (2, "does not decode as 'json'"), (3, "metadata"),
                      (4, "status"), (5, "64 lowercase hex"), (6, "not JSON")]:  # fmt: skip
        assert re.search(rf"rejected line {n}: .*{re.escape(reason)}", result.stderr), result.stderr
    assert "imported 0 entries" in result.stdout and "6 lines rejected" in result.stdout
    with Cache(url) as cache:
        kept = cache.backend.get_many([str(good["key"])])[str(good["key"])]
    assert (kept.value, kept.value_type) == (good["value"], good["value_type"])


def test_import_keeps_existing_entries_unless_overwrite(url: str, tmp_path: Path) -> None:
    good = _export_line(url)
    path = tmp_path / "edit.jsonl"
    path.write_text(orjson.dumps(good | {"value": "EDITED"}).decode() + "\n")
    out = run("import", str(path), "--url", url).output
    assert "imported 0 entries" in out and "kept 1 existing entry" in out
    with Cache(url) as cache:
        assert cache.backend.get_many([str(good["key"])])[str(good["key"])].value != "EDITED"
    assert "imported 1 entry " in run("import", str(path), "--url", url, "--overwrite").output
    with Cache(url) as cache:
        assert cache.backend.get_many([str(good["key"])])[str(good["key"])].value == "EDITED"


@pytest.mark.parametrize("data", [b"\xff\xfe\x00b\x00i\x00n", b'{"key": "\xe9t\xe9"}\n'])
def test_a_binary_or_non_utf8_file_is_one_clear_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "dump.jsonl"
    path.write_bytes(data)
    target = tmp_path / "never.db"
    result = run("import", str(path), "--url", f"sqlite:///{target}", code=1)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is not a UTF-8 text file" in errors[0]
    assert not target.exists()  # nothing was opened, let alone written


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["stats"], ["ls"], ["export"], ["show", "abcdef"]])
def test_read_commands_on_an_unreachable_store_fail_loudly(command: list[str]) -> None:
    pytest.importorskip("redis")
    down = f"redis://127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    result = run(*command, env={"SHEETCACHE_URL": down}, code=1)
    assert time.monotonic() - started < 30  # the connect timeout, not a hang
    assert f"{down} (from $SHEETCACHE_URL)" in result.stderr
    assert "Check that the server is running" in result.stderr
    assert "exported 0" not in result.output + result.stderr


def test_debug_lets_the_traceback_through() -> None:
    pytest.importorskip("redis")
    down = f"redis://127.0.0.1:{closed_port()}/0"
    result = CliRunner().invoke(app, ["--debug", "stats", "--url", down])
    assert result.exit_code != 0 and type(result.exception).__module__.startswith("redis")
    bad_url = CliRunner().invoke(app, ["--debug", "ls", "--url", "nosuch://x"])
    assert type(bad_url.exception).__name__ == "ConfigError"


def test_a_file_that_cannot_be_written_is_named(url: str, tmp_path: Path) -> None:
    result = run("export", "--url", url, "--output", str(tmp_path / "no" / "dir.jsonl"), code=1)
    assert "No such file or directory" in result.stderr and "no/dir.jsonl" in result.stderr
    assert "server" not in result.stderr


def test_a_bad_url_says_where_it_came_from() -> None:
    from_env = run("stats", env={"SHEETCACHE_URL": "nosuch://x"}, code=1).stderr
    assert "nosuch://x (from $SHEETCACHE_URL)" in from_env and "unknown cache URL" in from_env
    from_option = run("ls", "--url", "nosuch://y", code=1).stderr
    assert "nosuch://y (from --url)" in from_option


def test_a_broken_default_cache_names_the_fix_unwrapped_and_quoted(
    tmp_path: Path, terminal: bool
) -> None:
    home = tmp_path / "my cache dir"
    home.mkdir()
    (home / "cache.db").write_bytes(b"not a database at all " * 2000)
    env: dict[str, str | None] = {"SHEETCACHE_DIR": str(home)}
    path = str(home / "cache.db")
    for command in (["doctor"], ["stats"]):
        result = run(*command, env=env, code=1, terminal=terminal)
        text = result.output + result.stderr
        fix = next(line for line in text.splitlines() if line.strip().startswith("mv "))
        assert shlex.split(fix) == ["mv", path, path + ".broken"]


def test_doctor_finds_a_default_cache_corrupted_mid_way(tmp_path: Path) -> None:
    env: dict[str, str | None] = {"SHEETCACHE_DIR": str(tmp_path)}
    with Cache(f"sqlite:///{tmp_path}/cache.db") as cache:
        for i in range(400):
            cache.set(f"question {i}", "answer " * 100, model="m")
    assert "sound sheetcache database" in run("doctor", env=env).output
    path = tmp_path / "cache.db"
    data = bytearray(path.read_bytes())
    data[8192:40960] = b"\xa5" * (40960 - 8192)  # pages 3 to 10 (of 4 KB) overwritten
    path.write_bytes(bytes(data))
    stats = run("stats", env=env, code=1).stderr  # reading it: one message, doctor named
    assert "malformed" in stats and ("sheetcache doctor --url" in stats or "\n  mv " in stats)
    out = run("doctor", env=env, code=1).output
    assert "✗ file:" in out
    fix = next(line for line in out.splitlines() if line.strip().startswith("mv "))
    assert shlex.split(fix) == ["mv", str(path), f"{path}.broken"]


def test_prune_and_clear_speak_plainly(url: str) -> None:
    with Cache(url) as cache:
        old = next(iter(cache.entries()))
        old.created_at = time.time() - 40 * 86400
        cache.backend.put_many([old])
    assert "deleted 1 entry from" in run("prune", "--older-than", "30d", "--url", url).output
    for bad in ("soon", "0d"):
        assert "30d" in run("prune", "--older-than", bad, "--url", url, code=2).output
    nothing = run("clear", "--url", url, "--namespace", "nosuch")  # no question asked
    assert "nothing to delete" in nothing.output and "?" not in nothing.output
    refused = run("clear", "--url", url, input="n\n", code=1)
    assert "Delete 3 entries from" in refused.output and "nothing deleted" in refused.output
    assert "deleted 3 entries" in run("clear", "--url", url, "--yes").output


# -- conventions ---------------------------------------------------------------------------

STORE_COMMANDS = ["demo", "stats", "ls", "show", "export", "import", "prune", "clear",
                  "init", "doctor", "compact", "migrate", "emulator"]  # fmt: skip


@pytest.mark.parametrize("command", STORE_COMMANDS)
def test_every_store_command_takes_url_and_help_is_clean(command: str) -> None:
    out = run(command, "--help").output
    assert "--url URL" in out and "<bool>" not in out and "<str>" not in out and "<int" not in out
    assert all(len(line) <= 80 for line in out.splitlines())


def test_version() -> None:
    assert re.fullmatch(r"sheetcache \S+\n", run("--version").output)


def test_init_and_doctor_honour_sheetcache_url(tmp_path: Path) -> None:
    path = tmp_path / "env.db"
    env: dict[str, str | None] = {"SHEETCACHE_URL": f"sqlite:///{path}"}
    assert "ready" in run("init", env=env).output and path.exists()
    doctor = run("doctor", env=env).output
    assert f"{path} (from $SHEETCACHE_URL)" in doctor and "✓ reads: 0 entries" in doctor
    compact = run("compact", env=env, code=1).stderr
    assert "(from $SHEETCACHE_URL) is not a sheets:// URL" in compact


def test_migrate_takes_its_source_from_url(url: str, tmp_path: Path) -> None:
    dst = f"sqlite:///{tmp_path}/dst.db"
    out = run("migrate", "--url", url, dst).output
    assert "copied 4" in out and "(from --url)" in out
    assert "skipped 4" in run("migrate", dst, env={"SHEETCACHE_URL": url}).output


def test_migrate_progress_fits_80_columns_on_a_terminal(url: str, tmp_path: Path) -> None:
    deep = tmp_path / ("a-very-long-folder-name-" * 4)
    deep.mkdir()
    result = run("migrate", url, f"sqlite:///{deep}/destination.db", terminal=True)
    frames = visible_lines(result.stderr)
    assert any("->" in line and "4/4" in line for line in frames), frames
    assert all(len(line) <= 80 for line in frames)


def test_progress_through_a_pipe_is_a_plain_line_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_ui, "PLAIN_PROGRESS_EVERY", 0.05)
    _ui.state.reset()  # stderr: the test's capture, not a terminal
    lines: list[str] = []
    monkeypatch.setattr(_ui, "err", lines.append)
    with _ui.progress("exporting", 4) as task:
        task.advance(3)
        deadline = time.monotonic() + 10
        while not lines and time.monotonic() < deadline:  # a blocked read still reports
            time.sleep(0.01)
    assert lines and lines[0].startswith("exporting: 3 of 4 entries, ")
    lines.clear()
    with _ui.waiting("opening sheets://ID/tab"):  # a slow open says it is alive too
        deadline = time.monotonic() + 10
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
    assert lines and lines[0].startswith("opening sheets://ID/tab... ")
    assert all("\x1b" not in line for line in lines)


def test_emulator_listens_where_the_url_says(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _listen_address("http://127.0.0.1:9999") == ("127.0.0.1", 9999)
    monkeypatch.setenv("SHEETCACHE_URL", "sheets://ID/tab?endpoint=http://localhost:8111")
    assert _listen_address(None) == ("localhost", 8111)
    monkeypatch.setenv("SHEETCACHE_URL", "redis://localhost:6379/0")
    assert _listen_address(None) is None  # another store: --host/--port apply


def test_demo_on_the_sheets_emulator_shows_the_reviewer_rows() -> None:
    pytest.importorskip("gspread")
    out = " ".join(run("demo", "--sheets-emulator", "--latency", "0", "--no-agent").output.split())
    assert "Google Sheet served by the bundled emulator" in out
    assert "What a reviewer sees: 24 rows" in out
    assert "What is the capital" in out and "Paris" in out
    # 24 misses went out as batched appends, not one request each.
    writes = int(out.split(" of them writes")[0].rsplit(" ", 1)[1])
    assert writes <= 4


def test_cli_modules_import_one_way() -> None:
    """No command module imports the ``sheetcache.cli`` package, and there are no cycles."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "sheetcache" / "cli"
    edges: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        name = "sheetcache.cli" if path.stem == "__init__" else f"sheetcache.cli.{path.stem}"
        targets = edges.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("sheetcache.cli")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "sheetcache.cli"
            ):
                base = node.module or ""
                # `from sheetcache.cli import _x` names a submodule; anything else the package.
                subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in edges
                        or (folder / f"{a.name}.py").exists()}  # fmt: skip
                targets |= subs if base == "sheetcache.cli" and subs else {base}
    for name, targets in edges.items():
        if name not in {"sheetcache.cli", "sheetcache.cli.__main__"}:  # the two entry points
            assert "sheetcache.cli" not in targets, f"{name} imports the cli package"

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, " -> ".join([*path, node])
        for nxt in edges.get(node, ()):
            visit(nxt, [*path, node])

    for start in edges:
        visit(start, [])


def test_hostile_text_round_trips_and_a_lone_surrogate_is_rejected(tmp_path: Path) -> None:
    src, dst = f"sqlite:///{tmp_path}/src.db", f"sqlite:///{tmp_path}/dst.db"
    hostile = "NUL \x00 inside, emoji 🙂, a formula =1+1\n" + "x" * 1_000_000
    with Cache(src) as cache:
        cache.set("hostile prompt \x00 ✓", hostile, model="m")
    path = tmp_path / "dump.jsonl"
    run("export", "--url", src, "--output", str(path))
    surrogate = path.read_text(encoding="utf-8").replace("hostile prompt", "\\ud800 prompt")
    path.write_text(path.read_text(encoding="utf-8") + surrogate, encoding="utf-8")
    result = run("import", str(path), "--url", dst, code=1)
    assert "rejected line 2" in result.stderr and "imported 1 entry" in result.stdout
    with Cache(dst) as cache:
        assert cache.get("hostile prompt \x00 ✓", model="m") == hostile

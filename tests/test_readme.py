"""README and docs tell the truth: their Python snippets run as written.

Snippets that need a service we can't start here (a real Google Sheet, a Redis server at a
fixed address, an OpenAI key) are only compiled; every other snippet of a file runs, in
order and in one namespace (a page reads top to bottom), in a fresh interpreter whose cache
files live in a temporary folder. The emulator snippets run: the emulator is bundled.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CASSETTES = ROOT / ".." / "shared" / "sheets-cassettes"

#: Text that marks a snippet as needing an outside service (or a placeholder for one).
EXTERNAL = ("SPREADSHEET_ID", "sheets://ID", "1AbCdEf", "redis://", "rediss://", "redis+unix",
            "openai:", "127.0.0.1:8765", "PASSWORD")  # fmt: skip

FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def snippets(page: Path) -> list[tuple[int, str, bool]]:
    """(line, code, runnable) for every ```python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        indent = len(match[1])
        code = "\n".join(line[indent:] for line in match[2].splitlines())
        line = text[: match.start()].count("\n") + 2
        # Comments may name services (alternatives shown for reading); only code counts.
        live = "\n".join(re.sub(r"(^|\s)#.*", "", ln) for ln in code.splitlines())
        found.append((line, code, not any(marker in live for marker in EXTERNAL)))
    return found


def test_the_pages_have_snippets_and_most_of_them_run() -> None:
    found = [s for page in PAGES for s in snippets(page)]
    assert len(found) >= 10
    assert sum(runnable for _, _, runnable in found) >= 6


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_snippets_compile(page: Path) -> None:
    for line, code, _ in snippets(page):
        compile(code, f"{page.name}:{line}", "exec")


_RUNNER = """
import sys, traceback
namespace = {"__name__": "__main__"}
for label, code in SNIPPETS:
    try:
        exec(compile(code, label, "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        print("SNIPPET FAILED: " + label, file=sys.stderr)
        sys.exit(1)
"""


@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(r for _, _, r in snippets(p))], ids=lambda p: p.name
)
def test_snippets_run_as_written(page: Path, tmp_path: Path) -> None:
    runnable = [(f"{page.name}:{line}", code) for line, code, ok in snippets(page) if ok]
    script = f"SNIPPETS = {runnable!r}\n{_RUNNER}"
    env = {"SHEETCACHE_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_readme_quick_start_scripts_exist_and_ci_runs_the_same_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert "pip install -e '.[sheets]'" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^bash scripts/test\.sh\b", ci, re.M)
    venv = (ROOT / "scripts" / "_venv.sh").read_text(encoding="utf-8")
    install = venv.index("pip install")
    assert "echo" in venv[:install], "the quick start must say what it installs before it does"


def test_the_conformance_command_in_the_readme_runs_on_the_given_cassettes() -> None:
    if not CASSETTES.is_dir():
        pytest.skip("no recorded cassettes beside the repo (shared/sheets-cassettes)")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if "sheetcache.emulator.conformance" in ln)
    argv = shlex.split(line.replace("PATH/TO/CASSETTES", str(CASSETTES)))
    argv[0] = sys.executable  # the README says .venv/bin/python: this venv's interpreter
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    count = len(list(CASSETTES.glob("*.json")))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == f"{count} passed, 0 failed"


def test_the_package_builds_and_passes_twine_check(tmp_path: Path) -> None:
    pytest.importorskip("build")
    pytest.importorskip("twine")
    out = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out),
         str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    files = sorted(out.iterdir())
    assert sorted(f.suffix for f in files) == [".gz", ".whl"]
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2

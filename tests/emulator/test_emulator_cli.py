"""``sheetcache emulator`` in a child process, driven by gspread over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gspread
import pytest

from sheetcache.emulator import routed_client


def _client(url: str) -> gspread.Client:
    return routed_client(url, user="cli-user", timeout=30)


def test_serves_until_terminated_and_state_survives_a_restart(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    state = tmp_path / "emulator-state.json"
    first = serve("--port", "0", "--no-quota", "--state", str(state))
    gc = _client(first.url)
    try:
        sh = gc.create("persistent")
        sh.sheet1.update([["key", "value"], ["k1", "0042"]], "A1")
        sh.add_worksheet("second", rows=5, cols=5).update([["x"]], "B2")
        sid = sh.id
    finally:
        gc.http_client.session.close()
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=60) == 0
    assert "Emulator stopped." in first.output()
    assert state.exists()

    second = serve("--port", "0", "--no-quota", "--state", str(state))
    gc = _client(second.url)
    try:
        again = gc.open_by_key(sid)
        assert again.sheet1.get_values() == [["key", "value"], ["k1", "0042"]]
        assert again.worksheet("second").get_values("A1:B2") == [["", ""], ["", "x"]]
        assert [f["name"] for f in gc.list_spreadsheet_files()] == ["persistent"]
    finally:
        gc.http_client.session.close()


def test_fault_and_quota_flags(serve: Callable[..., Any]) -> None:
    served = serve(
        "--port", "0", "--quota-per-minute", "2", "--fail-next", "1", "--fail-status", "500"
    )
    gc = _client(served.url)
    try:
        with pytest.raises(gspread.exceptions.APIError, match="500"):
            gc.create("first try fails")
        sh = gc.create("second works")  # Drive create, then one read of the metadata
        sh.fetch_sheet_metadata()
        with pytest.raises(gspread.exceptions.APIError, match="Quota exceeded"):
            sh.fetch_sheet_metadata()
    finally:
        gc.http_client.session.close()


def test_a_foreign_state_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    state = tmp_path / "not-ours.json"
    state.write_text('{"hello": "world"}')
    root = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-m", "sheetcache.cli", "emulator", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    assert result.returncode == 2
    assert "not a sheetcache emulator state file" in result.stderr
    assert state.read_text() == '{"hello": "world"}'


def _imported(stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "|" in line}


def test_python_m_emulator_runs_on_its_own(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    bare = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import sheetcache"],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    )  # fmt: skip
    package = _imported(bare.stderr)  # what `import sheetcache` itself loads (the front's part)
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "sheetcache.emulator", "--port", "0",
         "--no-quota"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split("serving on ", 1)[1].split()[0]
        gc = _client(url)
        try:
            assert gc.create("standalone").sheet1.title == "Sheet1"
        finally:
            gc.http_client.session.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    ours = {m for m in _imported(err) if m.startswith("sheetcache.")}
    outside = {m for m in ours if not m.startswith("sheetcache.emulator")}
    assert outside <= package, outside - package  # nothing beyond the package's own __init__
    assert not {m for m in ours if m.startswith(("sheetcache.cli", "sheetcache.backends.sheets"))}


def test_emulator_modules_import_only_the_emulator() -> None:
    import ast

    package = Path(__file__).resolve().parents[2] / "sheetcache" / "emulator"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("sheetcache"):
                    assert name.startswith("sheetcache.emulator"), f"{path.name} imports {name}"

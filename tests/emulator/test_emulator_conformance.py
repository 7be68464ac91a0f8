"""The conformance runner against gspread's recorded traffic with the real API."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from sheetcache.emulator.conformance import run_directories


def test_every_shared_cassette_passes(cassettes: Path) -> None:
    out = io.StringIO()
    status = run_directories([cassettes], out=out)
    lines = out.getvalue().splitlines()
    count = len(list(cassettes.glob("*.json")))
    assert lines[-1] == f"{count} passed, 0 failed", out.getvalue()
    assert status == 0
    assert len(lines) == count + 1 and all(line.startswith("PASS ") for line in lines[:-1])


def test_a_cassette_the_emulator_disagrees_with_fails(cassettes: Path, tmp_path: Path) -> None:
    recorded = json.loads((cassettes / "WorksheetTest.test_batch_get.json").read_text())
    for interaction in recorded["interactions"]:
        body = interaction["response"]["body"]
        if isinstance(body, dict) and '"valueRanges"' in (body.get("string") or ""):
            body["string"] = body["string"].replace('"B4"', '"not what Google said"')
    (tmp_path / "tampered.json").write_text(json.dumps(recorded))
    out = io.StringIO()
    assert run_directories([tmp_path], out=out) == 1
    first, last = out.getvalue().splitlines()
    assert first.startswith("FAIL tampered: #") and "valueRanges" in first
    assert last == "0 passed, 1 failed"


def test_runs_as_a_module(cassettes: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    (one / "c.json").write_text((cassettes / "WorksheetTest.test_update_title.json").read_text())
    root = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-m", "sheetcache.emulator.conformance", str(one)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "1 passed, 0 failed"

"""The ``sheetcache`` command line, driven through typer's runner on real SQLite files."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from sheetcache import Cache
from sheetcache.cli import app

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    with Cache(url) as cache:
        for i in range(3):
            cache.get_or_call(f"question {i}", lambda p: f"answer to {p}", model="gpt-4o")
        cache.get_or_call("question 0", lambda p: "unused", model="gpt-4o")
        cache.get_or_call("other", lambda p: {"json": [1, 2]}, model="claude")
    return url


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def invoke(*args: str, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_demo_second_run_is_all_hits(tmp_path: Path) -> None:
    out = invoke("demo", "--url", f"sqlite:///{tmp_path}/demo.db", "--latency", "0", "--no-agent")
    assert "simulated" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("│")]
    first, second = ([cell.strip() for cell in row.strip("│ ").split("│")] for row in rows[:2])
    assert first[0] == "1" and first[2:] == ["0", "24", "0"]  # hits, misses, calls saved
    assert second[0] == "2" and second[2:] == ["24", "0", "24"]


def test_stats(url: str) -> None:
    out = invoke("stats", "--url", url)
    assert "entries" in out and "4" in out
    assert "hits recorded" in out


def test_ls_and_show(url: str) -> None:
    out = invoke("ls", "--url", url)
    assert "question 1" in out and "gpt-4o" in out and "claude" in out
    with Cache(url) as cache:
        key = cache.key("question 0", model="gpt-4o")
    out = invoke("show", key[:10], "--url", url)
    assert "answer to question 0" in out and "unreviewed" in out
    assert "1 (last" in out  # the hit recorded by the fixture
    missing = runner.invoke(app, ["show", "0" * 64, "--url", url])
    assert missing.exit_code == 1 and "no entry" in missing.output


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_import_round_trip(url: str, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"dump.{fmt}"
    invoke("export", "--url", url, "--format", fmt, "--output", str(path))
    target = f"sqlite:///{tmp_path}/copy-{fmt}.db"
    out = invoke("import", str(path), "--url", target)
    assert "imported 4 entries" in flat(out)
    with Cache(url) as a, Cache(target) as b:
        assert sorted(a.entries(), key=lambda e: e.key) == sorted(b.entries(), key=lambda e: e.key)
        assert b.get_or_call("other", lambda p: "x", model="claude") == {"json": [1, 2]}


def test_export_to_stdout_is_jsonl(url: str) -> None:
    out = invoke("export", "--url", url)
    lines = [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == 4 and {"key", "value", "prompt", "hits"} <= set(lines[0])


def test_import_reports_bad_lines_without_loading_them(tmp_path: Path, url: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = next(
        line for line in invoke("export", "--url", url).splitlines() if line.startswith("{")
    )
    path.write_text(good + "\nnot json\n" + '{"key": "short", "value": "x"}\n')
    target = f"sqlite:///{tmp_path}/t.db"
    result = runner.invoke(app, ["import", str(path), "--url", target])
    assert result.exit_code == 1
    assert "imported 1 entries" in flat(result.output) and "2 lines skipped" in flat(result.output)
    assert "line 2" in result.output


def test_prune_older_than(url: str) -> None:
    with Cache(url) as cache:
        old = next(iter(cache.entries()))
        old.created_at = time.time() - 40 * 86400
        cache.backend.put_many([old])
    assert "deleted 1 entries" in flat(invoke("prune", "--older-than", "30d", "--url", url))
    bad = runner.invoke(app, ["prune", "--older-than", "soon", "--url", url])
    assert bad.exit_code != 0 and "30d" in bad.output


def test_clear_asks_first(url: str) -> None:
    result = runner.invoke(app, ["clear", "--url", url], input="n\n")
    assert result.exit_code == 1 and "nothing deleted" in result.output
    with Cache(url) as cache:
        assert cache.backend.count() == 4
    assert "deleted 4 entries" in flat(invoke("clear", "--url", url, "--yes"))


def test_bad_url_is_one_clear_line() -> None:
    result = runner.invoke(app, ["stats", "--url", "nosuch://x"])
    assert result.exit_code == 2
    assert "unknown cache URL" in flat(result.output) and "Traceback" not in result.output


def test_demo_on_the_sheets_emulator_shows_the_reviewer_rows() -> None:
    pytest.importorskip("gspread")
    out = flat(invoke("demo", "--sheets-emulator", "--latency", "0", "--no-agent"))
    assert "Google Sheet served by the bundled emulator" in out
    assert "What a reviewer sees: 24 rows" in out
    assert "What is the capital" in out and "Paris" in out
    # 24 misses went out as batched appends, not one request each.
    writes = int(out.split(" of them writes")[0].rsplit(" ", 1)[1])
    assert writes <= 4

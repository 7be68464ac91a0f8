"""`sheetcache migrate` and sheetcache._migrate: copies between real stores, streamed,
resumable, failures counted (SQLite files, a real redis-server, the Sheets emulator)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from backend_contract import entry
from redis_fixtures import (  # noqa: F401 - fixtures
    new_redis_server,
    redis_server_fixture,
    redis_url_fixture,
)
from redis_server import RedisServer
from typer.testing import CliRunner

from sheetcache import Cache, ConfigError, Entry, SQLiteBackend
from sheetcache._keys import legacy_key
from sheetcache._migrate import migrate, migrate_urls, parse_since
from sheetcache._urls import backend_from_url
from sheetcache.backends.base import Backend
from sheetcache.cli import app

NOW = time.time()


def varied_entries(n: int = 30) -> list[Entry]:
    """Entries that use every field, in two namespaces, created over n days."""
    out = []
    for i in range(n):
        e = entry(i, namespace="a" if i % 3 else "b")
        e.created_at = NOW - (n - i) * 86400 + 0.123456789
        e.hits = i * 7
        e.last_hit_at = None if i % 4 == 0 else NOW - i * 3.5
        e.duration = None if i % 5 == 0 else 0.1 * i + 1e-9
        e.expires_at = None if i % 2 else NOW + 86400 * (i + 1) + 0.5
        e.status = ("", "approved", "rejected")[i % 3]
        e.note = "" if i % 2 else f"checked by reviewer {i}; ünïcode ✓"
        e.value_type = "json" if i % 6 == 0 else "str"
        e.value = f'{{"n": {i}}}' if i % 6 == 0 else e.value
        if i % 7 == 0:
            e.prompt = f"plain text prompt {i}"
            e.key_parts = {"model": "m", "tools": [{"name": "t", "schema": {"x": [1, 2.5, None]}}]}
        out.append(e)
    return out


def all_of(backend: Backend) -> dict[str, Entry]:
    return {e.key: e for e in backend.iter_entries()}


_TIMES = ("created_at", "expires_at", "last_hit_at")


def assert_same_entries(
    got: dict[str, Entry], expected: dict[str, Entry], *, time_tolerance: float = 0.0
) -> None:
    """Equal entries (times within ``time_tolerance`` s), with a message per field."""
    assert set(got) == set(expected)

    def same(name: str, a: object, b: object) -> bool:
        if name in _TIMES and a is not None and b is not None:
            return abs(a - b) <= time_tolerance  # type: ignore[operator]
        return a == b

    diffs = [
        f"{key[:8]}.{name}: {getattr(got[key], name)!r} != {getattr(e, name)!r}"
        for key, e in expected.items()
        for name in Entry.__dataclass_fields__
        if not same(name, getattr(got[key], name), getattr(e, name))
    ]
    assert not diffs, "\n".join(diffs)


@pytest.fixture
def source(tmp_path: Path) -> SQLiteBackend:
    b = SQLiteBackend(tmp_path / "source.db")
    b.put_many(varied_entries())
    b.close()
    return b


def test_sqlite_to_redis_to_sqlite_round_trips_every_field(
    source: SQLiteBackend, redis_url: str, tmp_path: Path
) -> None:
    back = f"sqlite:///{tmp_path / 'back.db'}"
    first = migrate_urls(source.url, redis_url, batch_size=7)
    assert (first.copied, first.skipped, first.failed, first.ok) == (30, 0, 0, True)
    second = migrate_urls(redis_url, back, batch_size=7)
    assert (second.copied, second.failed) == (30, 0)
    with (
        SQLiteBackend(tmp_path / "back.db") as got,
        SQLiteBackend(tmp_path / "source.db") as src,
        backend_from_url(redis_url) as redis_copy,
    ):
        assert_same_entries(all_of(got), all_of(src))  # exactly: floats to the last bit
        assert_same_entries(all_of(redis_copy), all_of(src))


def test_running_again_skips_everything(source: SQLiteBackend, redis_url: str) -> None:
    assert migrate_urls(source.url, redis_url).copied == 30
    again = migrate_urls(source.url, redis_url)
    assert (again.copied, again.skipped, again.failed) == (0, 30, 0)


def test_an_interrupted_copy_resumes(source: SQLiteBackend, redis_url: str) -> None:
    with backend_from_url(source.url) as src, backend_from_url(redis_url) as dst:
        done = [e for e in src.iter_entries() if e.namespace == "a"]
        dst.put_many(done)  # what the first run copied before it was stopped
        # A reviewer changed one copied entry meanwhile: resuming must not overwrite it.
        dst.put_many([Entry.from_dict({**done[0].to_dict(), "status": "rejected", "note": "no"})])
        resumed = migrate(src, dst, batch_size=4)
        assert (resumed.copied, resumed.skipped) == (30 - len(done), len(done))
        assert dst.count() == 30
        kept = dst.get_many([done[0].key])[done[0].key]
        assert (kept.status, kept.note) == ("rejected", "no")


def test_namespace_and_since_select(source: SQLiteBackend, tmp_path: Path) -> None:
    cutoff = NOW - 10 * 86400  # the last 10 of the 30 days
    dst_url = f"sqlite:///{tmp_path / 'dst.db'}"
    result = migrate_urls(source.url, dst_url, namespace="a", since=cutoff)
    with SQLiteBackend(tmp_path / "source.db") as src:
        expected = {
            e.key for e in src.iter_entries("a") if e.created_at >= cutoff and not e.is_expired()
        }
    assert 0 < len(expected) < 20
    assert result.copied == len(expected) and result.filtered == 20 - len(expected)
    with SQLiteBackend(tmp_path / "dst.db") as dst:
        assert set(all_of(dst)) == expected


def test_expired_entries_are_not_copied(tmp_path: Path, redis_url: str) -> None:
    with SQLiteBackend(tmp_path / "s.db") as src:
        src.put_many([entry(1, expires_at=NOW - 60), entry(2)])
        with backend_from_url(redis_url) as dst:
            result = migrate(src, dst)
            assert (result.copied, result.expired) == (1, 1)
            assert set(all_of(dst)) == {entry(2).key}


def test_a_failing_destination_is_counted_not_a_crash(source: SQLiteBackend) -> None:
    server = new_redis_server()
    url = f"{server.url}/0?socket_timeout=1"
    server.close()  # nothing listens there any more
    result = migrate_urls(source.url, url, batch_size=10)
    assert (result.copied, result.failed, result.ok) == (0, 30, False)
    assert len(result.errors) == 3 and "ConnectionError" in result.errors[0]


def test_parse_since() -> None:
    assert (
        parse_since("2024-05-01T00:00:00Z") == datetime(2024, 5, 1, tzinfo=timezone.utc).timestamp()
    )
    assert parse_since("2024-05-01T02:00:00+02:00") == parse_since("2024-05-01T00:00:00Z")
    assert parse_since("2024-05-01") == datetime(2024, 5, 1).timestamp()  # local midnight
    with pytest.raises(ConfigError, match="ISO date"):
        parse_since("last tuesday")


# -- the command ------------------------------------------------------------------------


def test_cli_migrate(source: SQLiteBackend, redis_url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["migrate", source.url, redis_url, "--batch-size", "8"])
    assert first.exit_code == 0, first.output
    assert "copied 30, skipped 0 (already there), failed 0" in first.output
    again = runner.invoke(app, ["migrate", source.url, redis_url])
    assert again.exit_code == 0 and "copied 0, skipped 30" in again.output
    since = datetime.fromtimestamp(NOW - 10.5 * 86400, timezone.utc).isoformat()
    with backend_from_url(redis_url) as r:
        r.clear()
    some = runner.invoke(app, ["migrate", source.url, redis_url, "-n", "b", "--since", since])
    assert some.exit_code == 0, some.output
    with backend_from_url(redis_url) as r:
        assert r.count() == r.count("b") == _copied(some.output) > 0
        assert all(e.created_at >= NOW - 10.5 * 86400 for e in r.iter_entries())


def _copied(output: str) -> int:
    return int(output.split("copied ", 1)[1].split(",", 1)[0])


def test_cli_exit_codes_and_no_passwords(source: SQLiteBackend) -> None:
    server: RedisServer = new_redis_server(password="hunter2-secret")
    try:
        runner = CliRunner()
        ok = runner.invoke(app, ["migrate", source.url, f"{server.url}/0"])
        assert ok.exit_code == 0, ok.output
        assert "copied 30" in ok.output and "hunter2" not in ok.output
        server.stop(kill=True)
        failed = runner.invoke(app, ["migrate", source.url, f"{server.url}/1?socket_timeout=1"])
        assert failed.exit_code == 1
        assert "failed 30" in failed.output and "hunter2" not in failed.output
    finally:
        server.close()
    bad = CliRunner().invoke(app, ["migrate", source.url, "nosuch://x"])
    assert bad.exit_code == 1  # a SheetcacheError: one message, exit 1
    since = CliRunner().invoke(app, ["migrate", source.url, "memory://", "--since", "soon"])
    assert since.exit_code == 2


# -- through a Sheet --------------------------------------------------------------------


def test_round_trip_through_sheets(source: SQLiteBackend, redis_url: str, tmp_path: Path) -> None:
    pytest.importorskip("sheetcache.backends.sheets")
    emulator = pytest.importorskip("sheetcache.emulator")
    from sheetcache.backends.sheets import init_worksheet

    with emulator.SheetsEmulator(quota=False) as emu:
        sheet = f"sheets://{emu.create_spreadsheet('review')}/llm-cache?endpoint={emu.url}"
        init_worksheet(sheet)
        back = f"sqlite:///{tmp_path / 'back.db'}"
        for src, dst in ((source.url, redis_url), (redis_url, sheet), (sheet, back)):
            result = migrate_urls(src, dst, batch_size=12)
            assert (result.copied, result.failed) == (30, 0), (src, dst, result.errors)
        assert migrate_urls(redis_url, sheet).skipped == 30
    with SQLiteBackend(tmp_path / "back.db") as got, SQLiteBackend(tmp_path / "source.db") as src:
        # A Sheet writes times as ISO text to the microsecond; everything else is exact.
        assert_same_entries(all_of(got), all_of(src), time_tolerance=1e-6)


# -- key format 1 -> 2 ---------------------------------------------------------------------


def _format_1_store(path: Path) -> list[tuple[object, dict[str, object]]]:
    """A SQLite file as sheetcache wrote it before format 2: key, prompt and parts as the
    old code derived them from its canonical JSON (orjson's numbers, secrets included)."""
    calls: list[tuple[object, dict[str, object]]] = [
        ("What is 2+2?", {"model": "gpt-4o", "temperature": 0.0}),
        ([{"role": "user", "content": "hi"}], {"model": "m", "api_key": "sk-old-secret"}),
        ({"function": "mod.ask", "arguments": {"q": "x"}}, {"model": "m", "n": (1, 2)}),
    ]
    with SQLiteBackend(path) as b:
        for i, (prompt, parts) in enumerate(calls):
            key = legacy_key(prompt, "default", parts)
            assert key is not None
            stored = orjson.loads(orjson.dumps([prompt, parts]))
            b.put_many([Entry(key, f"answer {i}", "str", "default", stored[0], stored[1], NOW)])
    return calls


def test_rekey_moves_format_1_entries_to_format_2(tmp_path: Path) -> None:
    """A cache written by the old key format hits after the upgrade (via migrate rekey)."""
    calls = _format_1_store(tmp_path / "old.db")
    with SQLiteBackend(tmp_path / "old.db") as src, SQLiteBackend(tmp_path / "new.db") as dst:
        dst.put_many([entry(99)])  # an entry already in format 2 is left alone
        result = migrate(src, dst, rekey=True)
        assert (result.copied, result.rekeyed, result.failed) == (3, 3, 0)
        assert migrate(src, dst, rekey=True).skipped == 3  # resumable as before
        stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("new"))
        assert b"sk-old-secret" not in stored
    with Cache(f"sqlite:///{tmp_path / 'new.db'}") as cache:
        for i, (prompt, parts) in enumerate(calls):
            assert cache.get_or_call(prompt, lambda p: "called", **parts) == f"answer {i}"


def test_without_rekey_format_1_keys_are_kept(tmp_path: Path) -> None:
    _format_1_store(tmp_path / "old.db")
    with SQLiteBackend(tmp_path / "old.db") as src, SQLiteBackend(tmp_path / "new.db") as dst:
        assert migrate(src, dst).rekeyed == 0
        assert set(all_of(dst)) == set(all_of(src))

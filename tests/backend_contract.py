"""The backend contract, as one test class every backend subclasses.

A subclass provides a ``backend`` fixture yielding a fresh, empty, real instance (a real
SQLite file, a real redis-server, the Sheets emulator over HTTP) and, if the store can be
reopened, a ``reopen`` fixture returning a callable that opens a second instance on the
same data. Nothing here is mocked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from sheetcache import Backend, Cache, Entry, make_key


def entry(
    n: int, *, namespace: str = "default", value: str | None = None, **fields: object
) -> Entry:
    prompt = [{"role": "user", "content": f"question {n} — ünïcode ✓"}]
    parts = {"model": "gpt-4o", "temperature": 0.5 + n}
    return Entry(
        key=make_key(prompt, namespace, **parts),
        value=value if value is not None else f'answer {n}\nsecond line, "quoted", =1+1',
        value_type="str",
        namespace=namespace,
        prompt=prompt,
        key_parts=parts,
        created_at=1_700_000_000.0 + n,
        duration=0.25,
        **fields,  # type: ignore[arg-type]
    )


class BackendContract:
    """Behaviour every :class:`~sheetcache.backends.base.Backend` must show."""

    def test_get_many_returns_what_put_many_stored(self, backend: Backend) -> None:
        stored = [entry(i) for i in range(5)]
        backend.put_many(stored)
        got = backend.get_many([e.key for e in stored] + ["f" * 64])
        assert set(got) == {e.key for e in stored}
        for e in stored:
            assert got[e.key] == e

    def test_lookup_serves_value_and_metadata(self, backend: Backend) -> None:
        e = entry(1, expires_at=1_900_000_000.0, status="approved", note="checked")
        backend.put_many([e])
        found = backend.lookup(e.key)
        assert found is not None
        assert (found.value, found.value_type, found.expires_at, found.status, found.duration) == (
            e.value,
            "str",
            1_900_000_000.0,
            "approved",
            0.25,
        )
        assert backend.lookup("0" * 64) is None

    def test_put_is_an_upsert(self, backend: Backend) -> None:
        first = entry(1)
        backend.put_many([first])
        backend.put_many([first])  # a retried batch
        replaced = entry(1, value="corrected")
        backend.put_many([replaced])
        assert backend.count() == 1
        assert backend.get_many([first.key])[first.key].value == "corrected"

    def test_delete_many_counts_existing(self, backend: Backend) -> None:
        stored = [entry(i) for i in range(3)]
        backend.put_many(stored)
        assert backend.delete_many([stored[0].key, "e" * 64]) == 1
        assert backend.count() == 2
        assert stored[0].key not in backend.get_many([stored[0].key])

    def test_iter_and_count_by_namespace(self, backend: Backend) -> None:
        backend.put_many([entry(i, namespace="a") for i in range(3)])
        backend.put_many([entry(i, namespace="b") for i in range(2)])
        assert backend.count() == 5
        assert backend.count("a") == 3
        assert sorted(e.key for e in backend.iter_entries("b")) == sorted(
            entry(i, namespace="b").key for i in range(2)
        )
        assert len(list(backend.iter_entries())) == 5

    def test_large_batches(self, backend: Backend) -> None:
        stored = [entry(i) for i in range(1200)]
        backend.put_many(stored)
        assert backend.count() == 1200
        assert len(backend.get_many([e.key for e in stored])) == 1200

    def test_record_hits_accumulates(self, backend: Backend) -> None:
        e = entry(1)
        backend.put_many([e])
        backend.record_hits({e.key: (2, 1_800_000_000.0), "d" * 64: (1, 1.0)})
        backend.record_hits({e.key: (3, 1_800_000_100.0)})
        got = backend.get_many([e.key])[e.key]
        assert got.hits == 5
        assert got.last_hit_at == pytest.approx(1_800_000_100.0)

    def test_clear(self, backend: Backend) -> None:
        backend.put_many([entry(i, namespace="a") for i in range(2)] + [entry(9, namespace="b")])
        assert backend.clear("a") == 2
        assert backend.count() == 1
        assert backend.clear() == 1
        assert backend.count() == 0

    def test_value_text_round_trips_exactly(self, backend: Backend) -> None:
        tricky = "=IMPORTXML(\"http://x\")\n+1\t-x @me 'quoted' \u00e9\u4e2d\U0001f600 " + " " * 3
        e = entry(1, value=tricky)
        backend.put_many([e])
        assert backend.get_many([e.key])[e.key].value == tricky

    def test_concurrent_writers(self, backend: Backend) -> None:
        errors: list[BaseException] = []

        def write(start: int) -> None:
            try:
                backend.put_many([entry(i) for i in range(start, start + 50)])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i * 50,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert backend.count() == 200

    def test_cache_end_to_end(self, backend: Backend) -> None:
        calls: list[str] = []

        def llm(prompt: str) -> str:
            calls.append(prompt)
            return f"answer to {prompt}"

        cache = Cache(backend)
        try:
            assert cache.get_or_call("q1", llm, model="m") == "answer to q1"
            assert cache.flush(timeout=60)
            cache._l1.clear()  # force the backend path
            assert cache.get_or_call("q1", llm, model="m") == "answer to q1"
            assert calls == ["q1"]
            assert cache.flush(timeout=60)
            stored = backend.get_many([cache.key("q1", model="m")])
            assert stored[cache.key("q1", model="m")].hits == 1
        finally:
            cache.close()


class ReopenContract:
    """For stores that persist: a second instance sees the first one's entries."""

    def test_entries_survive_reopen(self, backend: Backend, reopen: Callable[[], Backend]) -> None:
        stored = [entry(i) for i in range(3)]
        backend.put_many(stored)
        other = reopen()
        try:
            deadline = time.monotonic() + 30
            while other.count() < 3 and time.monotonic() < deadline:
                other.refresh()
            assert other.get_many([e.key for e in stored]) == {e.key: e for e in stored}
        finally:
            other.close()

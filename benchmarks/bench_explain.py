"""How long ``explain`` takes to find the nearest entry on a 100k-entry SQLite store.

Prints, in one run: building the store (``put_many``), a bare ``iter_entries`` read of the
whole namespace (the floor: explain can't read faster than the store), and ``explain``
with the default scan limit and with ``limit=None``, for a query whose nearest entry is
the newest one written and for one whose nearest sits in the middle of the key order.

    python benchmarks/bench_explain.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sheetcache import Cache, Entry, SQLiteBackend, make_key
from sheetcache._explain import SCAN_LIMIT, explain

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
PARTS = {"model": "gpt-4o", "temperature": 0.2, "max_tokens": 256}


def messages(i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a careful assistant. " * 8},
        {"role": "user", "content": f"Question {i}: what is {i} squared? " * 4},
        {"role": "assistant", "content": f"Let me think about {i}."},
        {"role": "user", "content": f"Explain it for case {i} in one paragraph, please. " * 6},
    ]


def build(path: Path, n: int) -> None:
    backend = SQLiteBackend(path)
    now = time.time()
    batch: list[Entry] = []
    for i in range(n):
        prompt = messages(i)
        batch.append(
            Entry(make_key(prompt, "default", **PARTS), f"answer {i}", "str", "default",
                  prompt, dict(PARTS), now + i * 1e-3)
        )  # fmt: skip
        if len(batch) == 5000:
            backend.put_many(batch)
            batch = []
    if batch:
        backend.put_many(batch)
    backend.close()


def timed(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def query(i: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
    prompt = messages(i)
    prompt[3] = {"role": "user", "content": prompt[3]["content"].replace("one", "two", 1)}
    return prompt, {**PARTS, "temperature": 0.7}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "explain.db"
        started = time.perf_counter()
        build(path, N)
        print(f"store: {N:,} entries built with put_many in {time.perf_counter() - started:.1f} s")
        with Cache(f"sqlite:///{path}", l1_size=0) as cache:
            floor, count = timed(lambda: sum(1 for _ in cache.backend.iter_entries("default")))
            print(f"floor: iter_entries over all {count:,}: {floor * 1e3:,.0f} ms "
                  f"({floor / count * 1e6:.1f} us/entry)")  # fmt: skip
            keys = sorted(e.key for e in cache.backend.iter_entries("default"))
            middle = next(
                i for i in range(N) if make_key(messages(i), "default", **PARTS) == keys[N // 2]
            )
            for label, i in (("newest entry", N - 1), ("entry in the middle of key order", middle)):
                prompt, parts = query(i)
                for limit in (SCAN_LIMIT, None):
                    t, ex = timed(lambda p=prompt, k=parts, n=limit: explain(cache, p, k, limit=n))
                    found = ex.nearest is not None and ex.nearest.value == f"answer {i}"
                    print(f"explain, nearest = {label}, limit={limit}: {t * 1e3:,.0f} ms, "
                          f"scanned {ex.scanned:,}, found it: {found}, "
                          f"{t / floor:.2f}x the full read; diff={ex.diff}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Core cache benchmark: hit, miss and store costs, with baselines measured in the same run.

Run: ``python benchmarks/bench_core.py [--n 10000]`` (needs the ``bench`` extra for the
LangChain baselines; they are skipped with a note if missing).

Every figure is per call on distinct ~2 KB prompts, each built fresh right before its call
(as a real caller builds it), with the full key: model + sampling settings + messages.
Baselines:

- ``naive PromptCache``: the seed project's approach, a dict keyed by sha256 of
  ``json.dumps(..., sort_keys=True)``;
- LangChain ``InMemoryCache`` / ``SQLiteCache``: lookup(prompt string, llm string), with the
  messages and settings serialised to those strings inside the timed call, as LangChain does;
- raw ``sqlite3``: an insert+commit and a select by primary key on a WAL database with the
  same row size, the floor for any durable SQLite store.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sheetcache import Cache  # noqa: E402

SETTINGS = {"model": "gpt-4o", "temperature": 0.2, "max_tokens": 512, "top_p": 1.0}
SYSTEM = "You are a careful assistant for an evaluation suite. Answer briefly. " * 14


def make_prompt(i: int) -> list[dict[str, str]]:
    """~2 KB of chat messages; distinct per i."""
    user = f"Case {i}: " + " ".join(f"token{(i * 7 + j) % 997}" for j in range(110))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


ANSWER = "A typical answer of a couple of sentences. " * 6


class NaivePromptCache:
    """The seed project's cache: a dict keyed by sha256 of sorted JSON."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def key(self, messages: Any, **settings: Any) -> str:
        return hashlib.sha256(json.dumps([messages, settings], sort_keys=True).encode()).hexdigest()

    def get_or_call(self, messages: Any, fn: Callable[[Any], str], **settings: Any) -> str:
        k = self.key(messages, **settings)
        if k not in self.data:
            self.data[k] = fn(messages)
        return self.data[k]


def timed(n: int, call: Callable[[int], Any]) -> list[float]:
    """Per-call microseconds; the prompt is built inside ``call`` before the clock starts."""
    samples = []
    for i in range(n):
        samples.append(call(i))
    return samples


def clocked(fn: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1000


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="distinct prompts per measurement")
    args = parser.parse_args()
    n = args.n
    tmp = Path(tempfile.mkdtemp(prefix="sheetcache-bench-"))
    os.environ["SHEETCACHE_DIR"] = str(tmp)
    rows: list[tuple[str, float, float]] = []

    def record(name: str, samples: list[float]) -> tuple[float, float]:
        med, p99 = summary(samples)
        rows.append((name, med, p99))
        return med, p99

    def llm(_p: Any) -> str:
        return ANSWER

    # -- hits, all in memory ----------------------------------------------------------
    mem = Cache("memory://", l1_size=n + 10)
    for i in range(n):
        mem.get_or_call(make_prompt(i), llm, **SETTINGS)

    def mem_hit(i: int) -> float:
        p = make_prompt(i)
        return clocked(lambda: mem.get_or_call(p, llm, **SETTINGS))

    hit_med, _ = record("sheetcache hit (L1)", timed(n, mem_hit))

    naive = NaivePromptCache()
    for i in range(n):
        naive.get_or_call(make_prompt(i), llm, **SETTINGS)

    def naive_hit(i: int) -> float:
        p = make_prompt(i)
        return clocked(lambda: naive.get_or_call(p, llm, **SETTINGS))

    naive_med, _ = record("naive PromptCache hit (dict + sha256)", timed(n, naive_hit))

    lc_med = None
    lc_sqlite: Any = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.cache import SQLiteCache
            from langchain_core.caches import InMemoryCache
            from langchain_core.outputs import Generation
    except ImportError as exc:
        print(f"(LangChain baselines skipped: {exc}; pip install 'sheetcache[bench]')")
    else:
        lc = InMemoryCache()
        gen = [Generation(text=ANSWER)]

        def lc_strings(p: Any) -> tuple[str, str]:
            return json.dumps(p), json.dumps(SETTINGS, sort_keys=True)

        for i in range(n):
            lc.update(*lc_strings(make_prompt(i)), gen)

        def lc_hit(i: int) -> float:
            p = make_prompt(i)
            return clocked(lambda: lc.lookup(*lc_strings(p)))

        lc_med, _ = record("LangChain InMemoryCache hit", timed(n, lc_hit))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lc_sqlite = SQLiteCache(database_path=str(tmp / "langchain.db"))

    # -- misses and durable stores ----------------------------------------------------
    def miss_samples(cache: Cache, offset: int) -> list[float]:
        def one(i: int) -> float:
            p = make_prompt(offset + i)
            return clocked(lambda: cache.get_or_call(p, llm, **SETTINGS))

        return timed(n, one)

    mem_miss = Cache("memory://", l1_size=n + 10)
    mem_miss_med, _ = record(
        "sheetcache miss overhead, memory:// (no outbox)", miss_samples(mem_miss, 10 * n)
    )

    sq = Cache(f"sqlite:///{tmp}/cache.db", l1_size=n + 10)
    started = time.perf_counter()
    sq_miss_med, _ = record(
        "sheetcache miss overhead, sqlite:// (durable)", miss_samples(sq, 20 * n)
    )
    sq_stores_per_s = n / (time.perf_counter() - started)

    from switchable_bench import OutboxedSQLite  # noqa: PLC0415 - a network-like store

    ob = Cache(OutboxedSQLite(tmp / "remote.db"), outbox=tmp / "outbox.db", l1_size=n + 10)
    ob_miss_med, _ = record(
        "sheetcache miss overhead, outbox (network backends)", miss_samples(ob, 30 * n)
    )
    ob.flush()

    raw = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE t (key TEXT PRIMARY KEY, prompt TEXT, value TEXT, created REAL)")

    def raw_insert(i: int) -> float:
        p = make_prompt(40 * n + i)
        return clocked(lambda: raw.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            (hashlib.sha256(str(i).encode()).hexdigest(), json.dumps(p), ANSWER, time.time()),
        ))  # fmt: skip

    raw_ins_med, _ = record("raw sqlite3 WAL insert+commit (baseline)", timed(n, raw_insert))

    if lc_sqlite is not None:
        lc_n = min(n, 1000)  # it is slow; a thousand is enough for a median

        def lc_store(i: int) -> float:
            p = make_prompt(50 * n + i)
            return clocked(
                lambda: lc_sqlite.update(json.dumps(p), json.dumps(SETTINGS, sort_keys=True), gen)
            )

        record("LangChain SQLiteCache store", timed(lc_n, lc_store))

    # -- SQLite hits with a cold L1 ---------------------------------------------------
    cold = Cache(f"sqlite:///{tmp}/cache.db", l1_size=0)

    def cold_hit(i: int) -> float:
        p = make_prompt(20 * n + i)
        return clocked(lambda: cold.get_or_call(p, llm, **SETTINGS))

    cold_med, _ = record("sheetcache sqlite hit, L1 cold", timed(n, cold_hit))
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]

    def raw_select(i: int) -> float:
        k = keys[i]
        return clocked(lambda: raw.execute("SELECT value FROM t WHERE key = ?", (k,)).fetchone())

    raw_sel_med, _ = record("raw sqlite3 select by key (baseline)", timed(n, raw_select))

    if lc_sqlite is not None:

        def lc_sqlite_hit(i: int) -> float:
            p = make_prompt(50 * n + i)
            return clocked(
                lambda: lc_sqlite.lookup(json.dumps(p), json.dumps(SETTINGS, sort_keys=True))
            )

        record("LangChain SQLiteCache hit", timed(min(n, 1000), lc_sqlite_hit))

    # -- report -----------------------------------------------------------------------
    width = max(len(r[0]) for r in rows)
    print(
        f"\n{n} distinct ~{len(json.dumps(make_prompt(0)))}-byte prompts, full key, Python {sys.version.split()[0]}"
    )
    print(f"{'measurement'.ljust(width)}  {'median µs':>10}  {'p99 µs':>10}")
    for name, med, p99 in rows:
        print(f"{name.ljust(width)}  {med:10.2f}  {p99:10.2f}")
    print()
    print(f"hit vs naive PromptCache:                {hit_med / naive_med:.2f}x")
    if lc_med:
        print(
            f"hit vs LangChain InMemoryCache:          {hit_med / lc_med:.2f}x   (target <= 0.8x)"
        )
    print(f"hit median:                              {hit_med:.2f} µs   (target <= 1.5 µs)")
    print(
        f"sqlite miss vs raw insert+commit:        {sq_miss_med / raw_ins_med:.2f}x   (target <= 1.5x)"
    )
    print(f"outbox miss vs raw insert+commit:        {ob_miss_med / raw_ins_med:.2f}x")
    print(f"memory:// miss overhead:                 {mem_miss_med:.2f} µs   (target <= 5 µs)")
    print(
        f"sqlite L1-cold hit vs raw select:        {cold_med / raw_sel_med:.2f}x   (target <= 1.3x)"
    )
    print(f"durable stores/s through get_or_call:    {sq_stores_per_s:,.0f}")
    for c in (mem, mem_miss, sq, ob, cold):
        c.close()
    raw.close()


if __name__ == "__main__":
    main()

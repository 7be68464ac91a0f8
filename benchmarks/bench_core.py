"""Core cache benchmark: hot paths against floors and peers measured in the same run.

Run: ``python benchmarks/bench_core.py [--n 4000] [--evals 1000]``. The LangChain peer needs
``langchain-core`` (the ``bench`` extra), the evaluation run ``pydantic-evals`` (the
``pydantic-ai`` extra); each is skipped with a note if missing. Figures are per call, in
microseconds, on distinct ~2 KB prompts built fresh right before each call (as a real
caller builds them), with the full key: model + sampling settings.

Baselines (each timed in this run, on the same prompts):

- naive: the seed project's cache, a dict keyed by sha256 of ``json.dumps(sort_keys=True)``;
- LangChain ``InMemoryCache.lookup(prompt, llm_string)``, with the two strings built inside
  the timed call as LangChain's chat models do (the messages as JSON, the settings sorted);
- floors for a durable store: orjson + sha256 of the same bytes plus a raw ``sqlite3`` WAL
  insert+commit (``synchronous=NORMAL``, as sheetcache's store) or select by primary key.

Targets (issue 12): L1 hit <= 1.0x naive and <= 1.5x LangChain, on str prompts and on chat
messages; sqlite miss <= 1.5x its floor; outbox miss <= 2x the insert floor; sqlite hit with
the L1 cold <= 1.3x its floor; p99 <= 5x the median for each.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sheetcache import Cache  # noqa: E402

SETTINGS = {"model": "gpt-4o", "temperature": 0.2, "max_tokens": 512, "top_p": 1.0}
SYSTEM = "You are a careful assistant for an evaluation suite. Answer briefly. " * 14
ANSWER = "A typical answer of a couple of sentences. " * 6


def make_messages(i: int) -> list[dict[str, str]]:
    """~2 KB of chat messages; distinct per i."""
    user = f"Case {i}: " + " ".join(f"token{(i * 7 + j) % 997}" for j in range(110))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def make_text(i: int) -> str:
    """~2 KB str prompt; distinct per i."""
    return SYSTEM + f"\nCase {i}: " + " ".join(f"token{(i * 7 + j) % 997}" for j in range(110))


class NaivePromptCache:
    """The seed project's cache: a dict keyed by sha256 of sorted JSON."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get_or_call(self, prompt: Any, fn: Callable[[Any], str], **settings: Any) -> str:
        k = hashlib.sha256(json.dumps([prompt, settings], sort_keys=True).encode()).hexdigest()
        if k not in self.data:
            self.data[k] = fn(prompt)
        return self.data[k]


def llm(_prompt: Any) -> str:
    return ANSWER


def measure(n: int, make: Callable[[int], Any], call: Callable[[Any], Any]) -> list[float]:
    """Per-call microseconds; the prompt is built before the clock starts."""
    clock = time.perf_counter_ns
    samples = []
    gc.collect()
    for i in range(n):
        p = make(i)
        start = clock()
        call(p)
        samples.append((clock() - start) / 1000)
    return samples


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self.ratios: list[tuple[str, float, float | None]] = []

    def add(self, name: str, samples: list[float]) -> float:
        ordered = sorted(samples)
        med = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        self.rows.append((name, med, p99))
        return med

    def ratio(self, name: str, value: float, target: float | None) -> None:
        self.ratios.append((name, value, target))

    def print(self, header: str) -> None:
        width = max(len(r[0]) for r in self.rows)
        print(f"\n{header}")
        print(f"{'measurement'.ljust(width)}  {'median µs':>10}  {'p99 µs':>9}  {'p99/med':>7}")
        for name, med, p99 in self.rows:
            print(f"{name.ljust(width)}  {med:10.2f}  {p99:9.2f}  {p99 / med:6.1f}x")
        print()
        width = max(len(r[0]) for r in self.ratios)
        for name, value, target in self.ratios:
            if "/s " in name or name.endswith("/s"):
                print(f"{name.ljust(width)}  {value:9,.0f}")
                continue
            verdict = "" if target is None else ("  ok" if value <= target else "  MISSED")
            goal = "" if target is None else f"  (target <= {target:g}x)"
            print(f"{name.ljust(width)}  {value:8.2f}x{goal}{verdict}")


def bench_hits(n: int, report: Report, langchain: Any) -> None:
    for label, make in (("str", make_text), ("messages", make_messages)):
        cache = Cache("memory://", l1_size=n + 10)
        naive = NaivePromptCache()
        for i in range(n):
            cache.get_or_call(make(i), llm, **SETTINGS)
            naive.get_or_call(make(i), llm, **SETTINGS)
        ours = report.add(f"L1 hit, {label}", measure(n, make, lambda p, c=cache: c.get_or_call(
            p, llm, **SETTINGS)))  # fmt: skip
        base = report.add(
            f"naive dict + sha256 hit, {label}",
            measure(n, make, lambda p, naive=naive: naive.get_or_call(p, llm, **SETTINGS)),
        )
        report.ratio(f"L1 hit / naive, {label}", ours / base, 1.0)
        if langchain is not None:
            lc = langchain()

            def strings(p: Any) -> tuple[str, str]:
                return (p if isinstance(p, str) else json.dumps(p)), json.dumps(
                    SETTINGS, sort_keys=True
                )

            for i in range(n):
                lc.update(*strings(make(i)), [ANSWER])
            peer = report.add(
                f"LangChain InMemoryCache.lookup, {label}",
                measure(n, make, lambda p, lc=lc: lc.lookup(*strings(p))),
            )
            report.ratio(f"L1 hit / LangChain, {label}", ours / peer, 1.5)
        started = time.perf_counter()
        for i in range(n):
            cache.get_or_call(make(i % n), llm, **SETTINGS)
        if label == "messages":
            report.ratio("L1 hits/s on one thread", n / (time.perf_counter() - started), None)
        cache.close()


def bench_store(n: int, tmp: Path, report: Report) -> None:
    make = make_messages
    raw = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE t (key TEXT PRIMARY KEY, prompt TEXT, value TEXT, created REAL)")

    def raw_insert(p: Any) -> None:
        blob = orjson.dumps([p, SETTINGS], option=orjson.OPT_SORT_KEYS)
        key = hashlib.sha256(blob).hexdigest()
        raw.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (key, blob.decode(), ANSWER, time.time()))

    floor_insert = report.add(
        "floor: sha256 + raw sqlite3 insert+commit",
        measure(n, lambda i: make(10 * n + i), raw_insert),
    )

    def raw_select(p: Any) -> None:
        key = hashlib.sha256(orjson.dumps([p, SETTINGS], option=orjson.OPT_SORT_KEYS)).hexdigest()
        raw.execute("SELECT value FROM t WHERE key = ?", (key,)).fetchone()

    floor_select = report.add(
        "floor: sha256 + raw sqlite3 select",
        measure(n, lambda i: make(10 * n + i), raw_select),
    )
    raw.close()

    sq = Cache(f"sqlite:///{tmp}/cache.db", l1_size=n + 10)
    started = time.perf_counter()
    miss = report.add(
        "sqlite:// miss (durable)",
        measure(n, lambda i: make(20 * n + i), lambda p: sq.get_or_call(p, llm, **SETTINGS)),
    )
    stores_per_s = n / (time.perf_counter() - started)
    report.ratio("sqlite miss / floor", miss / floor_insert, 1.5)
    report.ratio("durable sqlite:// stores/s on one thread", stores_per_s, None)
    sq.close()

    cold = Cache(f"sqlite:///{tmp}/cache.db", l1_size=0)
    hit = report.add(
        "sqlite:// hit, L1 cold",
        measure(n, lambda i: make(20 * n + i), lambda p: cold.get_or_call(p, llm, **SETTINGS)),
    )
    report.ratio("sqlite L1-cold hit / floor", hit / floor_select, 1.3)
    started = time.perf_counter()
    for i in range(n):
        cold.get_or_call(make(20 * n + i), llm, **SETTINGS)
    report.ratio(
        "sqlite:// L1-cold hits/s on one thread", n / (time.perf_counter() - started), None
    )
    cold.close()

    from switchable_bench import OutboxedSQLite  # a network-like store: writes via the outbox

    ob = Cache(OutboxedSQLite(tmp / "remote.db"), outbox=tmp / "outbox.db", l1_size=n + 10)
    out = report.add(
        "outbox miss (network stores)",
        measure(n, lambda i: make(30 * n + i), lambda p: ob.get_or_call(p, llm, **SETTINGS)),
    )
    report.ratio("outbox miss / insert floor", out / floor_insert, 2.0)
    ob.flush()
    ob.close()


def bench_evals(cases: int, tmp: Path, report: Report) -> None:
    try:
        from pydantic_ai import Agent
        from pydantic_ai.models.test import TestModel
        from pydantic_evals import Case, Dataset

        from sheetcache.pydantic_ai import CachedModel
    except ImportError as exc:
        print(f"(pydantic-evals run skipped: {exc}; pip install 'sheetcache[pydantic-ai]')")
        return
    dataset = Dataset(
        name="bench", cases=[Case(name=f"case {i}", inputs=make_text(i)) for i in range(cases)]
    )

    def run(agent: Any) -> float:
        async def task(question: str) -> str:
            return str((await agent.run(question)).output)

        started = time.perf_counter()
        dataset.evaluate_sync(task, progress=False)
        return time.perf_counter() - started

    plain = Agent(TestModel(custom_output_text="an answer"))
    cache = Cache(f"sqlite:///{tmp}/evals.db")
    cached = Agent(CachedModel(TestModel(custom_output_text="an answer"), cache))
    run(cached)  # fill the cache
    base = statistics.median(run(plain) for _ in range(3))
    hot = statistics.median(run(cached) for _ in range(3))
    cache.close()
    report.ratio(f"pydantic-evals {cases} cases: cached re-run / TestModel, no cache",
                 hot / base, None)  # fmt: skip
    print(f"(pydantic-evals: {cases} cases, TestModel no cache {base:.2f}s, "
          f"fully cached re-run {hot:.2f}s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="distinct prompts per measurement")
    parser.add_argument("--evals", type=int, default=1000, help="pydantic-evals cases (0: skip)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sheetcache-bench-"))
    os.environ["SHEETCACHE_DIR"] = str(tmp)
    try:
        from langchain_core.caches import InMemoryCache
    except ImportError as exc:
        print(f"(LangChain peer skipped: {exc}; pip install 'sheetcache[bench]')")
        InMemoryCache = None  # noqa: N806
    report = Report()
    bench_hits(args.n, report, InMemoryCache)
    bench_store(args.n, tmp, report)
    if args.evals:
        bench_evals(args.evals, tmp, report)
    size = len(json.dumps(make_messages(0)))
    report.print(
        f"{args.n} distinct ~{size}-byte prompts, full key, Python {sys.version.split()[0]}"
    )
    asyncio.set_event_loop(None)


if __name__ == "__main__":
    main()

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

from sheetcache import Cache

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


ROUNDS = 3  # candidates alternate round by round; each keeps its best round (a shared VM)


def best_rounds(
    report: Report,
    n: int,
    candidates: list[tuple[str, Callable[[int, int], Any], Callable[[Any], Any]]],
) -> list[float]:
    """Measure each ``(name, make(round, i), call)`` in alternation, ``ROUNDS`` times; record
    each one's round with the lowest median, and return those medians in order."""
    best: list[list[float] | None] = [None] * len(candidates)
    for r in range(ROUNDS):
        for j, (_name, make, call) in enumerate(candidates):
            samples = measure(n, lambda i, r=r, make=make: make(r, i), call)
            kept = best[j]
            if kept is None or statistics.median(samples) < statistics.median(kept):
                best[j] = samples
    return [
        report.add(name, samples or [])
        for (name, _m, _c), samples in zip(candidates, best, strict=True)
    ]


def bench_hits(n: int, report: Report, langchain: Any) -> None:
    for label, make in (("str", make_text), ("messages", make_messages)):
        cache = Cache("memory://", l1_size=n + 10)
        naive = NaivePromptCache()
        for i in range(n):
            cache.get_or_call(make(i), llm, **SETTINGS)
            naive.get_or_call(make(i), llm, **SETTINGS)

        def strings(p: Any) -> tuple[str, str]:
            return (p if isinstance(p, str) else json.dumps(p)), json.dumps(
                SETTINGS, sort_keys=True
            )

        same = lambda _r, i, make=make: make(i)  # noqa: E731 - every round hits the same entries
        candidates = [
            (f"L1 hit, {label}", same, lambda p, c=cache: c.get_or_call(p, llm, **SETTINGS)),
            (f"naive dict + sha256 hit, {label}", same,
             lambda p, naive=naive: naive.get_or_call(p, llm, **SETTINGS)),
        ]  # fmt: skip
        if langchain is not None:
            lc = langchain()
            for i in range(n):
                lc.update(*strings(make(i)), [ANSWER])
            candidates.append((f"LangChain InMemoryCache.lookup, {label}", same,
                               lambda p, lc=lc: lc.lookup(*strings(p))))  # fmt: skip
        medians = best_rounds(report, n, candidates)
        report.ratio(f"L1 hit / naive, {label}", medians[0] / medians[1], 1.0)
        if langchain is not None:
            report.ratio(f"L1 hit / LangChain, {label}", medians[0] / medians[2], 1.5)
        if label == "messages":
            prompts = [make(i) for i in range(n)]
            rates = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                for p in prompts:
                    cache.get_or_call(p, llm, **SETTINGS)
                rates.append(n / (time.perf_counter() - started))
            report.ratio("L1 hits/s on one thread (best round)", max(rates), None)
        cache.close()


def bench_store(n: int, tmp: Path, report: Report) -> None:
    from switchable_bench import OutboxedSQLite  # a network-like store: writes via the outbox

    raw = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE t (key TEXT PRIMARY KEY, prompt TEXT, value TEXT, created REAL)")

    def raw_insert(p: Any) -> None:
        blob = orjson.dumps([p, SETTINGS], option=orjson.OPT_SORT_KEYS)
        key = hashlib.sha256(blob).hexdigest()
        raw.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (key, blob.decode(), ANSWER, time.time()))

    def raw_select(p: Any) -> None:
        key = hashlib.sha256(orjson.dumps([p, SETTINGS], option=orjson.OPT_SORT_KEYS)).hexdigest()
        raw.execute("SELECT value FROM t WHERE key = ?", (key,)).fetchone()

    def fresh(base: int) -> Callable[[int, int], Any]:
        return lambda r, i: make_messages(base + r * n + i)

    # Each store alone with the floor: another cache's flusher thread would compete for the
    # GIL and skew the comparison.
    sq = Cache(f"sqlite:///{tmp}/cache.db", l1_size=n * ROUNDS + 10)
    floor_insert, miss = best_rounds(report, n, [
        ("floor: sha256 + raw sqlite3 insert+commit", fresh(10 * n), raw_insert),
        ("sqlite:// miss (durable)", fresh(20 * n), lambda p: sq.get_or_call(p, llm, **SETTINGS)),
    ])  # fmt: skip
    report.ratio("sqlite miss / floor", miss / floor_insert, 1.5)
    prompts = [make_messages(40 * n + i) for i in range(n)]
    started = time.perf_counter()
    for p in prompts:
        sq.get_or_call(p, llm, **SETTINGS)
    report.ratio("durable sqlite:// stores/s on one thread", n / (time.perf_counter() - started),
                 None)  # fmt: skip
    sq.close()
    ob = Cache(OutboxedSQLite(tmp / "remote.db"), outbox=tmp / "outbox.db", l1_size=n * 4)
    floor_again, out = best_rounds(report, n, [
        ("floor again, beside the outbox", fresh(50 * n), raw_insert),
        ("outbox miss (network stores)", fresh(30 * n),
         lambda p: ob.get_or_call(p, llm, **SETTINGS)),
    ])  # fmt: skip
    report.ratio("outbox miss / insert floor", out / floor_again, 2.0)
    ob.flush()
    ob.close()

    cold = Cache(f"sqlite:///{tmp}/cache.db", l1_size=0)
    floor_select, hit = best_rounds(report, n, [
        ("floor: sha256 + raw sqlite3 select", fresh(10 * n), raw_select),
        ("sqlite:// hit, L1 cold", fresh(20 * n), lambda p: cold.get_or_call(p, llm, **SETTINGS)),
    ])  # fmt: skip
    report.ratio("sqlite L1-cold hit / floor", hit / floor_select, 1.3)
    started = time.perf_counter()
    for p in prompts:
        cold.get_or_call(p, llm, **SETTINGS)
    report.ratio(
        "sqlite:// L1-cold hits/s on one thread", n / (time.perf_counter() - started), None
    )
    cold.close()
    raw.close()


def bench_breakdown(n: int, tmp: Path) -> None:
    """Where a sqlite:// miss and an L1-cold hit spend their time: each part timed alone on
    the same prompts, the rest (flight, L1, counters, the protocol) is the front's glue."""
    from sheetcache._keys import canonical_bytes, lookup_bytes, parse_canonical
    from sheetcache.backends.base import Entry
    from sheetcache.backends.sqlite import SQLiteBackend

    def med(make: Callable[[int], Any], call: Callable[[Any], Any]) -> float:
        return statistics.median(measure(n, make, call))

    prompts = lambda i: make_messages(60 * n + i)  # noqa: E731
    parts = {
        "lookup bytes (L1 key)": med(prompts, lambda p: lookup_bytes(p, "default", SETTINGS)),
        "canonical bytes (RFC 8785)": med(
            prompts, lambda p: canonical_bytes(p, "default", SETTINGS)
        ),
        "sha256 of them": med(
            lambda i: canonical_bytes(prompts(i), "default", SETTINGS),
            lambda b: hashlib.sha256(b).hexdigest(),
        ),
        "parse them back for the row": med(
            lambda i: canonical_bytes(prompts(i), "default", SETTINGS), parse_canonical
        ),
    }
    store = SQLiteBackend(tmp / "breakdown.db")
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    entries = [Entry(k, ANSWER, "str", "default", make_messages(i), SETTINGS, time.time())
               for i, k in enumerate(keys)]  # fmt: skip
    parts["store lookup, absent"] = med(lambda i: keys[i], store.lookup)
    parts["store put_many of one entry"] = med(lambda i: entries[i], lambda e: store.put_many([e]))
    parts["store lookup, present"] = med(lambda i: keys[i], store.lookup)
    store.close()
    print("\nwhere the time goes (each part alone, same prompts), µs:")
    for name, value in parts.items():
        print(f"  {name:32} {value:6.2f}")
    key = sum(parts[k] for k in ("lookup bytes (L1 key)", "canonical bytes (RFC 8785)",
                                 "sha256 of them"))  # fmt: skip
    print(
        f"  miss  = key {key:.2f} + absent lookup + parse + put_many "
        f"= {key + parts['store lookup, absent'] + parts['parse them back for the row']:.2f}"
        f" + {parts['store put_many of one entry']:.2f} before any glue"
    )
    cold_key = key - parts["lookup bytes (L1 key)"]
    print(
        f"  L1-cold hit = key {cold_key:.2f} + present lookup "
        f"{parts['store lookup, present']:.2f} = "
        f"{cold_key + parts['store lookup, present']:.2f} before any glue"
    )


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
    parser.add_argument("--breakdown", action="store_true", help="time the parts of a miss too")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sheetcache-bench-"))
    os.environ["SHEETCACHE_DIR"] = str(tmp)
    try:
        from langchain_core.caches import InMemoryCache
    except ImportError as exc:
        print(f"(LangChain peer skipped: {exc}; pip install 'sheetcache[bench]')")
        InMemoryCache = None
    report = Report()
    bench_hits(args.n, report, InMemoryCache)
    bench_store(args.n, tmp, report)
    if args.evals:
        bench_evals(args.evals, tmp, report)
    size = len(json.dumps(make_messages(0)))
    report.print(
        f"{args.n} distinct ~{size}-byte prompts, full key, Python {sys.version.split()[0]}"
    )
    if args.breakdown:
        bench_breakdown(args.n, tmp)
    asyncio.set_event_loop(None)


if __name__ == "__main__":
    main()

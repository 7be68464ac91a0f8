"""Redis backend figures: hit latency with L1 cold vs a raw redis-py GET, write throughput,
and LangChain's RedisCache as the peer baseline. Prints a table; asserts nothing.

    .venv/bin/python benchmarks/bench_redis.py [--hits 5000] [--writes 20000]

Starts its own redis-server on a free port (tests/redis_server.py), so nothing else on the
machine is touched; every contender talks to that same server over TCP on 127.0.0.1.
Target: an L1-cold hit through sheetcache costs at most 1.2x a raw GET of an equally large
value.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from redis_server import RedisServer  # noqa: E402

from sheetcache import Cache, Entry, make_key  # noqa: E402
from sheetcache.backends.redis import RedisBackend  # noqa: E402

PROMPT_BYTES = 2048
ANSWER_BYTES = 1024
MODEL = {"model": "gpt-4o-mini", "temperature": 0}
KEYS = 1000  # distinct stored answers the hit loops cycle through
ROUND = 100  # calls per contender per round; rounds alternate contenders


def prompt(i: int) -> str:
    head = f"Question {i}: summarise the following text. "
    return head + ("lorem ipsum dolor sit amet " * 100)[: PROMPT_BYTES - len(head)]


def answer(i: int) -> str:
    head = f"Answer {i}: "
    return head + ("the quick brown fox jumps " * 60)[: ANSWER_BYTES - len(head)]


def entries(n: int, start: int = 0) -> list[Entry]:
    now = time.time()
    out = []
    for i in range(start, start + n):
        p = prompt(i)
        key = make_key(p, "default", **MODEL)
        out.append(Entry(key, answer(i), "str", "default", p, dict(MODEL), now, duration=1.5))
    return out


def timed(fn: Callable[[int], object], n: int, offset: int = 0) -> list[float]:
    """Per-call wall times in microseconds, GC paused (for every contender alike)."""
    out = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i in range(offset, offset + n):
            started = clock()
            fn(i)
            out.append((clock() - started) / 1000)
    finally:
        gc.enable()
    return out


def median_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def never(prompt: str) -> str:
    raise AssertionError("a hit benchmark called the LLM")


def rate(n: int, fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def langchain(
    port: int, prompts: list[str]
) -> tuple[Callable[[int], object], Callable[[int], object]] | str:
    """LangChain's RedisCache on the same server as (hit, store), or why it can't run."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # langchain-community announces its sunset
            from langchain_community.cache import RedisCache
            from langchain_core._api import LangChainBetaWarning
            from langchain_core.outputs import Generation
    except Exception as exc:  # noqa: BLE001
        return f"LangChain RedisCache not measured: cannot import it ({exc})"
    # Its lookup warns that deserialisation is beta; under -W error that would send every
    # lookup down its error path. Silence it for a fair figure.
    warnings.filterwarnings("ignore", category=LangChainBetaWarning)
    lc = RedisCache(redis.Redis(host="127.0.0.1", port=port, db=1))
    llm_string = repr(sorted(MODEL.items()))
    for i, p in enumerate(prompts):
        lc.update(p, llm_string, [Generation(text=answer(i))])

    def hit(i: int) -> object:
        found = lc.lookup(prompts[i % len(prompts)], llm_string)
        assert found, "LangChain lookup missed"
        return found

    def store(i: int) -> object:
        lc.update(f"{prompts[i % len(prompts)]} {i}", llm_string, [Generation(text=answer(i))])
        return None

    return hit, store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hits", type=int, default=5000, help="timed hits per contender")
    parser.add_argument("--writes", type=int, default=20000, help="entries per write test")
    args = parser.parse_args()
    n = args.writes
    prompts = [prompt(i) for i in range(KEYS)]  # built outside the timed loops
    raw_keys = [f"raw:{i}" for i in range(KEYS)]

    with RedisServer() as server:
        url = f"{server.url}/0"
        raw = redis.Redis(host="127.0.0.1", port=server.port, db=0)
        backend = RedisBackend.from_url(url)
        backend.put_many(entries(KEYS))
        raw.mset({raw_keys[i]: answer(i) for i in range(KEYS)})
        cache = Cache(url, l1_size=0)
        keys = [cache.key(p, **MODEL) for p in prompts]
        peer = langchain(server.port, prompts)

        contenders: dict[str, Callable[[int], object]] = {
            f"raw redis-py GET ({ANSWER_BYTES} B value)": lambda i: raw.get(raw_keys[i % KEYS]),
            "sheetcache hit, L1 cold": lambda i: cache.get_or_call(
                prompts[i % KEYS], never, **MODEL
            ),
            "RedisBackend.lookup (key given)": lambda i: backend.lookup(keys[i % KEYS]),
        }
        if not isinstance(peer, str):
            contenders["LangChain RedisCache.lookup"] = peer[0]
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for fn in contenders.values():  # warm up pools, scripts, caches
            timed(fn, 500)
        # Alternate contenders every ROUND calls, so drift (other load on the machine, CPU
        # frequency) falls on all of them alike.
        for r in range(max(1, args.hits // ROUND)):
            for name, fn in contenders.items():
                samples[name] += timed(fn, ROUND, r * ROUND)
        hits_ok = cache.stats.misses == 0
        cache.close()

        batches = _batches(entries(n, KEYS), 500)  # made (and hashed) before the clock starts
        put_rate = rate(n, lambda: [backend.put_many(b) for b in batches])
        with Cache(f"{url}?prefix=outbox-bench") as writer:
            started = time.perf_counter()
            for i in range(n):
                writer.set(prompts[i % KEYS] + str(i), answer(i), **MODEL)
            queued = n / (time.perf_counter() - started)
            flushed = writer.flush(timeout=600)
            end_to_end = n / (time.perf_counter() - started)
        misses = min(n, 2000)
        with Cache(f"{url}?prefix=miss-bench") as misser:
            miss_rate = rate(misses, lambda: [
                misser.get_or_call(prompts[i % KEYS] + str(i), lambda p: "x" * ANSWER_BYTES, **MODEL)
                for i in range(misses)
            ])  # fmt: skip
        lc_rate = (
            None if isinstance(peer, str) else rate(5000, lambda: [peer[1](i) for i in range(5000)])
        )
        backend.close()
        raw.close()

    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    print(
        f"redis-server {version.split('v=', 1)[-1].split()[0]}, redis-py {redis.__version__}, "
        f"Python {sys.version.split()[0]}; {PROMPT_BYTES} B prompts, {ANSWER_BYTES} B answers; "
        f"{args.hits} timed calls each\n"
    )
    base, _ = median_p99(samples[next(iter(samples))])
    print(f"{'hit latency, microseconds':36} {'median':>8} {'p99':>8} {'vs GET':>7}")
    for name, values in samples.items():
        med, p99 = median_p99(values)
        print(f"{name:36} {med:8.1f} {p99:8.1f} {med / base:6.2f}x")
    print(f"\n{'writes':55} {'entries/s':>10}")
    print(f"{'RedisBackend.put_many, batches of 500 (pipelined)':55} {put_rate:10,.0f}")
    print(f"{'Cache.set -> outbox -> flush, end to end':55} {end_to_end:10,.0f}")
    print(f"{'  Cache.set alone (durable outbox append)':55} {queued:10,.0f}")
    print(f"{'Cache.get_or_call misses (lock, direct write, unlock)':55} {miss_rate:10,.0f}")
    if lc_rate is not None:
        print(f"{'LangChain RedisCache.update (one pipeline per call)':55} {lc_rate:10,.0f}")
    if isinstance(peer, str):
        print(f"\nnote: {peer}")
    if not hits_ok or not flushed:
        print("\nWARNING: a hit loop missed or the outbox did not drain: figures are off")
    ratio = median_p99(samples["sheetcache hit, L1 cold"])[0] / base
    print(
        f"\ntarget: L1-cold hit <= 1.2x a raw GET: {'met' if ratio <= 1.2 else 'MISSED'} ({ratio:.2f}x)"
    )


def _batches(items: list[Entry], size: int) -> list[list[Entry]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


if __name__ == "__main__":
    main()

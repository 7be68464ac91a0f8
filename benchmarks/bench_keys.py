"""Key building cost, format 2 (RFC 8785) against format 1 (orjson) in the same run.

The L1 hit path pays only for ``lookup_bytes`` (unchanged by format 2); an L1 miss adds
``canonical_bytes`` and sha256. Prints medians (us per call) and ratios.

    python benchmarks/bench_keys.py
"""

from __future__ import annotations

import hashlib
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from sheetcache._keys import canonical_bytes, lookup_bytes
from sheetcache._keys_v1 import v1_key

PARTS = {"model": "gpt-4o", "temperature": 0.2, "system": "Be terse."}
CASES: dict[str, Any] = {
    "2 KB str prompt": "y" * 2000,
    "10 chat messages (~2 KB)": [
        {"role": "user" if i % 2 else "assistant", "content": "x" * 200} for i in range(10)
    ],
    "lone surrogate in a message": [{"role": "tool", "content": "x" * 200 + "\ud83d"}],
}


def median_us(fn: Callable[[], object], number: int = 20_000) -> float:
    runs = timeit.repeat(fn, number=number, repeat=5)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    print(f"{'case':32} {'lookup':>8} {'v1 key':>8} {'v2 key':>8} {'v2/v1':>6}")
    for name, prompt in CASES.items():
        lookup = median_us(lambda p=prompt: lookup_bytes(p, "default", PARTS))
        v1 = median_us(lambda p=prompt: v1_key(p, "default", PARTS))
        v2 = median_us(
            lambda p=prompt: hashlib.sha256(canonical_bytes(p, "default", PARTS)).hexdigest()
        )
        ratio = "" if v1 != v1 else f"{v2 / v1:5.2f}x"
        print(f"{name:32} {lookup:8.2f} {v1:8.2f} {v2:8.2f} {ratio:>6}  (us/call)")
    print("v1 cannot key the lone surrogate (it raised); its time there is the failed attempt.")


if __name__ == "__main__":
    main()

"""The demo's suite: questions asked twice of a SIMULATED slow LLM through ``get_or_call``.

Shared by ``sheetcache demo`` (:mod:`sheetcache.cli._demo`) and its Sheets variant
(:mod:`sheetcache.cli._demo_sheets`); it imports neither, so they don't import each other.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from sheetcache._cache import Cache

__all__ = ["DEMO_QUESTIONS", "run_demo"]

DEMO_QUESTIONS = [
    ("What is the capital of France?", "Paris"),
    ("What is 12 * 12?", "144"),
    ("Translate 'good morning' to Spanish.", "Buenos días"),
    ("Name the largest planet in the solar system.", "Jupiter"),
    ("What is the boiling point of water at sea level in Celsius?", "100 °C"),
    ("Who wrote 'Pride and Prejudice'?", "Jane Austen"),
    ("What is the chemical symbol for gold?", "Au"),
    ("How many continents are there?", "Seven"),
    ("What is the square root of 81?", "9"),
    ("Which language runs in a web browser natively?", "JavaScript"),
    ("What is the freezing point of water in Fahrenheit?", "32 °F"),
    ("What gas do plants absorb from the air?", "Carbon dioxide"),
    ("Spell 'necessary' backwards.", "yrassecen"),
    ("What is the longest river in Africa?", "The Nile"),
    ("How many sides does a hexagon have?", "Six"),
    ("What is HTTP status 404?", "Not Found"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("What is the smallest prime number?", "2"),
    ("Convert 1 kilometre to metres.", "1000 m"),
    ("What is the plural of 'mouse'?", "Mice"),
    ("In which year did the first person walk on the Moon?", "1969"),
    ("What does CPU stand for?", "Central processing unit"),
    ("What is 2 to the power of 10?", "1024"),
    ("Name a noble gas.", "Neon"),
]

DEMO_SYSTEM = "You are a terse quiz assistant. Answer in a few words."


def run_demo(cache: Cache, *, latency: float, out: Console) -> list[dict[str, Any]]:
    """Run the eval-style suite twice through ``get_or_call``; return per-run figures."""
    answers = dict(DEMO_QUESTIONS)
    calls = 0

    def simulated_llm(messages: list[dict[str, str]]) -> str:
        """SIMULATED model: sleeps ``latency`` seconds like a network call, then answers."""
        nonlocal calls
        calls += 1
        time.sleep(latency)
        return answers[messages[-1]["content"]]

    runs = []
    for run in (1, 2):
        calls_before, stats_before = calls, cache.stats
        started = time.perf_counter()
        for question, _expected in DEMO_QUESTIONS:
            messages = [
                {"role": "system", "content": DEMO_SYSTEM},
                {"role": "user", "content": question},
            ]
            cache.get_or_call(messages, simulated_llm, model="simulated-llm", temperature=0)
        wall = time.perf_counter() - started
        stats = cache.stats
        runs.append(
            {
                "run": run,
                "wall_seconds": wall,
                "hits": stats.hits - stats_before.hits,
                "misses": stats.misses - stats_before.misses,
                "calls_saved": len(DEMO_QUESTIONS) - (calls - calls_before),
            }
        )
    table = Table(title=f"{len(DEMO_QUESTIONS)} questions, twice, through cache.get_or_call")
    for column in ("run", "wall time", "hits", "misses", "LLM calls saved"):
        table.add_column(column, justify="right")
    for r in runs:
        table.add_row(
            str(r["run"]),
            f"{r['wall_seconds']:.3f} s",
            str(r["hits"]),
            str(r["misses"]),
            str(r["calls_saved"]),
        )
    out.print(table)
    return runs

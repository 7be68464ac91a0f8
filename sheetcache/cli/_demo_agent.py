"""``sheetcache demo``'s agent part: a pydantic-evals dataset run twice through a cached agent.

The model is a pydantic-ai ``FunctionModel`` that sleeps ``latency`` seconds per call to stand
in for a provider, so the demo needs no network or key. Everything it prints about time is
labelled *simulated*: the point is the ratio between the runs, not the figures.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from sheetcache._cache import Cache
from sheetcache._logging import install_hint

__all__ = ["run_agent_demo"]

_CASES = 24


async def _evaluate_twice(cache: Cache, latency: float) -> tuple[list[dict[str, Any]], str]:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, UserPromptPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_evals import Case, Dataset
    from pydantic_evals.evaluators import EqualsExpected

    from sheetcache.pydantic_ai import CachedModel

    calls = 0

    async def simulated_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        calls += 1
        await asyncio.sleep(latency)  # simulated provider latency, not synchronisation
        question = next(
            p.content
            for m in reversed(messages)
            for p in getattr(m, "parts", ())
            if isinstance(p, UserPromptPart) and isinstance(p.content, str)
        )
        a, b = (int(word.rstrip("?")) for word in question.split() if word.rstrip("?").isdigit())
        return ModelResponse(parts=[TextPart(str(a + b))])

    model = CachedModel(FunctionModel(simulated_model, model_name="demo-arithmetic"), cache)
    agent = Agent(model, instructions="Answer with the number only.")
    dataset = Dataset[str, str, Any](
        name="sheetcache-demo",
        cases=[
            Case(
                name=f"sum-{i}",
                inputs=f"What is {i} + {i * 7 % 11}?",
                expected_output=str(i + i * 7 % 11),
            )
            for i in range(1, _CASES + 1)
        ],
        evaluators=[EqualsExpected()],
    )

    async def task(question: str) -> str:
        result = await agent.run(question)
        return result.output

    runs: list[dict[str, Any]] = []
    for run in (1, 2):
        before_calls, before = calls, model.stats
        started = time.perf_counter()
        report = await dataset.evaluate(task, name=f"run {run}", max_concurrency=4, progress=False)
        wall = time.perf_counter() - started
        after = model.stats
        passed = sum(all(a.value is True for a in c.assertions.values()) for c in report.cases)
        runs.append(
            {
                "run": run,
                "cases": len(dataset.cases),
                "passed": passed,
                "wall_seconds": wall,
                "model_calls": calls - before_calls,
                "hits": after.hits - before.hits,
                "tokens_saved": after.tokens_saved - before.tokens_saved,
            }
        )
    return runs, model.model_name


def run_agent_demo(cache: Cache, *, console: Console, latency: float = 0.05) -> dict[str, Any]:
    """Evaluate a 24-case pydantic-evals dataset twice through a cached agent and report.

    The second run should make no model calls. If ``cache`` already holds the demo's
    answers (a second demo on the same store), the first run hits too.

    Args:
        cache: the cache under test (memory, SQLite, the Sheets emulator, ...).
        console: where the table goes.
        latency: simulated seconds per model call.

    Returns:
        ``{"model", "latency", "simulated": True, "runs": [{"run", "cases", "passed",
        "wall_seconds", "model_calls", "hits", "tokens_saved"}, ...]}``, one item per run.

    Raises:
        MissingDependencyError: pydantic-ai or pydantic-evals is not installed.
    """
    try:
        import pydantic_evals  # noqa: F401
    except ImportError as exc:
        from sheetcache._errors import MissingDependencyError

        raise MissingDependencyError(
            f"the agent demo needs pydantic-evals ({exc}): {install_hint('pydantic-ai')}"
        ) from exc
    runs, model_name = _run(_evaluate_twice(cache, latency))

    table = Table(
        title=f"pydantic-ai Agent, {runs[0]['cases']} pydantic-evals cases, evaluated twice "
        "(simulated model)"
    )
    for column in ("run", "wall time", "model calls", "cache hits", "tokens saved", "passed"):
        table.add_column(column, justify="right")
    for r in runs:
        table.add_row(
            str(r["run"]),
            f"{r['wall_seconds']:.2f} s",
            str(r["model_calls"]),
            str(r["hits"]),
            str(r["tokens_saved"]),
            f"{r['passed']}/{r['cases']}",
        )
    console.print(table)
    console.print(
        f"Simulated model: FunctionModel {model_name!r}, {latency * 1000:.0f} ms of simulated "
        "latency per call, no network; wall times are of this simulation, tokens are "
        "pydantic-ai's estimate."
    )
    return {"model": model_name, "latency": latency, "simulated": True, "runs": runs}


def _run(coro: Any) -> Any:
    """asyncio.run, also from a thread that already runs a loop (a notebook, an async CLI)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()

"""``sheetcache demo``: an eval-style suite run twice against a SIMULATED slow LLM."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

import sheetcache.cli._ui as _ui
from sheetcache._cache import Cache
from sheetcache._logging import install_hint
from sheetcache.cli._app import app
from sheetcache.cli._demo_suite import run_demo


@app.command()
def demo(
    url: _ui.UrlOption = None,
    latency: Annotated[
        float, typer.Option(metavar="SECONDS", help="Seconds each simulated LLM call takes.")
    ] = 0.2,
    agent: Annotated[
        bool,
        typer.Option(
            "--agent/--no-agent",
            help="Also run a pydantic-evals dataset through a cached pydantic-ai Agent.",
        ),
    ] = True,
    sheets_emulator: Annotated[
        bool,
        typer.Option(
            "--sheets-emulator",
            help="Run against the bundled Google Sheets emulator and show the rows a reviewer sees.",
        ),
    ] = False,
) -> None:
    """Run a suite twice against a SIMULATED slow LLM.

    The second run is all hits. With --sheets-emulator it runs on the bundled Google
    Sheets emulator and shows the rows a reviewer sees.
    """
    console = _ui.state.out
    if sheets_emulator:
        from sheetcache.cli._demo_sheets import demo_on_emulator

        demo_on_emulator(latency=latency, agent=agent, out=console)
        return
    target = _ui.resolve_url(url)
    with _ui.open_cache(target, namespace="sheetcache-demo") as cache:
        _ui.out(
            f"sheetcache demo on {target.shown}, namespace 'sheetcache-demo' (cleared first). "
            f"The LLM is SIMULATED: {latency:.2f} s per call."
        )
        cache.clear("sheetcache-demo")
        run_demo(cache, latency=latency, out=console)
        if agent:
            _agent_demo(cache, latency, console)
        stats = cache.stats
        _ui.out(
            f"Cache stats: {_ui.plural(stats.hits, 'hit')}, {_ui.plural(stats.misses, 'miss', 'misses')}, "
            f"hit rate {stats.hit_rate:.0%}, {stats.saved_seconds:.2f} s of simulated LLM time saved."
        )


def _agent_demo(cache: Cache, latency: float, console: Console) -> None:
    try:
        from sheetcache.cli._demo_agent import run_agent_demo

        run_agent_demo(cache, console=console, latency=latency / 4)
    except ImportError as exc:  # MissingDependencyError too: the message names the extra
        hint = "" if install_hint("pydantic-ai") in str(exc) else f"; {install_hint('pydantic-ai')}"
        _ui.out(f"(pydantic-ai part skipped: {exc}{hint})")

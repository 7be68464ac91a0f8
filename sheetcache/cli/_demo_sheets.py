"""``sheetcache demo --sheets-emulator``: the demo on a Google Sheet served by the emulator.

Starts the bundled emulator on loopback (Google's default quotas on), prepares a worksheet
the way ``sheetcache init`` does, runs the demo through ``sheets://ID/TAB?endpoint=...``,
then prints the rows a reviewer would see in the sheet.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sheetcache._cache import Cache


def demo_on_emulator(*, latency: float, agent: bool, out: Console) -> None:
    try:
        from sheetcache.backends.sheets import init_worksheet
        from sheetcache.emulator import SheetsEmulator
    except ImportError as exc:
        out.print(
            f"[red]error:[/red] the Sheets demo needs the sheets extra ({exc}): pip install 'sheetcache[sheets]'"
        )
        raise SystemExit(2) from None
    from sheetcache.cli._demo_suite import run_demo

    with SheetsEmulator() as emu, tempfile.TemporaryDirectory(prefix="sheetcache-demo-") as tmp:
        spreadsheet_id = emu.create_spreadsheet("sheetcache demo")
        url = f"sheets://{spreadsheet_id}/llm-cache?endpoint={emu.url}"
        for line in init_worksheet(url):
            out.print(f"init: {line}")
        out.print(
            f"[bold]sheetcache demo[/bold] on a Google Sheet served by the bundled emulator at "
            f"{emu.url} (Google's default quotas on). The LLM is [bold]simulated[/bold]: "
            f"{latency:.2f} s per call."
        )
        with Cache(url, namespace="sheetcache-demo", outbox=Path(tmp) / "outbox.db") as cache:
            run_demo(cache, latency=latency, out=out)
            if agent:
                try:
                    from sheetcache.cli._demo_agent import run_agent_demo
                except ImportError as exc:
                    out.print(f"(pydantic-ai part skipped: {exc})")
                else:
                    run_agent_demo(cache, console=out, latency=latency / 4)
            cache.flush(timeout=120)
            stats = cache.stats
        writes = sum(1 for r in emu.requests if r.method != "GET")
        out.print(
            f"{stats.hits} hits, {stats.misses} misses; the emulator saw {len(emu.requests)} "
            f"requests, {writes} of them writes (misses are appended in batches)."
        )
        rows = emu.get_values(spreadsheet_id, "llm-cache")
        _print_rows(rows, out)


def _print_rows(rows: list[list[object]], out: Console, limit: int = 8) -> None:
    if not rows:
        out.print("(the sheet is empty)")
        return
    header = [str(h) for h in rows[0]]
    widths = {"key": 8, "model": 12, "prompt": 28, "response": 14, "status": 9, "hits": 4}
    shown = [h for h in header if h in widths]
    table = Table(
        title=f"What a reviewer sees: {len(rows) - 1} rows (first {min(limit, len(rows) - 1)})"
    )
    for name in shown:
        table.add_column(name, overflow="ellipsis", no_wrap=True, max_width=widths[name])
    for row in rows[1 : limit + 1]:
        cells = dict(zip(header, row, strict=False))  # Sheets trims trailing empty cells
        table.add_row(*[str(cells.get(name, "")) for name in shown])
    out.print(table)
    out.print(
        "Reviewers set status to approved or rejected, edit a response, or add a note; see docs/sheets.md."
    )

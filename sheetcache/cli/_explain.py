"""``sheetcache explain KEY --against KEY``: what differs between two stored entries.

Registered by :mod:`sheetcache.cli` as ``app.command("explain")(explain_command)``; this
module does not import the package, so no import cycle.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from sheetcache._cache import Cache
from sheetcache._errors import SheetcacheError
from sheetcache._explain import diff_entries
from sheetcache._urls import default_url, redact_url
from sheetcache.backends.base import Entry

console = Console(highlight=False)
err = Console(stderr=True)


def _resolve(cache: Cache, *prefixes: str) -> list[Entry]:
    """The one entry each prefix (6+ hex characters) starts, in one pass over the store."""
    wanted = [p.strip().lower() for p in prefixes]
    if any(len(p) < 6 for p in wanted):
        err.print("[red]error:[/red] give a key or at least its first 6 characters")
        raise typer.Exit(2)
    found: dict[str, list[Entry]] = {p: [] for p in wanted}
    full = [p for p in wanted if len(p) == 64]
    for key, entry in cache.backend.get_many(full).items():
        found[key].append(entry)
    if len(full) < len(set(wanted)):
        for entry in cache.backend.iter_entries():
            for p in wanted:
                if len(p) < 64 and entry.key.startswith(p):
                    found[p].append(entry)
    for p, matches in found.items():
        if not matches:
            err.print(f"[red]error:[/red] no entry with a key starting {p!r}")
            raise typer.Exit(1)
        if len(matches) > 1:
            err.print(f"[red]error:[/red] {len(matches)} keys start with {p!r}; give more")
            raise typer.Exit(1)
    return [found[p][0] for p in wanted]


def explain_command(
    key: Annotated[str, typer.Argument(metavar="KEY_PREFIX", help="An entry's key (6+ chars).")],
    against: Annotated[
        str, typer.Option("--against", metavar="KEY_PREFIX", help="The entry to compare with.")
    ],
    url: Annotated[
        str | None,
        typer.Option("--url", "-u", help="Cache URL. Default: $SHEETCACHE_URL, else SQLite.",
                     show_default=False),
    ] = None,
) -> None:  # fmt: skip
    """Show the key paths where two stored entries differ (old = --against, new = KEY)."""
    try:
        cache = Cache(url)
    except (SheetcacheError, ValueError, OSError) as exc:
        err.print(f"[red]error:[/red] cannot open {redact_url(url or default_url())}: {exc}")
        raise typer.Exit(2) from None
    with cache:
        new, old = _resolve(cache, key, against)
        lines = diff_entries(old, new)
    console.print(f"{old.key[:12]} → {new.key[:12]}: {len(lines)} difference(s)")
    for line in lines or ["(none: same namespace, prompt and parts)"]:
        console.print(f"  {line}", markup=False)

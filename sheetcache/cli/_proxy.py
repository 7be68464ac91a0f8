"""``sheetcache proxy``: serve the cache as a local caching proxy for any language's SDK."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from sheetcache._errors import SheetcacheError
from sheetcache.cli._app import app

err = Console(stderr=True)


@app.command("proxy")
def proxy_command(
    upstream: Annotated[
        str,
        typer.Option(
            help="The API's base URL, e.g. https://api.openai.com or https://api.anthropic.com.",
            show_default=False,
        ),
    ],
    url: Annotated[
        str | None,
        typer.Option(
            help="Cache URL (sqlite:///..., redis://..., sheets://...). "
            "Default: $SHEETCACHE_URL, else SQLite in the user cache dir.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8787,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on. Anything but loopback needs --token."),
    ] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SHEETCACHE_PROXY_TOKEN",
            help="Secret clients must send in the x-sheetcache-token header.",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Cache namespace.")
    ] = "default",
) -> None:
    """Serve a caching proxy: point an SDK's base URL at http://HOST:PORT (plus the API's path, e.g. /v1) and repeated LLM calls are answered from the cache.

    Client auth headers are forwarded upstream and never stored. GET /healthz reports the store's state and the cache's counters as JSON.
    """
    from sheetcache._cache import Cache
    from sheetcache.proxy import check_listen, serve

    try:
        check_listen(host, token)
    except SheetcacheError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        cache = Cache(url, namespace=namespace)
    except (SheetcacheError, ValueError, OSError) as exc:
        err.print(f"[red]error:[/red] cannot open the cache: {exc}")
        raise typer.Exit(2) from None
    try:
        err.print(f"sheetcache proxy: {upstream} via {cache.url} on http://{host}:{port}")
        serve(cache, upstream, host=host, port=port, token=token)
    except SheetcacheError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        cache.close()

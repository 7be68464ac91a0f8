"""A local caching proxy for LLM APIs, so any language's SDK can share the team's cache.

``sheetcache proxy --upstream https://api.openai.com --url sqlite:///llm.db`` listens on
``127.0.0.1:8787``; point an SDK's base URL at it (``http://127.0.0.1:8787/v1``). Requests go
to ``UPSTREAM + path``, through :class:`~sheetcache.transport.AsyncCacheTransport`, so the
same calls are cached, with the same keys and stored text, as with the transport.

- The client's own auth headers (``Authorization``, ``x-api-key``) are forwarded upstream
  and never stored: headers are never part of a key or an entry.
- Listening on anything but loopback needs a token: clients then send it in the
  ``x-sheetcache-token`` header (never forwarded), and requests without it get a 401.
- Streams pass through event by event as they arrive.
- ``GET /healthz`` reports the store's state and the cache's counters as JSON (no secrets;
  it needs no token, for load balancers' probes).

Starlette routes the requests and uvicorn serves them: no HTTP parsing of our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sheetcache._cache import Cache
from sheetcache._errors import ConfigError, MissingDependencyError
from sheetcache._logging import install_hint
from sheetcache.transport import AsyncCacheTransport

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["TOKEN_HEADER", "check_listen", "create_app", "is_loopback", "serve"]

TOKEN_HEADER = "x-sheetcache-token"

# Hop-by-hop and framing headers: each side of the proxy sets its own.
_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        TOKEN_HEADER,
    }
)


def is_loopback(host: str) -> bool:
    """True if ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _imports() -> tuple[Any, Any]:
    try:
        import httpx2
        import starlette
    except ImportError as exc:
        raise MissingDependencyError(
            f"the proxy needs starlette, uvicorn and httpx2 ({exc}): {install_hint('proxy')}"
        ) from None
    return httpx2, starlette


def create_app(
    cache: Cache,
    upstream: str,
    *,
    token: str | None = None,
    timeout: float = 600.0,
    transport: Any = None,
) -> Starlette:
    """The proxy as an ASGI application (serve it with any ASGI server).

    Args:
        cache: where answers live.
        upstream: the API's base URL; a request for ``/v1/chat/completions`` goes to
            ``upstream + "/v1/chat/completions"``.
        token: if set, every request except ``/healthz`` must carry it in the
            ``x-sheetcache-token`` header.
        timeout: seconds to wait for the upstream's answer (and between stream events).
        transport: the httpx2 async transport that reaches the upstream (default:
            ``httpx2.AsyncHTTPTransport()``); a ``httpx2.MockTransport`` makes a local stub.

    Raises:
        ConfigError: ``upstream`` is not an http(s) URL.
        MissingDependencyError: starlette or httpx2 is not installed.
    """
    httpx2, _ = _imports()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    base = httpx2.URL(upstream)
    if base.scheme not in ("http", "https") or not base.host:
        raise ConfigError(
            f"--upstream must be an http(s) URL like https://api.openai.com, not {upstream!r}"
        )
    prefix = base.raw_path.decode("ascii").split("?")[0].rstrip("/")
    cached = AsyncCacheTransport(cache, transport)
    timeouts = httpx2.Timeout(timeout, connect=min(timeout, 10.0)).as_dict()

    def refused() -> Response:
        return JSONResponse(
            {"error": {"message": f"sheetcache proxy: send the proxy's token in the {TOKEN_HEADER} header",
                       "type": "sheetcache_unauthorized"}},
            status_code=401,
        )  # fmt: skip

    async def healthz(request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(_health, cache, upstream))

    async def forward(request: Request) -> Response:
        if token is not None:
            given = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return refused()
        # The path and query as the client sent them (still percent-encoded).
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string") or b""
        url = base.copy_with(raw_path=prefix.encode() + raw_path + (b"?" + query if query else b""))
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        upstream_request = httpx2.Request(
            request.method,
            url,
            headers=headers,
            content=await request.body(),
            extensions={"timeout": timeouts},
        )
        try:
            response = await cached.handle_async_request(upstream_request)
        except httpx2.HTTPError as exc:
            return JSONResponse(
                {"error": {"message": f"sheetcache proxy: upstream {base.host} failed: {exc!r}",
                           "type": "sheetcache_upstream_error"}},
                status_code=502,
            )  # fmt: skip
        # Raw pairs, not a dict: repeated headers (set-cookie) must all reach the client.
        out_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.multi_items()
            if k.lower() not in _HOP
        ]

        async def body() -> AsyncIterator[bytes]:
            try:
                if response.is_stream_consumed:  # a JSON answer the transport built whole
                    yield response.content
                    return
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:  # also when the client goes away: the stream then counts as abandoned
                await response.aclose()

        out = StreamingResponse(body(), status_code=response.status_code)
        out.raw_headers = out_headers
        return out

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await cached.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/{path:path}", forward, methods=methods),
        ],
        lifespan=lifespan,
    )


def _health(cache: Cache, upstream: str) -> dict[str, Any]:
    """The store's state and the cache's counters, as ``/healthz`` serves them."""
    error = None
    try:  # one cheap read of a key that cannot exist: is the store answering?
        cache.backend.lookup("0" * 64)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        error = f"{type(exc).__name__}: {exc}"
    stats = asdict(cache.stats)
    stats["hit_rate"] = cache.stats.hit_rate
    return {
        "status": "ok" if error is None else "degraded",
        "store": {"url": cache.url, "reachable": error is None, "error": error},
        "upstream": upstream,
        "namespace": cache.namespace,
        "stats": stats,
    }


def check_listen(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token.

    Raises:
        ConfigError: ``host`` is not loopback and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"listening on {host} lets other machines use your cache and your upstream: "
            "pass --token SECRET too, and have clients send it in the "
            f"{TOKEN_HEADER} header"
        )


def serve(
    cache: Cache,
    upstream: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    token: str | None = None,
) -> None:
    """Run the proxy until interrupted (the ``sheetcache proxy`` command).

    Raises:
        ConfigError: ``host`` is not loopback and no ``token`` was given.
        MissingDependencyError: uvicorn, starlette or httpx2 is not installed.
    """
    check_listen(host, token)
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError(f"the proxy needs uvicorn: {install_hint('proxy')}") from None
    app = create_app(cache, upstream, token=token)
    uvicorn.run(app, host=host, port=port, log_level="warning")

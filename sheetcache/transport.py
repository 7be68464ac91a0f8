"""httpx transports that answer repeated LLM API calls from a sheetcache :class:`~sheetcache.Cache`.

They work inside ``httpx`` clients (the openai SDK) and inside ``httpx2`` clients (the
anthropic SDK 2.x, and the openai SDK too)::

    import httpx, httpx2, openai, anthropic
    from sheetcache import Cache
    from sheetcache.transport import AsyncCacheTransport, CacheTransport

    cache = Cache("sqlite:///llm.db")
    client = openai.OpenAI(http_client=httpx.Client(transport=CacheTransport(cache)))
    claude = anthropic.AsyncAnthropic(
        http_client=httpx2.AsyncClient(transport=AsyncCacheTransport(cache))
    )

Cached: POSTs to OpenAI-compatible ``/chat/completions``, ``/responses``, ``/completions``,
``/embeddings`` and Anthropic's ``/v1/messages`` (see :mod:`sheetcache._http` for the key and
the stored text). Everything else goes to the wrapped transport unchanged. A non-2xx answer
is never stored. Every cached route's response carries ``x-sheetcache: hit`` or ``miss``.

A ``stream: true`` call passes the server's events through as they arrive and is stored
once its terminal event (``data: [DONE]``, ``message_stop``, ``response.completed``) has
passed; a stream that the caller abandons or the server cuts off before it is not stored.
A hit replays the same events, one chunk per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import orjson

from sheetcache._answer import Answer
from sheetcache._cache import Cache
from sheetcache._errors import CacheMissError
from sheetcache._http import Call, HTTPAnswer, SSERecorder, call_for, is_cached_route

__all__ = ["AsyncCacheTransport", "CacheTransport"]

log = logging.getLogger("sheetcache")

HEADER = "x-sheetcache"
#: Status of the response to a miss in replay mode (424 Failed Dependency: the answer
#: depends on a recording that is not there). SDKs raise it as an API status error.
REPLAY_MISS_STATUS = 424

# Dropped from a passed-through response: the body we serve is decoded and re-framed.
_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


class _NotStored(Exception):
    """Raised out of the call function so the core stores nothing; carries what to serve."""

    def __init__(
        self, passed: tuple[int, list[tuple[str, str]], bytes] | None = None, reason: str = ""
    ) -> None:
        super().__init__(reason)
        self.passed = passed
        """(status, headers, body) of upstream's answer, to hand the caller as it was."""


def _package(request: Any) -> ModuleType:
    """Httpx or httpx2, whichever the request (and so the client) comes from."""
    return sys.modules[type(request).__module__.partition(".")[0]]


def _host(request: Any) -> str:
    url = request.url
    return str(url.host) if url.port is None else f"{url.host}:{url.port}"


def _call_of(request: Any, body: bytes) -> Call | None:
    return call_for(request.method, _host(request), request.url.path, body, request.url.query)


def _stored(answer: HTTPAnswer, call: Call) -> Any:
    """What the call function returns: the answer, with its usage as the entry's metadata."""
    usage = answer.usage(call.key_parts.get("model"), call.provider)
    return Answer(answer, metadata={"usage": usage} if usage else {})


class _Foreign:
    """The entry under this key is not an HTTP answer (stored by other code): not served."""


def _answer_of(value: Any) -> HTTPAnswer | _Foreign:
    if isinstance(value, HTTPAnswer):
        return value
    log.warning(
        "sheetcache: the entry for this request holds a %s, not an HTTP response; "
        "sending the request upstream instead",
        type(value).__name__,
    )
    return _Foreign()


def _replay_miss(call: Call, exc: CacheMissError) -> HTTPAnswer:
    """The error response for a miss in replay mode: an HTTP error the SDK raises at once
    (``x-should-retry: false``), with the reason as the provider-style error message.
    """
    message = (
        f"sheetcache replay mode: no stored answer for {call.key_parts['endpoint']} "
        f"(model {call.key_parts.get('model')!r}), and nothing was sent. Run it once in "
        f"read-write mode to record it. ({exc})"
    )
    body = {"type": "error", "error": {"type": "sheetcache_replay_miss", "message": message}}
    return HTTPAnswer(call.api, REPLAY_MISS_STATUS, "application/json", body=body)


def _passed_headers(response: Any, state: str) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _FRAMING]
    return [*headers, (HEADER, state)]


def _as_it_came(response: Any, content: bytes) -> _NotStored:
    """Upstream's answer to hand over unstored, as it came (status, headers, body)."""
    passed = (response.status_code, _passed_headers(response, "miss"), content)
    return _NotStored(passed, f"HTTP {response.status_code}")


def _json_answer(call: Call, response: Any, content: bytes) -> HTTPAnswer:
    """Upstream's answer to store, or _NotStored carrying it as it was (status, headers such
    as ``retry-after``, body) when it is an error or not JSON.
    """
    content_type = response.headers.get("content-type", "application/json")
    body: Any = None
    if 200 <= response.status_code < 300:
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            body = None
    if body is None:
        raise _as_it_came(response, content)
    return HTTPAnswer(call.api, response.status_code, content_type, body=body)


# How long a finished stream waits for its caller to take the terminal event before it
# counts as abandoned: SDKs read it at once, so this only bounds a caller that went away.
_HANDOVER_SECONDS = 300.0


def _finished(recorder: SSERecorder, response: Any, wait: Any, taken: Any) -> HTTPAnswer:
    """The stream's answer, or _NotStored if it was cut off, failed or abandoned."""
    answer = recorder.answer(
        response.status_code, response.headers.get("content-type", "text/event-stream")
    )
    if answer is None:
        raise _NotStored(reason="the stream ended before its terminal event")
    # Stored only once the caller holds the terminal event: one that stopped reading
    # before it got there abandoned the stream.
    if not wait(_HANDOVER_SECONDS) or not taken.is_set():
        raise _NotStored(reason="the caller stopped reading")
    return answer


def _served_or_raise(kit: _Kit, request: Any, call: Call, item: Any, *, aio: bool) -> Any:
    """The response for a stream call that ended before any event: a hit or an error."""
    if isinstance(item, HTTPAnswer):
        return kit.served(request, item, "hit", aio=aio)
    if isinstance(item, CacheMissError):
        return kit.served(request, _replay_miss(call, item), "replay-miss", aio=aio)
    if isinstance(item, _NotStored) and item.passed is not None:
        return kit.passed(request, item.passed, aio=aio)
    raise item if isinstance(item, BaseException) else RuntimeError(item)


def _refused(
    kit: _Kit, request: Any, call: Call, exc: _NotStored | CacheMissError, *, aio: bool
) -> Any:
    """The response when the cache did not answer: upstream's as it came, or a replay miss."""
    if isinstance(exc, CacheMissError):
        return kit.served(request, _replay_miss(call, exc), "replay-miss", aio=aio)
    assert exc.passed is not None
    return kit.passed(request, exc.passed, aio=aio)


def _reply(kit: _Kit, request: Any, value: Any, upstream: list[Any], *, aio: bool) -> Any | None:
    """The response for a cached call's ``value``; None to send the request on untouched."""
    if upstream:  # this call was the miss: upstream's own response, headers included
        return kit.passed(request, upstream[0], aio=aio)
    answer = _answer_of(value)
    if isinstance(answer, _Foreign):
        return None
    return kit.served(request, answer, "hit", aio=aio)


def _head_response(kit: _Kit, request: Any, head: Any, stream: Any) -> Any:
    """The response passing a live stream through: upstream's status and headers."""
    return kit.pkg.Response(
        head.status_code,
        headers=_passed_headers(head, "miss"),
        stream=stream,
        request=request,
        extensions={k: v for k, v in head.extensions.items() if k == "http_version"},
    )


def _events(recorder: SSERecorder, chunk: bytes) -> list[tuple[bytes, bool]]:
    """The events ``chunk`` completes, as bytes to pass on, the last flagged if it ends the
    stream.
    """
    events = recorder.feed(chunk)
    ended = recorder.complete or recorder.failed
    return [((e + "\n\n").encode(), ended and i == len(events) - 1) for i, e in enumerate(events)]


def _is_sse(response: Any) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


class _Kit:
    """The response and stream classes of one HTTP package (httpx or httpx2)."""

    def __init__(self, pkg: ModuleType) -> None:
        self.pkg = pkg

        class Chunks(pkg.SyncByteStream):  # type: ignore[name-defined,misc]
            def __init__(self, chunks: Iterator[bytes], on_close: Any = None) -> None:
                self._chunks, self._on_close = chunks, on_close

            def __iter__(self) -> Iterator[bytes]:
                yield from self._chunks

            def close(self) -> None:
                if self._on_close is not None:
                    self._on_close()

        class AsyncChunks(pkg.AsyncByteStream):  # type: ignore[name-defined,misc]
            def __init__(self, chunks: AsyncIterator[bytes], on_close: Any = None) -> None:
                self._chunks, self._on_close = chunks, on_close

            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in self._chunks:
                    yield chunk

            async def aclose(self) -> None:
                if self._on_close is not None:
                    await self._on_close()

        self.Chunks, self.AsyncChunks = Chunks, AsyncChunks

    def passed(
        self, request: Any, passed: tuple[int, list[tuple[str, str]], bytes], *, aio: bool
    ) -> Any:
        """A response handing over upstream's answer as it came (an error, say)."""
        status, headers, content = passed
        return self.pkg.Response(status, headers=headers, content=content, request=request)

    def served(self, request: Any, answer: HTTPAnswer, state: str, *, aio: bool) -> Any:
        """A response serving a stored (or not storable) answer, one chunk per event."""
        headers = [("content-type", answer.content_type), (HEADER, state)]
        if state == "replay-miss":
            headers.append(("x-should-retry", "false"))
        chunks = answer.chunks() if answer.events is not None else None
        if chunks is None:
            return self.pkg.Response(
                answer.status, headers=headers, content=answer.content(), request=request
            )
        stream = self.AsyncChunks(_aiter(chunks)) if aio else self.Chunks(iter(chunks))
        return self.pkg.Response(answer.status, headers=headers, stream=stream, request=request)


async def _aiter(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


_kits: dict[str, _Kit] = {}


def _kit(request: Any) -> _Kit:
    pkg = _package(request)
    kit = _kits.get(pkg.__name__)
    if kit is None:
        kit = _kits[pkg.__name__] = _Kit(pkg)
    return kit


class _Base:
    def __init__(self, cache: Cache, transport: Any = None) -> None:
        if not isinstance(cache, Cache):
            raise TypeError(f"{type(self).__name__} needs a sheetcache.Cache, not {cache!r}")
        self.cache = cache
        self._given = transport
        self._inner: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _transport_for(self, request: Any, factory: str) -> Any:
        if self._given is not None:
            return self._given
        pkg = _package(request)
        with self._lock:
            inner = self._inner.get(pkg.__name__)
            if inner is None:
                inner = self._inner[pkg.__name__] = getattr(pkg, factory)()
        return inner


class CacheTransport(_Base):
    """A sync httpx/httpx2 transport that caches LLM API calls in ``cache``.

    Args:
        cache: where answers live; its namespace, ttl and store apply.
        transport: the transport that talks to the network (default: the client package's
            own ``HTTPTransport()``). Pass one to set retries, proxies or TLS options.

    Example:
        >>> import httpx
        >>> from sheetcache import Cache
        >>> client = httpx.Client(transport=CacheTransport(Cache("memory://")))
    """

    def handle_request(self, request: Any) -> Any:
        """Answer ``request`` from the cache, or send it on (and store a 2xx answer)."""
        inner = self._transport_for(request, "HTTPTransport")
        if not is_cached_route(request.method, request.url.path):
            return inner.handle_request(request)
        call = _call_of(request, request.read())
        if call is None:
            return inner.handle_request(request)
        kit = _kit(request)
        if call.stream:
            return self._stream(kit, inner, request, call)
        # On a miss the caller gets upstream's own bytes and headers (request ids, rate
        # limits); hits serve the stored answer.
        upstream: list[tuple[int, list[tuple[str, str]], bytes]] = []

        def send(_prompt: Any) -> Any:
            response = inner.handle_request(request)
            try:
                content = response.read()
            finally:
                response.close()
            upstream.append((response.status_code, _passed_headers(response, "miss"), content))
            return _stored(_json_answer(call, response, content), call)

        try:
            value = self.cache.get_or_call(call.prompt, send, **call.key_parts)
        except (_NotStored, CacheMissError) as exc:
            return _refused(kit, request, call, exc, aio=False)
        reply = _reply(kit, request, value, upstream, aio=False)
        return inner.handle_request(request) if reply is None else reply

    def _stream(self, kit: _Kit, inner: Any, request: Any, call: Call) -> Any:
        # The core answers only once the call function returns, but the caller must see
        # events as they arrive: the lookup (and on a miss the call) runs in a worker thread
        # that hands the response head and its chunks over through a queue.
        messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        taken, settled = threading.Event(), threading.Event()  # settled: taken or abandoned

        def send(_prompt: Any) -> Any:
            response = inner.handle_request(request)
            try:
                if not (200 <= response.status_code < 300 and _is_sse(response)):
                    raise _as_it_came(response, response.read())
                messages.put(("head", response))
                recorder = SSERecorder(call.api)
                # One chunk per event, as a hit replays them: the caller "holds" the
                # terminal event only once it pulled that very chunk.
                for chunk in response.iter_bytes():
                    for event, final in _events(recorder, chunk):
                        if settled.is_set():
                            raise _NotStored(reason="the caller stopped reading")
                        messages.put(("chunk", (event, final)))
                    if recorder.complete or recorder.failed:
                        break
            finally:
                response.close()
            return _stored(_finished(recorder, response, settled.wait, taken), call)

        def work() -> None:
            for _attempt in range(3):
                called = False

                def leader(prompt: Any) -> Any:
                    nonlocal called
                    called = True
                    return send(prompt)

                try:
                    value = self.cache.get_or_call(call.prompt, leader, **call.key_parts)
                except _NotStored as exc:
                    if exc.passed is None and not called:
                        continue  # we followed a stream that was not stored: call ourselves
                    messages.put(("done", exc))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    messages.put(("done", exc))
                else:
                    messages.put(("done", None if called else _answer_of(value)))
                return
            messages.put(("done", _NotStored(reason="streams kept failing")))

        # The thread runs in a copy of our context, so a cache.override() around the call
        # (replay in one test, say) holds inside it too.
        context = contextvars.copy_context()
        worker = threading.Thread(
            target=context.run, args=(work,), name="sheetcache-stream", daemon=True
        )
        worker.start()
        kind, item = messages.get()
        if kind == "done":
            if isinstance(item, _Foreign):
                return inner.handle_request(request)
            return _served_or_raise(kit, request, call, item, aio=False)
        head = item

        def chunks() -> Iterator[bytes]:
            while True:
                kind, item = messages.get()
                if kind == "chunk":
                    chunk, final = item
                    if final:  # the caller holds the terminal event: the stream is complete
                        taken.set()
                        settled.set()
                    yield chunk
                    continue
                if isinstance(item, BaseException) and not isinstance(item, _NotStored):
                    raise item  # a network error mid-stream reaches the caller as such
                return

        def on_close() -> None:
            settled.set()  # abandons the stream unless its terminal event was taken
            if taken.is_set():  # let the store land before the caller moves on
                worker.join(_HANDOVER_SECONDS)

        return _head_response(kit, request, head, kit.Chunks(chunks(), on_close=on_close))

    def close(self) -> None:
        """Close the wrapped transport (not the cache, which may be shared)."""
        for inner in [self._given, *self._inner.values()]:
            if inner is not None:
                inner.close()

    def __enter__(self) -> CacheTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCacheTransport(_Base):
    """The async twin of :class:`CacheTransport`, for ``httpx.AsyncClient`` and
    ``httpx2.AsyncClient`` (the ``AsyncOpenAI`` and ``AsyncAnthropic`` SDK clients).

    Args:
        cache: where answers live.
        transport: the async transport that talks to the network (default: the client
            package's own ``AsyncHTTPTransport()``).
    """

    async def handle_async_request(self, request: Any) -> Any:
        """Answer ``request`` from the cache, or send it on (and store a 2xx answer)."""
        inner = self._transport_for(request, "AsyncHTTPTransport")
        if not is_cached_route(request.method, request.url.path):
            return await inner.handle_async_request(request)
        call = _call_of(request, await request.aread())
        if call is None:
            return await inner.handle_async_request(request)
        kit = _kit(request)
        if call.stream:
            return await self._stream(kit, inner, request, call)
        upstream: list[tuple[int, list[tuple[str, str]], bytes]] = []

        async def send(_prompt: Any) -> Any:
            response = await inner.handle_async_request(request)
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            upstream.append((response.status_code, _passed_headers(response, "miss"), content))
            return _stored(_json_answer(call, response, content), call)

        try:
            value = await self.cache.aget_or_call(call.prompt, send, **call.key_parts)
        except (_NotStored, CacheMissError) as exc:
            return _refused(kit, request, call, exc, aio=True)
        reply = _reply(kit, request, value, upstream, aio=True)
        return await inner.handle_async_request(request) if reply is None else reply

    async def _stream(self, kit: _Kit, inner: Any, request: Any, call: Call) -> Any:
        # As in the sync transport, with a task in place of the thread.
        messages: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        taken, settled = asyncio.Event(), asyncio.Event()

        async def wait_settled(timeout: float) -> bool:
            try:
                await asyncio.wait_for(settled.wait(), timeout)
            except asyncio.TimeoutError:
                return False
            return True

        async def send(_prompt: Any) -> Any:
            response = await inner.handle_async_request(request)
            try:
                if not (200 <= response.status_code < 300 and _is_sse(response)):
                    raise _as_it_came(response, await response.aread())
                messages.put_nowait(("head", response))
                recorder = SSERecorder(call.api)
                async for chunk in response.aiter_bytes():
                    for event, final in _events(recorder, chunk):
                        if settled.is_set():
                            raise _NotStored(reason="the caller stopped reading")
                        messages.put_nowait(("chunk", (event, final)))
                    if recorder.complete or recorder.failed:
                        break
                finished = await wait_settled(_HANDOVER_SECONDS)
            except asyncio.CancelledError:
                if settled.is_set() and not taken.is_set():  # our own cancel on close
                    raise _NotStored(reason="the caller stopped reading") from None
                raise
            finally:
                await response.aclose()
            return _stored(_finished(recorder, response, lambda _t: finished, taken), call)

        async def work() -> None:
            for _attempt in range(3):
                called = False

                async def leader(prompt: Any) -> Any:
                    nonlocal called
                    called = True
                    return await send(prompt)

                try:
                    value = await self.cache.aget_or_call(call.prompt, leader, **call.key_parts)
                except _NotStored as exc:
                    if exc.passed is None and not called:
                        continue
                    messages.put_nowait(("done", exc))
                except BaseException as exc:
                    messages.put_nowait(("done", exc))
                    if isinstance(exc, asyncio.CancelledError) and not settled.is_set():
                        raise
                else:
                    messages.put_nowait(("done", None if called else _answer_of(value)))
                return
            messages.put_nowait(("done", _NotStored(reason="streams kept failing")))

        task = asyncio.get_running_loop().create_task(work())
        kind, item = await messages.get()
        if kind == "done":
            if isinstance(item, _Foreign):
                return await inner.handle_async_request(request)
            return _served_or_raise(kit, request, call, item, aio=True)
        head = item

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                kind, item = await messages.get()
                if kind == "chunk":
                    chunk, final = item
                    if final:
                        taken.set()
                        settled.set()
                    yield chunk
                    continue
                if isinstance(item, BaseException) and not isinstance(item, _NotStored):
                    raise item
                return

        async def on_close() -> None:
            settled.set()
            if not taken.is_set() and not task.done():
                task.cancel()  # it may be waiting on the network for a chunk nobody wants
            with contextlib.suppress(asyncio.CancelledError, _NotStored):
                await task

        return _head_response(kit, request, head, kit.AsyncChunks(chunks(), on_close=on_close))

    async def aclose(self) -> None:
        """Close the wrapped transport (not the cache, which may be shared)."""
        for inner in [self._given, *self._inner.values()]:
            if inner is not None:
                await inner.aclose()

    async def __aenter__(self) -> AsyncCacheTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

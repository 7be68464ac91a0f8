"""The HTTP side: a threading HTTP/1.1 server and the pipeline every request goes through.

Pipeline, in Google's order as far as a client can tell: injected latency, injected faults,
the 10 MiB body limit, authentication (401), the Sheets per-minute quota (429), then the API
call itself under the store lock, so each request is applied atomically. Every request is
logged as a :class:`RequestRecord`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import orjson

from sheetcache.emulator import _batch, _drive_api, _sheets_api
from sheetcache.emulator._common import Call, Raw
from sheetcache.emulator._errors import (
    ApiError,
    bad_request,
    server_error,
    unauthenticated,
)
from sheetcache.emulator._faults import Faults
from sheetcache.emulator._quota import Quota, quota_error
from sheetcache.emulator._state import Store

__all__ = [
    "MAX_BODY_BYTES",
    "App",
    "EmulatorHTTPServer",
    "Headers",
    "Reply",
    "RequestRecord",
]

logger = logging.getLogger("sheetcache.emulator")

#: Google refuses request bodies over 10 MiB.
MAX_BODY_BYTES = 10 * 1024 * 1024
#: The request log keeps the most recent records only, so a long-running server stays small.
LOG_LIMIT = 200_000
_JSON = "application/json; charset=UTF-8"


class Headers(Protocol):
    """Request headers: a dict, or the ``email.message.Message`` http.server parses."""

    def get(self, name: str, default: Any = None, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the emulator received.

    Attributes:
        method: HTTP verb.
        path: The path, percent-decoded (``/v4/spreadsheets/ID/values/'Sheet1'!A1:append``).
        query: Query parameters, each a list of values.
        status: The status sent; ``None`` when the connection was dropped unanswered.
        time: When the request arrived (``time.time()``).
        duration: Seconds spent handling it (latency injection included).
        user: Who the access token stands for (``None`` if unauthenticated).
        api: ``"sheets"``, ``"drive"``, ``"oauth"`` or ``"other"``.
        kind: ``"read"`` (GET) or ``"write"``.
        fault: The injected fault it suffered: ``"fail"``, ``"outage"``, ``"drop"``,
            ``"lose_response"`` or ``None``.
        value_input_option: ``RAW``/``USER_ENTERED`` for value writes (query or body).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None
    time: float
    duration: float
    user: str | None
    api: str
    kind: str
    fault: str | None
    value_input_option: str | None


@dataclass
class Reply:
    """What to send back; ``action`` asks the socket layer to drop the connection instead."""

    status: int
    body: bytes = b""
    content_type: str | None = _JSON
    action: str | None = None
    fault: str | None = None
    user: str | None = None
    value_input_option: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _error_reply(exc: ApiError) -> Reply:
    return Reply(exc.code, orjson.dumps(exc.body()))


def _api_of(path: str) -> str:
    if path.startswith("/v4/"):
        return "sheets"
    if path.startswith(("/drive/", "/upload/drive/")):
        return "drive"
    if path in ("/token", "/oauth2/v4/token", "/o/oauth2/token"):
        return "oauth"
    return "other"


class App:
    """Routes requests to the API handlers; independent of the socket layer."""

    def __init__(self, store: Store, quota: Quota, faults: Faults) -> None:
        self.store = store
        self.quota = quota
        self.faults = faults
        self._log: deque[RequestRecord] = deque(maxlen=LOG_LIMIT)
        self._log_lock = threading.Lock()

    @property
    def log(self) -> list[RequestRecord]:
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def handle(self, method: str, target: str, headers: Headers, body: bytes | None) -> Reply:
        """Answer one request; ``body`` is ``None`` when it was over the size limit."""
        arrived = time.time()
        started = time.perf_counter()
        raw_path, _, query_string = target.partition("?")
        query = parse_qs(query_string, keep_blank_values=True)
        api = _api_of(raw_path)
        kind = "read" if method in ("GET", "HEAD") else "write"
        try:
            reply = self._process(method, raw_path, query, headers, body, api, kind)
        except ApiError as exc:
            reply = _error_reply(exc)
        except Exception:  # a bug in the emulator must not kill the connection thread
            logger.exception("emulator failed on %s %s", method, target)
            reply = _error_reply(server_error(500))
        record = RequestRecord(
            method=method,
            path=unquote(raw_path),
            query=query,
            status=None if reply.action else reply.status,
            time=arrived,
            duration=time.perf_counter() - started,
            user=reply.user,
            api=api,
            kind=kind,
            fault=reply.fault,
            value_input_option=reply.value_input_option,
        )
        with self._log_lock:
            self._log.append(record)
        return reply

    def _process(
        self,
        method: str,
        raw_path: str,
        query: dict[str, list[str]],
        headers: Headers,
        body: bytes | None,
        api: str,
        kind: str,
        *,
        faults: bool = True,
    ) -> Reply:
        latency = self.faults.latency_ms
        if latency > 0 and faults:
            time.sleep(latency / 1000)
        fault = self.faults.take(method) if faults else None
        if fault is not None and fault.kind == "apply_late":
            # Applied later, in the background, as if Google finished it after the client
            # gave up; the client sees the connection close now.
            late = threading.Timer(
                fault.delay,
                self._apply_late,
                (method, raw_path, query, headers, body, api, kind),
            )
            late.daemon = True
            late.start()
            return Reply(0, action="drop", fault="apply_late")
        if fault is not None:
            if fault.kind in ("fail", "outage"):
                if fault.status == 429:
                    limit = (
                        self.quota.limits.read_per_user
                        if kind == "read"
                        else self.quota.limits.write_per_user
                    )
                    exc = quota_error(kind, limit)
                else:
                    exc = server_error(fault.status)
                reply = _error_reply(exc)
                reply.fault = fault.kind
                return reply
            if fault.kind == "drop":
                return Reply(0, action="drop", fault="drop")
        lose = fault is not None and fault.kind == "lose_response"
        if body is None:
            raise bad_request(f"Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes.")
        user = "oauth-client"
        if api != "oauth":
            token = _bearer(headers) or (query.get("access_token") or [""])[-1]
            if not token:
                raise unauthenticated()
            user = _drive_api.user_from_token(token)
        if api == "sheets":
            refused = self.quota.consume(kind, user)
            if refused is not None:
                reply = _error_reply(refused)
                reply.user = user
                return reply
        call = Call(self.store, user, method, query, _parse_body(headers, body), body)
        try:
            with self.store.lock:
                reply = _encode(_route(call, method, raw_path))
        except ApiError as exc:
            reply = _error_reply(exc)
        reply.user = user
        reply.value_input_option = call.value_input_option
        if lose:
            reply.action = "lose_response"
            reply.fault = "lose_response"
        return reply

    def _apply_late(
        self,
        method: str,
        raw_path: str,
        query: dict[str, list[str]],
        headers: Headers,
        body: bytes | None,
        api: str,
        kind: str,
    ) -> None:
        try:
            self._process(method, raw_path, query, headers, body, api, kind, faults=False)
        except Exception:  # an error reply has nobody to go to
            logger.debug("late-applied %s %s failed", method, raw_path, exc_info=True)


def _bearer(headers: Headers) -> str:
    value = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _parse_body(headers: Headers, body: bytes) -> Any:
    if not body:
        return None
    content_type = (headers.get("Content-Type") or "").lower()
    if "json" not in content_type and body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("Invalid JSON payload received. Unexpected token.") from None


def _encode(result: Any) -> Reply:
    # Runs under the store lock: results may share lists with the stored sheets.
    if isinstance(result, Raw):
        return Reply(200, result.data, result.content_type)
    status = 200
    if isinstance(result, tuple):
        status, result = result
    if result is None:
        return Reply(status, b"", None)
    return Reply(status, orjson.dumps(result))


def _no_route() -> ApiError:
    return ApiError(404, "Method not found.")


def _route(call: Call, method: str, raw_path: str) -> Any:
    segments = raw_path.split("/")
    if len(segments) >= 3 and segments[1] == "v4" and segments[2] == "spreadsheets":
        return _route_sheets(call, method, segments[3:])
    if raw_path.startswith("/drive/v3/files"):
        return _route_drive(call, method, segments[4:])
    if raw_path.startswith("/upload/drive/v2/files/") and method == "PUT":
        return _drive_api.import_csv(call, unquote(segments[5]))
    if _api_of(raw_path) == "oauth" and method == "POST":
        return _drive_api.token(call)
    raise _no_route()


def _route_sheets(call: Call, method: str, rest: list[str]) -> Any:
    if not rest or rest == [""]:
        if method == "POST":
            return _sheets_api.create_spreadsheet(call)
        raise _no_route()
    raw_id, _, verb = rest[0].partition(":")
    spreadsheet_id = unquote(raw_id)
    if len(rest) == 1:
        if method == "GET" and not verb:
            return _sheets_api.get_spreadsheet(call, spreadsheet_id)
        if method == "POST" and verb == "batchUpdate":
            return _batch.batch_update(call, spreadsheet_id)
        raise _no_route()
    if rest[1] == "values" and len(rest) >= 3:
        segment = "/".join(rest[2:])
        verb = ""
        left, sep, right = segment.rpartition(":")
        # A raw ':' may also be part of the range (A1:B2): only known verbs split off.
        if sep and right in ("append", "clear"):
            segment, verb = left, right
        range_text = unquote(segment)
        if method == "GET" and not verb:
            return _sheets_api.values_get(call, spreadsheet_id, range_text)
        if method == "PUT" and not verb:
            return _sheets_api.values_update(call, spreadsheet_id, range_text)
        if method == "POST" and verb == "append":
            return _sheets_api.values_append(call, spreadsheet_id, range_text)
        if method == "POST" and verb == "clear":
            return _sheets_api.values_clear(call, spreadsheet_id, range_text)
        raise _no_route()
    if len(rest) == 2 and rest[1].startswith("values:"):
        verb = rest[1][len("values:") :]
        if method == "GET" and verb == "batchGet":
            return _sheets_api.values_batch_get(call, spreadsheet_id)
        if method == "POST" and verb == "batchUpdate":
            return _sheets_api.values_batch_update(call, spreadsheet_id)
        if method == "POST" and verb == "batchClear":
            return _sheets_api.values_batch_clear(call, spreadsheet_id)
        raise _no_route()
    if len(rest) == 3 and rest[1] == "sheets" and method == "POST":
        sheet_id, _, verb = rest[2].partition(":")
        if verb == "copyTo":
            return _sheets_api.copy_to(call, spreadsheet_id, unquote(sheet_id))
    raise _no_route()


def _route_drive(call: Call, method: str, rest: list[str]) -> Any:
    if not rest or rest == [""]:
        if method == "GET":
            return _drive_api.files_list(call)
        if method == "POST":
            return _drive_api.files_create(call)
        raise _no_route()
    file_id = unquote(rest[0])
    if len(rest) == 1:
        if method == "GET":
            return _drive_api.files_get(call, file_id)
        if method == "DELETE":
            return _drive_api.files_delete(call, file_id)
        if method == "PATCH":
            return _drive_api.files_update(call, file_id)
        raise _no_route()
    sub = rest[1]
    if sub == "copy" and method == "POST":
        return _drive_api.files_copy(call, file_id)
    if sub == "export" and method == "GET":
        return _drive_api.files_export(call, file_id)
    if sub == "permissions":
        if len(rest) == 2:
            if method == "POST":
                return _drive_api.permissions_create(call, file_id)
            if method == "GET":
                return _drive_api.permissions_list(call, file_id)
        elif len(rest) == 3:
            permission_id = unquote(rest[2])
            if method == "DELETE":
                return _drive_api.permissions_delete(call, file_id, permission_id)
            if method == "PATCH":
                return _drive_api.permissions_update(call, file_id, permission_id)
    if sub == "comments" and len(rest) == 2:
        if method == "GET":
            return _drive_api.comments_list(call, file_id)
        if method == "POST":
            return _drive_api.comments_create(call, file_id)
    raise _no_route()


# --- sockets -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so client connection pools are exercised
    server_version = "ESF"
    sys_version = ""
    # An idle keep-alive connection is closed after this long.
    timeout = 300
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    self.rfile.readline()
                    break
                chunk = self.rfile.read(length)
                self.rfile.readline()
                size += length
                if size <= MAX_BODY_BYTES:
                    chunks.append(chunk)
            return b"".join(chunks) if size <= MAX_BODY_BYTES else None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            # Read and discard, so the refusal reaches a client still sending its body.
            remaining = length
            while remaining > 0:
                got = self.rfile.read(min(remaining, 1 << 20))
                if not got:
                    break
                remaining -= len(got)
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        body = self._read_body()
        reply = self.server.app.handle(self.command, self.path, self.headers, body)
        if reply.action is not None:
            # Close without a response: the client sees "connection aborted".
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(reply.status)
            if reply.content_type and (reply.body or reply.status != 204):
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            # Headers and a small body leave in one write: two small writes would wait on
            # the client's delayed ACK (Nagle), adding ~40 ms to every request.
            self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
            small = len(reply.body) < 65536
            if small and self.command != "HEAD":
                self._headers_buffer.append(reply.body)  # type: ignore[attr-defined]
            self.flush_headers()
            if not small and self.command != "HEAD":
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can close its keep-alive connections on shutdown."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            self._active.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._active_lock:
            self._active.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock every handler waiting on an idle keep-alive connection."""
        with self._active_lock:
            active = list(self._active)
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

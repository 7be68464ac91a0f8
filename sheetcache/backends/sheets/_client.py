"""Talking to Google: credentials, one retry policy, a client-side rate limiter.

Every request goes through :meth:`SheetsApi.call`, which

- waits for a token of the per-minute budget (:class:`RateLimiter`): Google's default quota
  is 60 read and 60 write requests per minute per user, and a 429 costs a whole backoff, so
  staying under it is cheaper than bouncing off it;
- retries 429, 5xx, timeouts and connection errors with exponential backoff and jitter
  (Google's guidance: double the wait up to 32-64 s), within a total deadline;
- gives every request a timeout (gspread's default is none: a stalled socket would hang);
- turns what finally failed into a :class:`~sheetcache.BackendError` (or
  :class:`~sheetcache.ConfigError`) whose message says what to do, and never includes a
  credential.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import requests
import tenacity
from gspread.exceptions import APIError
from gspread.urls import SPREADSHEET_VALUES_BATCH_URL

from sheetcache._errors import BackendError, ConfigError

__all__ = [
    "Identity",
    "RateLimiter",
    "RetryPolicy",
    "SheetsApi",
    "is_retryable",
    "make_client",
]

log = logging.getLogger("sheetcache")
T = TypeVar("T")

_BIG_RESPONSE = 4 * 1024 * 1024  # bytes of JSON above which memory beats speed

_SCOPES = ["https://www.googleapis.com/auth/spreadsheets", "https://www.googleapis.com/auth/drive"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the requests are made as, for messages ("share the sheet with ...")."""

    principal: str
    """The service account's e-mail, the emulator user, or a description of the OAuth user."""
    source: str
    """Where the credentials came from (a path is shown, its content never)."""
    shareable: bool = True
    """True if ``principal`` is an e-mail a spreadsheet can be shared with."""


def _gspread_paths() -> tuple[Path, Path, Path]:
    from gspread import auth

    return (
        auth.DEFAULT_SERVICE_ACCOUNT_FILENAME,
        auth.DEFAULT_AUTHORIZED_USER_FILENAME,
        auth.DEFAULT_CREDENTIALS_FILENAME,
    )


def make_client(
    *,
    credentials: str | None = None,
    endpoint: str | None = None,
    user: str | None = None,
    timeout: float = 30.0,
) -> tuple[Any, Identity]:
    """A gspread client and who it acts as.

    Credentials, first found wins: ``credentials`` (a service-account or authorized-user JSON
    file), ``$GOOGLE_APPLICATION_CREDENTIALS``, then gspread's own files
    (``~/.config/gspread/service_account.json``, ``authorized_user.json``, or
    ``credentials.json`` for the OAuth browser flow, run only on a terminal). With
    ``endpoint`` (the emulator) none are needed.

    Raises:
        ConfigError: no usable credentials; the message lists where they were looked for.
    """
    service_default, user_default, oauth_client = _gspread_paths()
    if endpoint:
        # The one place the backend depends on the emulator package: its gspread routing
        # helper (public API, documented in docs/emulator.md) points an unmodified gspread
        # client, and the token requests of real credentials, at ``endpoint``.
        from sheetcache.emulator import routed_client

        if credentials:
            creds, who = _load_credentials(credentials, "the credentials= file of the URL")
            client = routed_client(endpoint, credentials=creds, timeout=timeout)
            return client, who
        name = user or "emulator-user"
        client = routed_client(endpoint, user=name, timeout=timeout)
        return client, Identity(name, f"emulator at {endpoint}", shareable=True)

    import gspread

    # Messages name where a key came from, never its path or content.
    path = credentials or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    source = (
        "the credentials= file of the URL" if credentials else "$GOOGLE_APPLICATION_CREDENTIALS"
    )
    if not path:
        for candidate in (service_default, user_default):
            if candidate.exists():
                path, source = str(candidate), f"~/.config/gspread/{candidate.name}"
                break
    if path:
        creds, who = _load_credentials(path, source)
        client = gspread.authorize(creds)
        client.set_timeout(timeout)
        return client, who
    if oauth_client.exists() and sys.stdin is not None and sys.stdin.isatty():
        client = gspread.oauth(scopes=_SCOPES)  # opens a browser once, then caches the token
        client.set_timeout(timeout)
        return client, Identity(
            "the Google account you logged in with", "gspread's OAuth flow", False
        )
    raise ConfigError(
        "no Google credentials found. Either add ?credentials=/path/to/service-account.json to "
        "the sheets:// URL, set GOOGLE_APPLICATION_CREDENTIALS, or put the key at "
        f"{service_default} (docs/sheets.md walks through creating a service account). "
        "For the local emulator use sheets://ID/TAB?endpoint=http://127.0.0.1:PORT"
    )


def _load_credentials(path: str, source: str) -> tuple[Any, Identity]:
    """Google credentials from a service-account or authorized-user JSON file.

    Raises:
        ConfigError: the file is missing, unreadable or of another kind (the message names
            ``source``, never the file's content).
    """
    from google.oauth2.credentials import Credentials as UserCredentials
    from google.oauth2.service_account import Credentials as ServiceCredentials

    file = Path(path).expanduser()
    try:
        info = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{source} names a file that does not exist. Download a service-account key "
            "(docs/sheets.md, 'Setup') or fix the path."
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{source} is not a readable JSON file ({type(exc).__name__}); it should be a "
            "service-account key shaped like credentials.example.json"
        ) from None
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            creds: Any = ServiceCredentials.from_service_account_info(info, scopes=_SCOPES)  # type: ignore[no-untyped-call]
            return creds, Identity(str(info.get("client_email", "the service account")), source)
        if kind == "authorized_user":
            creds = UserCredentials.from_authorized_user_info(info, _SCOPES)  # type: ignore[no-untyped-call]
            return creds, Identity("the Google account you logged in with", source, False)
        raise ValueError(f"type {kind!r}")
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"{source} is not a service-account or authorized-user key "
            f"({type(exc).__name__}: missing or malformed fields); compare it with "
            "credentials.example.json"
        ) from None


# -- retries -------------------------------------------------------------------------------


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a failed request, None for network errors."""
    if isinstance(exc, APIError):
        response = getattr(exc, "response", None)
        code = getattr(response, "status_code", None)
        return int(code) if code is not None else int(exc.code)
    return None


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, 408, timeouts and dropped connections: worth trying again."""
    status = status_of(exc)
    if status is not None:
        return status in (408, 429) or status >= 500
    return isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )


def _retry_after(exc: BaseException | None) -> float:
    response = getattr(exc, "response", None)
    header = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(header)) if header else 0.0
    except ValueError:
        return 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often to retry a failed request."""

    timeout: float = 30.0
    """Seconds one request may take."""
    deadline: float = 120.0
    """Seconds after the first try when retrying stops and the error is raised."""
    backoff: float = 1.0
    """First wait; it doubles each try, plus up to as much again of random jitter."""
    max_wait: float = 32.0
    """Cap on one wait (Google: 32-64 s)."""

    def wait(self, state: tenacity.RetryCallState) -> float:
        exp = self.backoff * 2 ** min(state.attempt_number - 1, 30)
        jittered = min(exp, self.max_wait) + float(tenacity.wait_random(0, self.backoff)(state))
        outcome = state.outcome.exception() if state.outcome else None
        return float(min(max(jittered, _retry_after(outcome)), self.max_wait))


class RateLimiter:
    """At most ``limit`` requests of a kind in any ``window`` seconds, per process and user.

    A sliding window over the send times, like the server's quota: a caller over the budget
    waits for the oldest request to leave the window instead of drawing a 429.
    """

    def __init__(self, limits: dict[str, int], window: float = 61.0) -> None:
        self.limits = dict(limits)
        self.window = window
        self._sent: dict[str, deque[float]] = {kind: deque() for kind in limits}
        self._lock = threading.Lock()

    def acquire(self, kind: str, cancel: threading.Event | None = None) -> float:
        """Take one request of ``kind``; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                sent = self._sent[kind]
                while sent and sent[0] <= now - self.window:
                    sent.popleft()
                if len(sent) < self.limits[kind]:
                    sent.append(now)
                    return waited
                pause = sent[0] + self.window - now
            if cancel is not None:
                if cancel.wait(pause):
                    raise BackendError("the Sheets backend was closed")
            else:
                time.sleep(pause)
            waited += pause

    def used(self, kind: str) -> int:
        """Requests of ``kind`` sent in the last window."""
        with self._lock:
            now = time.monotonic()
            return sum(1 for t in self._sent[kind] if t > now - self.window)


_limiters: dict[tuple[str, ...], RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(
    where: str, who: str, read: int, write: int, window: float = 60.0
) -> RateLimiter:
    """One limiter per (server, user, limits) in this process: the quota is per user."""
    key = (where, who, str(read), str(write), str(window))
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            # A second over the server's window: our clock and theirs differ.
            limiter = _limiters[key] = RateLimiter({"read": read, "write": write}, window + 1.0)
        return limiter


class SheetsApi:
    """The few Sheets v4 calls the backend makes, each limited, retried and explained."""

    def __init__(
        self,
        client: Any,
        spreadsheet_id: str,
        identity: Identity,
        policy: RetryPolicy,
        limiter: RateLimiter,
    ) -> None:
        self.client = client
        self.http = client.http_client
        self.id = spreadsheet_id
        self.identity = identity
        self.policy = policy
        self.limiter = limiter
        self.closing = threading.Event()
        self.requests = {"read": 0, "write": 0}
        """Requests sent (tries included), by kind."""
        self.retries = 0
        self.failures: dict[str, int] = {}
        """Failed tries by HTTP status (``"network"`` for connection errors and timeouts)."""
        self.deadline: float | None = None
        """Overrides the policy's deadline while set (the first load uses a shorter one)."""
        self.last_failed = False
        """True if the last try failed with a network error or a 5xx: Sheets looks down."""
        self._count_lock = threading.Lock()

    # The public calls: one HTTP request each (plus retries).

    def metadata(self) -> dict[str, Any]:
        params = {"fields": "spreadsheetId,properties.title,sheets.properties"}
        result: dict[str, Any] = self.call(
            "read", "read the spreadsheet", lambda: self.http.fetch_sheet_metadata(self.id, params)
        )
        return result

    def batch_get(self, ranges: list[str], *, retry: bool = True) -> list[dict[str, Any]]:
        params = {"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "ROWS"}

        def send() -> list[dict[str, Any]]:
            # gspread's own request(), parsed here: a 100,000-row sheet is ~100 MB of JSON.
            # orjson is fastest but builds a DOM ~12x the document first (a 1.3 GB peak for
            # 100 MB); the stdlib parser is a little slower and peaks at the objects' size.
            url = SPREADSHEET_VALUES_BATCH_URL % self.id
            response = self.http.request("get", url, params={**params, "ranges": list(ranges)})
            body = response.content
            data = orjson.loads(body) if len(body) < _BIG_RESPONSE else json.loads(body)
            return list(data.get("valueRanges", []))

        return self.call("read", "read rows", send) if retry else self.once("read", send)

    def values_update(self, data: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"valueInputOption": "RAW", "data": data}
        result: dict[str, Any] = self.call(
            "write", "update rows", lambda: self.http.values_batch_update(self.id, body)
        )
        return result

    def batch_update(self, requests_: list[dict[str, Any]], what: str) -> dict[str, Any]:
        body = {"requests": requests_}
        result: dict[str, Any] = self.call(
            "write", what, lambda: self.http.batch_update(self.id, body)
        )
        return result

    # Machinery.

    def once(self, kind: str, send: Callable[[], T]) -> T:
        """One try: wait for the rate limiter, send, count."""
        self.limiter.acquire(kind, self.closing)
        with self._count_lock:
            self.requests[kind] += 1
        try:
            result = send()
        except Exception as exc:
            status = str(status_of(exc) or "network")
            with self._count_lock:
                self.failures[status] = self.failures.get(status, 0) + 1
            self.last_failed = is_retryable(exc) and status_of(exc) != 429
            raise
        self.last_failed = False
        return result

    def call(
        self,
        kind: str,
        what: str,
        send: Callable[[], T],
        *,
        before_retry: Callable[[], bool] | None = None,
        deadline: float | None = None,
    ) -> T:
        """Send with retries; raise an explained :class:`BackendError` when it gives up.

        ``before_retry`` runs before each retry (not the first try); returning True means
        nothing is left to send and the call returns None (see the append loop).
        """
        policy = self.policy
        if deadline is None:
            deadline = self.deadline if self.deadline is not None else policy.deadline

        def note_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            with self._count_lock:
                self.retries += 1
            log.debug(
                "sheetcache: %s failed (%s), retry %d", what, _short(exc), state.attempt_number
            )

        def attempt() -> T:
            if before_retry is not None and attempt.tries and before_retry():  # type: ignore[attr-defined]
                return None  # type: ignore[return-value]
            attempt.tries += 1  # type: ignore[attr-defined]
            return self.once(kind, send)

        attempt.tries = 0  # type: ignore[attr-defined]
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(deadline) | _stop_when(self.closing),
            wait=policy.wait,
            retry=tenacity.retry_if_exception(is_retryable),
            sleep=self._sleep,
            before_sleep=note_retry,
            reraise=True,
        )
        started = time.monotonic()
        try:
            return retrying(attempt)
        except BackendError:
            raise
        except Exception as exc:
            tries: int = attempt.tries  # type: ignore[attr-defined]
            raise self.explain(exc, what, time.monotonic() - started, tries) from exc

    def _sleep(self, seconds: float) -> None:
        if self.closing.wait(seconds):
            raise BackendError("the Sheets backend was closed while waiting to retry")

    def explain(
        self, exc: BaseException, what: str, elapsed: float = 0.0, tries: int = 1
    ) -> BackendError:
        """The error to raise for ``exc``, with what to do about it."""
        status = status_of(exc)
        sheet = f"spreadsheet {self.id}"
        who = self.identity
        if status == 403:
            message = _google_message(exc)
            if "has not been used" in message or "disabled" in message.lower():
                return BackendError(
                    f"Google refused {what} on {sheet}: the Google Sheets API is not enabled for "
                    "the credentials' Cloud project. Enable it in the Cloud console (APIs & "
                    f"Services > Library > Google Sheets API). Google said: {message}"
                )
            share = (
                f"share the spreadsheet with {who.principal} as Editor (Share button in Sheets)"
                if who.shareable
                else f"share it as Editor with {who.principal}"
            )
            return BackendError(f"no permission to {what} on {sheet} (403): {share}")
        if status == 404:
            return BackendError(
                f"{sheet} was not found (404): check the ID in the sheets:// URL (the part "
                "between /d/ and /edit in the spreadsheet's address)"
            )
        if status == 401:
            return BackendError(
                f"Google rejected the credentials from {who.source} (401): the key may be "
                "revoked or expired; create a new one (docs/sheets.md, 'Setup')"
            )
        if status == 429:
            return BackendError(
                f"Google Sheets quota exhausted: {what} got 429 for {elapsed:.0f}s ({tries} "
                "tries). Writes wait in the local outbox. Lower ?write_quota= / ?read_quota= "
                "(shared by all processes of this user) or ask Google for more quota"
            )
        if status is not None and status < 500 and status != 408:
            return BackendError(
                f"Google Sheets refused to {what} ({status}): {_google_message(exc)}"
            )
        return BackendError(
            f"Google Sheets unreachable: {what} failed for {elapsed:.0f}s ({tries} tries, last: "
            f"{_short(exc)}). Answers wait in the local outbox and are sent when it is back"
        )


def _stop_when(event: threading.Event) -> Any:
    class _Stop(tenacity.stop.stop_base):
        def __call__(self, state: tenacity.RetryCallState) -> bool:
            return event.is_set()

    return _Stop()


def _google_message(exc: BaseException) -> str:
    error = getattr(exc, "error", None)
    if isinstance(error, dict):
        return str(error.get("message", ""))[:300]
    return str(exc)[:300]


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "?"
    status = status_of(exc)
    if status is not None:
        return f"{status} {_google_message(exc)[:120]}"
    return f"{type(exc).__name__}: {str(exc)[:160]}"

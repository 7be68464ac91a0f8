"""Client-side routing: unmodified gspread talking to the emulator.

gspread builds ``https://sheets.googleapis.com/...`` and ``https://www.googleapis.com/...``
URLs itself. Rather than patching it, :class:`EmulatorAdapter` (a ``requests`` transport
adapter) rewrites those origins to the emulator's, and is mounted on a
``google.auth.transport.requests.AuthorizedSession`` whose credentials never refresh against
Google. Real credentials work too: their token requests (``oauth2.googleapis.com``) are
routed the same way, to the emulator's token endpoint.
"""

from __future__ import annotations

from typing import Any

import gspread
import requests
from google.auth.credentials import Credentials
from google.auth.transport.requests import AuthorizedSession, Request
from requests.adapters import HTTPAdapter

__all__ = [
    "GOOGLE_ORIGINS",
    "EmulatorAdapter",
    "EmulatorCredentials",
    "routed_client",
    "routed_session",
]

#: The origins rewritten to the emulator.
GOOGLE_ORIGINS = (
    "https://sheets.googleapis.com",
    "https://www.googleapis.com",
    "https://oauth2.googleapis.com",
)


class EmulatorAdapter(HTTPAdapter):
    """A transport adapter sending requests for Google's API origins to ``endpoint``."""

    def __init__(self, endpoint: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint.rstrip("/")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = request.url or ""
        for origin in GOOGLE_ORIGINS:
            if url == origin or url.startswith(origin + "/"):
                request.url = self.endpoint + url[len(origin) :]
                break
        return super().send(request, **kwargs)


class EmulatorCredentials(Credentials):
    """Credentials with a fixed bearer token ``emulator:<user>``; refreshing never leaves
    the process. The emulator reads the user from the token for per-user quotas and sharing.
    """

    def __init__(self, user: str = "emulator-user") -> None:
        super().__init__()
        self.user = user
        self.token = f"emulator:{user}"

    def refresh(self, request: Any) -> None:
        self.token = f"emulator:{self.user}"

    @property
    def expired(self) -> bool:
        return False

    @property
    def valid(self) -> bool:
        return True


class _RoutedSession(AuthorizedSession):
    """An AuthorizedSession that also closes the session its token requests use."""

    def __init__(self, credentials: Credentials, auth_session: requests.Session) -> None:
        super().__init__(credentials, auth_request=Request(auth_session))
        self._routed_auth_session = auth_session

    def close(self) -> None:
        super().close()
        self._routed_auth_session.close()


def _mount(session: requests.Session, endpoint: str) -> None:
    adapter = EmulatorAdapter(endpoint)
    for origin in GOOGLE_ORIGINS:
        session.mount(origin, adapter)


def routed_session(
    endpoint: str,
    *,
    user: str = "emulator-user",
    credentials: Credentials | None = None,
) -> AuthorizedSession:
    """An ``AuthorizedSession`` whose Google API requests go to the emulator at ``endpoint``.

    Args:
        endpoint: The emulator's URL, e.g. ``"http://127.0.0.1:8765"``.
        user: Who the requests come from (sent as the bearer token ``emulator:<user>``);
            quotas and sharing are per user.
        credentials: Real credentials to use instead (a service account, say); their token
            refreshes go to the emulator too.

    Close it when done (``session.close()``), as any ``requests.Session``.
    """
    auth_session = requests.Session()
    _mount(auth_session, endpoint)
    session = _RoutedSession(credentials or EmulatorCredentials(user), auth_session)
    _mount(session, endpoint)
    return session


def routed_client(
    endpoint: str,
    *,
    user: str = "emulator-user",
    timeout: float | None = None,
    credentials: Credentials | None = None,
) -> gspread.Client:
    """An unmodified ``gspread.Client`` whose requests go to the emulator at ``endpoint``.

    Example:
        >>> gc = routed_client("http://127.0.0.1:8765", user="alice")  # doctest: +SKIP
        >>> sh = gc.create("cache")  # doctest: +SKIP

    Args:
        endpoint: The emulator's URL.
        user: The identity the emulator sees (per-user quotas, sharing).
        timeout: Seconds to wait for the server, as ``gspread.Client.set_timeout``.
        credentials: Real credentials to route instead of the emulator's fixed token.

    Close ``client.http_client.session`` when done.
    """
    session = routed_session(endpoint, user=user, credentials=credentials)
    client = gspread.Client(auth=session.credentials, session=session)
    if timeout is not None:
        client.set_timeout(timeout)
    return client

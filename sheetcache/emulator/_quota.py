"""Sheets API per-minute quotas: read and write buckets, per user and per project.

Google's defaults are 60 read and 60 write requests per minute per user, and 300 of each per
minute per project; a request over any of them is answered 429 ``RESOURCE_EXHAUSTED`` with an
``ErrorInfo`` detail (reason ``RATE_LIMIT_EXCEEDED``). Only Sheets v4 requests count: Drive has
quotas of its own, far larger, which the emulator does not model.

The window slides over an injectable clock, so a test can use :class:`ManualClock` and
``advance(60)`` instead of sleeping a minute.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sheetcache.emulator._errors import ApiError

__all__ = [
    "PROJECT_NUMBER",
    "ManualClock",
    "Quota",
    "QuotaLimits",
    "quota_error",
]

#: The project every emulator credential belongs to (Google reports it as the "consumer").
PROJECT_NUMBER = "123456789012"


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """Requests allowed per window (Google's defaults; the window is one minute)."""

    read_per_user: int = 60
    write_per_user: int = 60
    read_per_project: int = 300
    write_per_project: int = 300
    window_seconds: float = 60.0


class ManualClock:
    """A clock that moves only when told to, for quota tests that must not sleep.

    Example:
        >>> clock = ManualClock()
        >>> clock.advance(61)
        >>> clock()
        61.0
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        with self._lock:
            self._now += seconds


class Quota:
    """Counts Sheets requests in a sliding window and refuses those over a limit.

    Attributes:
        enabled: False lets every request through (and counts nothing).
        limits: The limits in force; assign a new :class:`QuotaLimits` to change them.
        clock: Seconds as a float; ``time.monotonic`` unless a test injects another.
    """

    def __init__(
        self,
        limits: QuotaLimits | None = None,
        *,
        enabled: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.limits = limits or QuotaLimits()
        self.enabled = enabled
        self.clock = clock or time.monotonic
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every counted request, as if a fresh minute had begun."""
        with self._lock:
            self._hits.clear()

    def used(self, kind: str, user: str | None = None) -> int:
        """Requests of ``kind`` ("read"/"write") counted in the current window, for one user or
        (``user=None``) the whole project.
        """
        with self._lock:
            hits = self._hits.get((kind, user or ""), deque())
            self._expire(hits, self.clock())
            return len(hits)

    def consume(self, kind: str, user: str) -> ApiError | None:
        """Count one request; return the 429 to send instead when a limit is reached."""
        if not self.enabled:
            return None
        limits = self.limits
        per_user = limits.read_per_user if kind == "read" else limits.write_per_user
        per_project = limits.read_per_project if kind == "read" else limits.write_per_project
        with self._lock:
            now = self.clock()
            user_hits = self._hits.setdefault((kind, user), deque())
            project_hits = self._hits.setdefault((kind, ""), deque())
            self._expire(user_hits, now)
            self._expire(project_hits, now)
            if len(user_hits) >= per_user:
                return quota_error(kind, per_user, per_user=True)
            if len(project_hits) >= per_project:
                return quota_error(kind, per_project, per_user=False)
            user_hits.append(now)
            project_hits.append(now)
        return None

    def _expire(self, hits: deque[float], now: float) -> None:
        horizon = now - self.limits.window_seconds
        while hits and hits[0] <= horizon:
            hits.popleft()


def quota_error(kind: str, limit: int, *, per_user: bool = True) -> ApiError:
    """The 429 Google sends when a Sheets per-minute quota is exhausted."""
    noun = "Read" if kind == "read" else "Write"
    limit_text = f"{noun} requests per minute" + (" per user" if per_user else "")
    limit_name = f"{noun}RequestsPerMinute" + ("PerUser" if per_user else "PerProject")
    message = (
        f"Quota exceeded for quota metric '{noun} requests' and limit '{limit_text}' of service "
        f"'sheets.googleapis.com' for consumer 'project_number:{PROJECT_NUMBER}'."
    )
    return ApiError(
        429,
        message,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "quota_location": "global",
                    "quota_metric": f"sheets.googleapis.com/{kind}_requests",
                    "quota_limit": limit_name,
                    "quota_limit_value": str(limit),
                    "consumer": f"projects/{PROJECT_NUMBER}",
                    "service": "sheets.googleapis.com",
                },
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Request a higher quota limit.",
                        "url": "https://cloud.google.com/docs/quota#requesting_higher_quota",
                    }
                ],
            },
        ],
    )

"""Logging helpers shared by the cache front, the outbox and the stores."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("sheetcache")


class OutageLog:
    """Log the first failure of an outage at ERROR, repeats at DEBUG, and the recovery at INFO.

    One per thing that can fail (a store's reads, the flusher's writes), so a dead store
    writes two log lines per outage instead of one per call.

    Example:
        >>> reads = OutageLog("reading from sqlite:///x.db")
        >>> reads.failed(OSError("disk gone"), "calls go through uncached")  # logs once
        >>> reads.ok()  # logs "works again" only if it was failing
    """

    def __init__(self, what: str, logger: logging.Logger = log) -> None:
        self.what = what
        self.failing = False
        self._log = logger
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, consequence: str) -> None:
        """Record a failure; only the first of an outage is logged at ERROR."""
        with self._lock:
            first, self.failing = not self.failing, True
        if first:
            self._log.error(
                "sheetcache: %s failed (%s: %s); %s",
                self.what,
                type(exc).__name__,
                exc,
                consequence,
            )
        else:
            self._log.debug("sheetcache: %s still failing: %s", self.what, exc)

    def ok(self) -> None:
        """Record a success; logs the recovery once if an outage was under way."""
        if not self.failing:  # the common case: no lock on the hot path
            return
        with self._lock:
            recovered, self.failing = self.failing, False
        if recovered:
            self._log.info("sheetcache: %s works again", self.what)


def install_hint(extra: str) -> str:
    """The command that installs an optional extra, as every error message spells it."""
    return f"pip install 'sheetcache[{extra}]'"

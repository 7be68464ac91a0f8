"""A circuit breaker for stores that can hang: skip a failing store for a cool-down.

Without one, every call to a hung server waits the full socket timeout (seconds), so a
cache meant to save time makes each call slower. With one, the first call that times out
*trips* the breaker; during the cool-down every call is refused at once with
:class:`CircuitOpenError` (the cache front treats that as a miss and goes on uncached, and
the outbox keeps writes), so at most one call per cool-down pays the timeout.

Two ways to come back:

- with a ``probe`` (a cheap call such as ``PING``), a background thread tries it once per
  cool-down and closes the breaker when it succeeds; callers never wait on a dead store again;
- without one, the first call after the cool-down is let through as a trial (*half-open*),
  the others are refused until it ends; success closes the breaker, failure re-opens it.

Only failures of the kinds in ``trips_on`` (timeouts, refused connections) count: a bad
argument or a script error says nothing about the store's health.

Example:
    >>> breaker = CircuitBreaker(cooldown=2.0, trips_on=(TimeoutError,), name="redis://x")
    >>> with breaker.guard():
    ...     pass  # the call to the store
    >>> breaker.state
    'closed'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sheetcache._errors import BackendError
from sheetcache._logging import OutageLog

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "CircuitOpenError"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitOpenError(BackendError):
    """Refused without trying: the store failed recently and is being skipped."""


class CircuitBreaker:
    """Skip a store for ``cooldown`` seconds after it timed out or refused a connection.

    Thread-safe. :meth:`allow` and :meth:`success` cost an attribute read while the store
    is healthy, so they can sit on a hit path.

    Args:
        cooldown: seconds between tripping and the next probe (or trial call).
        trips_on: exception types that count as the store being down.
        probe: a call that raises if the store is still down; run in a background thread
            once per cool-down while the breaker is open. None for half-open trials.
        name: what is guarded, for the log (no credentials: a redacted URL).
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        cooldown: float = 2.0,
        *,
        trips_on: tuple[type[BaseException], ...] = (OSError,),
        probe: Callable[[], object] | None = None,
        name: str = "the store",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not cooldown > 0:
            raise ValueError(f"cooldown must be > 0 seconds, not {cooldown!r}")
        self.cooldown = float(cooldown)
        self.trips_on = trips_on
        self.name = name
        self.state = CLOSED
        self.trips = 0
        """How many times the breaker opened: one per outage, plus one per failed trial."""
        self._probe = probe
        self._clock = clock
        self._opened_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self._probing = False  # under _lock: a probe loop runs (or is about to)
        self._log = OutageLog(f"talking to {name}")

    # -- the three calls around a store operation ---------------------------------------

    def allow(self) -> bool:
        """True if a call may go to the store now; False while it is being skipped."""
        if self.state == CLOSED:
            return True
        with self._lock:
            trial_due = self._clock() - self._opened_at >= self.cooldown
            if self.state == OPEN and self._probe is None and trial_due:
                self.state = HALF_OPEN  # this caller is the trial; others keep failing fast
                return True
            return self.state == CLOSED

    def success(self) -> None:
        """Record a call that worked: closes the breaker after a trial."""
        if self.state == CLOSED:
            return
        with self._lock:
            if self.state == HALF_OPEN:
                self.state = CLOSED
        if self.state == CLOSED:
            self._log.ok()

    def failure(self, exc: BaseException) -> None:
        """Record a failed call; trips the breaker if ``exc`` is one of ``trips_on``."""
        if not isinstance(exc, self.trips_on):
            if self.state == HALF_OPEN:  # the trial reached the store: it answers
                self.success()
            return
        start_probe = False
        with self._lock:
            if self.state != OPEN:
                self.state = OPEN
                self.trips += 1
                self._opened_at = self._clock()
                start_probe = (
                    self._probe is not None and not self._probing and not self._stop.is_set()
                )
                self._probing = self._probing or start_probe
        self._log.failed(
            exc, f"skipping it for {self.cooldown:g}s at a time; calls go through uncached"
        )
        if start_probe:
            self._start_prober()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run the body if allowed, recording its outcome.

        Raises:
            CircuitOpenError: the store is being skipped; the body did not run.
        """
        if not self.allow():
            raise CircuitOpenError(self.refusal())
        try:
            yield
        except BaseException as exc:
            self.failure(exc)
            raise
        self.success()

    def refusal(self) -> str:
        """The message of the :class:`CircuitOpenError` raised while open."""
        return f"{self.name} failed recently; skipped until it answers again"

    # -- background probe ---------------------------------------------------------------

    def _start_prober(self) -> None:
        self._prober = threading.Thread(
            target=self._probe_loop, name="sheetcache-breaker-probe", daemon=True
        )
        self._prober.start()

    def _probe_loop(self) -> None:
        assert self._probe is not None
        try:
            while not self._stop.wait(self.cooldown):
                try:
                    self._probe()
                except Exception as exc:  # noqa: BLE001 - still down: try again later
                    self._log.failed(exc, "still skipping it")
                    continue
                with self._lock:
                    self.state = CLOSED
                    self._probing = False
                self._log.ok()
                return
        finally:
            with self._lock:
                self._probing = False

    def close(self) -> None:
        """Stop the background probe (if one runs) and wait for it briefly."""
        self._stop.set()
        prober = self._prober
        if prober is not None and prober is not threading.current_thread():
            prober.join(5.0)

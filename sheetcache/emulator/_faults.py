"""Fault injection: the failures a client of Google's API must survive.

* ``latency_ms``: every request waits that long before it is handled.
* :meth:`Faults.fail_next`: the next N matching requests answer an error status (500, 503,
  429...) with Google's body, and change nothing.
* :meth:`Faults.drop_next`: the next N matching requests lose their connection before they are
  applied (the client sees a connection error; nothing changed).
* :meth:`Faults.lose_response_next`: the next N matching requests are applied, then lose their
  connection. The client sees the same connection error as a drop, but the write happened:
  the case that turns a naive retry into a duplicate row.
* :meth:`Faults.apply_late_next`: the next N matching requests lose their connection
  unanswered, and are applied ``after`` seconds later, as Google sometimes finishes a write
  after its client gave up. The client's re-read right after the failure finds nothing yet:
  the case that defeats a "check, then re-send" retry without a wait.
* :meth:`Faults.outage`: every request fails with one status until :meth:`Faults.clear`.

``methods`` narrows a rule: ``None`` (all requests), ``"read"`` (GET), ``"write"`` (anything
else), or HTTP verbs such as ``["POST", "PUT"]``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Fault",
    "Faults",
]

MethodFilter = str | Iterable[str] | None


@dataclass(slots=True)
class Fault:
    """One pending rule (or what a request drew from it).

    Attributes:
        kind: ``"fail"``, ``"drop"``, ``"lose_response"``, ``"apply_late"`` or ``"outage"``.
        remaining: Requests this rule still applies to.
        status: The status a ``fail``/``outage`` answers.
        methods: Which requests it applies to (see the module docstring).
        delay: Seconds after which an ``apply_late`` request is applied.
    """

    kind: str
    remaining: int = 1
    status: int = 503
    methods: frozenset[str] | str | None = None
    delay: float = 0.0

    def matches(self, method: str) -> bool:
        if self.methods is None:
            return True
        if self.methods == "read":
            return method in ("GET", "HEAD")
        if self.methods == "write":
            return method not in ("GET", "HEAD")
        return method in self.methods


class Faults:
    """The fault plan of one emulator; safe to change while requests are in flight.

    Example:
        >>> faults = Faults()
        >>> faults.fail_next(2, status=503, methods="write")
        >>> faults.take("POST").status
        503
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._outage: int | None = None
        self.latency_ms: float = 0.0

    def fail_next(self, n: int = 1, *, status: int = 503, methods: MethodFilter = None) -> None:
        """Answer the next ``n`` matching requests with ``status`` and apply nothing."""
        self._add(Fault("fail", n, status, _methods(methods)))

    def drop_next(self, n: int = 1, *, methods: MethodFilter = None) -> None:
        """Close the connection of the next ``n`` matching requests before applying them."""
        self._add(Fault("drop", n, 0, _methods(methods)))

    def lose_response_next(self, n: int = 1, *, methods: MethodFilter = None) -> None:
        """Apply the next ``n`` matching requests, then close the connection unanswered."""
        self._add(Fault("lose_response", n, 0, _methods(methods)))

    def apply_late_next(
        self, n: int = 1, *, after: float = 5.0, methods: MethodFilter = None
    ) -> None:
        """Drop the connection of the next ``n`` matching requests unanswered, and apply each
        ``after`` seconds later (in the background).
        """
        self._add(Fault("apply_late", n, 0, _methods(methods), after))

    def outage(self, status: int = 503) -> None:
        """Fail every request with ``status`` until :meth:`clear`."""
        with self._lock:
            self._outage = status

    def clear(self) -> None:
        """Remove every pending fault, end an outage and reset the latency."""
        with self._lock:
            self._rules.clear()
            self._outage = None
            self.latency_ms = 0.0

    @property
    def pending(self) -> list[Fault]:
        """A copy of the rules still waiting for requests."""
        with self._lock:
            return [Fault(r.kind, r.remaining, r.status, r.methods, r.delay) for r in self._rules]

    def take(self, method: str) -> Fault | None:
        """The fault the next request with ``method`` suffers, consuming one use of its rule."""
        with self._lock:
            if self._outage is not None:
                return Fault("outage", 1, self._outage)
            for rule in self._rules:
                if rule.matches(method):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return Fault(rule.kind, 1, rule.status, rule.methods, rule.delay)
        return None

    def _add(self, rule: Fault) -> None:
        if rule.remaining > 0:
            with self._lock:
                self._rules.append(rule)


def _methods(methods: MethodFilter) -> frozenset[str] | str | None:
    if methods is None or methods in ("read", "write"):
        return methods
    if isinstance(methods, str):
        return frozenset({methods.upper()})
    return frozenset(m.upper() for m in methods)

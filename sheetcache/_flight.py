"""In-process single-flight: concurrent identical misses (threads and tasks) share one call."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["Flight", "Flights"]


class Flight:
    """One in-progress miss that concurrent identical calls wait on.

    A plain lock, held from creation until the leader finishes, is the signal: thread
    waiters acquire and release it; task waiters get a future resolved on their own loop.
    Much cheaper to create than a threading.Event on every miss.
    """

    __slots__ = ("_async_waiters", "_gate", "_lock", "error", "finished", "record", "stored",
                 "value")  # fmt: skip

    def __init__(self) -> None:
        self._gate = threading.Lock()
        self._gate.acquire()
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.stored: tuple[str, str] | None = None
        """(value_type, text) once stored, so each follower decodes its own copy."""
        self.record: Any = None
        """What a follower's hit counts (an :class:`~sheetcache._l1.L1Item`)."""
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    def finish(self, value: Any = None, error: BaseException | None = None) -> None:
        """Publish the leader's answer (or exception) to every waiter."""
        self.value, self.error = value, error
        with self._lock:
            self.finished = True
            waiters, self._async_waiters = self._async_waiters, []
        self._gate.release()
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_set_done, fut)

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def wait(self) -> Any:
        """Block this thread until the leader finishes; its answer or exception."""
        with self._gate:
            pass
        return self.result()

    async def await_result(self) -> Any:
        """Wait without blocking the loop; the leader may be a thread or another task."""
        fut: asyncio.Future[None] | None = None
        with self._lock:
            if not self.finished:
                loop = asyncio.get_running_loop()
                fut = loop.create_future()
                self._async_waiters.append((loop, fut))
        if fut is not None:
            await fut
        return self.result()


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Flights:
    """The flights in progress, by stored key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}
        self._lock = threading.Lock()

    def join(self, key: str) -> tuple[Flight, bool]:
        """The key's flight and whether the caller leads it (and must :meth:`land` it)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def values(self) -> list[Flight]:
        """The flights in progress now (tests watch their waiters)."""
        with self._lock:
            return list(self._flights.values())

    def land(self, key: str, flight: Flight) -> None:
        """Retire the leader's flight; later callers start a new one."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]

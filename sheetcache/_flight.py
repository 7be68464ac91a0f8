"""In-process single-flight: concurrent identical misses (threads and tasks) share one call.

A miss pays for one flight per key, so a flight is a plain object with no lock of its own:
the registry's one condition variable guards every flight and wakes waiting threads, and
waiting tasks get a future resolved on their own loop. Followers are rare; leaders are not.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncio is imported when a task first waits: `import sheetcache` stays light
    import asyncio

__all__ = ["Flight", "Flights"]


class Flight:
    """One in-progress miss that concurrent identical calls wait on."""

    __slots__ = ("_async_waiters", "_flights", "error", "finished", "record", "stored", "value",
                 "waiting")  # fmt: skip

    def __init__(self, flights: Flights) -> None:
        self._flights = flights
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.stored: tuple[str, str] | None = None
        """(value_type, text) once stored, so each follower decodes its own copy."""
        self.record: Any = None
        """What a follower's hit counts (an :class:`~sheetcache._l1.L1Item`)."""
        self.waiting = 0
        """Followers that have joined (threads and tasks), so tests can wait for them."""
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def wait(self) -> Any:
        """Block this thread until the leader finishes; its answer or exception."""
        cond = self._flights._cond
        with cond:
            self.waiting += 1
            while not self.finished:
                cond.wait()
        return self.result()

    async def await_result(self) -> Any:
        """Wait without blocking the loop; the leader may be a thread or another task."""
        import asyncio

        fut: asyncio.Future[None] | None = None
        with self._flights._cond:
            self.waiting += 1
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
        self._cond = threading.Condition(threading.Lock())

    def join(self, key: str) -> tuple[Flight, bool]:
        """The key's flight and whether the caller leads it (and must :meth:`land` it)."""
        with self._cond:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight(self)
            return flight, True

    def values(self) -> list[Flight]:
        """The flights in progress now (tests watch their waiters)."""
        with self._cond:
            return list(self._flights.values())

    def land(
        self, key: str, flight: Flight, value: Any = None, error: BaseException | None = None
    ) -> None:
        """Publish the leader's answer (or exception) to every follower and retire the
        flight: later callers start a new one.
        """
        with self._cond:
            flight.value, flight.error, flight.finished = value, error, True
            if self._flights.get(key) is flight:
                del self._flights[key]
            waiters, flight._async_waiters = flight._async_waiters, []
            if flight.waiting:
                self._cond.notify_all()
        if waiters:
            for loop, fut in waiters:
                loop.call_soon_threadsafe(_set_done, fut)

"""The miss protocol, written once: lookup -> flight -> cross-process lock -> call -> store.

The protocol is a generator that does no I/O itself (sans-I/O, as h11 and httpcore do): it
*yields* each step that waits (a store read, a lock, a sleep, the user's call, a write) as
``(op, argument)`` and is sent back the result, or has the step's exception thrown in. Two
thin drivers run it, :func:`run_sync` with blocking calls and :func:`run_async` with awaits
(a worker thread for blocking network steps), so the sync and async paths cannot drift:
there is only one of each decision.

The front (:class:`sheetcache.Cache`) supplies the decisions that need its state (serve an
entry, fill the L1, encode an answer); its :class:`~sheetcache._store.Store` supplies the
I/O steps, every one fail-open (it logs, counts and returns "nothing found" or "no lock"
instead of raising), so only the user's call can raise out of a step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sheetcache._answer import Answer
from sheetcache._cachekey import CacheKey

if TYPE_CHECKING:
    from sheetcache._cache import Cache
    from sheetcache._flight import Flight

__all__ = ["MISS", "Request", "Steps", "miss_steps", "run_async", "run_sync"]

log = logging.getLogger("sheetcache")

MISS: Any = object()  # "not found", distinct from a cached None

# The steps the protocol yields.
FETCH: Final = 0  # arg Request -> Entry | None (store, then outbox, then a legacy key)
FETCH_MANY: Final = 1  # arg list[Request] -> dict[str, Entry]
TRY_LOCK: Final = 2  # arg key -> bool | None
UNLOCK: Final = 3  # arg key -> None
SLEEP: Final = 4  # arg seconds -> None
WAIT: Final = 5  # arg Flight -> the leader's answer (or its exception)
CALL: Final = 6  # arg None -> what the user's function returned
WRITE: Final = 7  # arg (Entry, direct) -> None
RECORD_HITS: Final = 8  # arg {key: (n, at)} -> None

Steps = Generator[tuple[int, Any], Any, Any]


@dataclass(slots=True)
class Request:
    """One call's question and its options, as the protocol needs them."""

    prompt: Any
    key_parts: Mapping[str, Any]
    k: CacheKey
    serve: bool
    """False in refresh mode (or ``refresh=True``): never serve what is stored."""
    replay: bool
    """Replay mode: a miss raises instead of calling."""
    store: bool
    ttl: Any
    legacy: bool = True
    """Also look the pre-upgrade key up (only the plain key, never a sample's)."""


def unwrap(answer: Any) -> tuple[Any, Mapping[str, Any]]:
    """Split what a call_fn returned into the answer and its metadata."""
    if type(answer) is Answer:
        return answer.value, answer.metadata
    return answer, {}


def miss_steps(front: Cache, req: Request) -> Steps:
    """The miss protocol; returns the answer, raises the call's exception."""
    k = req.k
    if req.serve:
        value = front._serve(req, (yield FETCH, req))
        if value is not MISS:
            return value
        if req.replay:
            raise front._miss_error(req)
    while True:
        flight, leader = front._flights.join(k.key)
        if leader:
            break
        try:
            value = yield WAIT, flight
        except BaseException as exc:
            if exc is flight.error and not isinstance(exc, Exception):
                # The leader was cancelled or interrupted, not failed: that is not our
                # answer. Lead a new flight ourselves.
                continue
            raise
        return front._followed(flight, value)
    locked = False
    error: BaseException | None = None
    value = None
    try:
        found = MISS
        if req.serve:
            # The previous leader for this key may have finished between our lookup and our
            # joining: look again rather than call twice.
            found = front._l1_value(req)
            if found is MISS and front._store.has_locks:
                got = yield TRY_LOCK, k.key
                deadline = time.monotonic() + front.lock_timeout
                delay = 0.005
                while got is False and time.monotonic() < deadline:
                    # Polling, not a sleep for synchronisation: the other process has no way
                    # to signal us; the backoff keeps the polls few.
                    yield SLEEP, delay
                    delay = min(delay * 2, 0.2)
                    found = front._serve(req, (yield FETCH, req))
                    if found is not MISS:
                        break
                    got = yield TRY_LOCK, k.key
                if found is MISS and got:
                    locked = True
                    # The holder may have stored and unlocked between our last look and our lock.
                    found = front._serve(req, (yield FETCH, req))
                elif found is MISS and got is False:
                    log.warning(
                        "sheetcache: waited %ss for another process to answer %s; calling anyway",
                        front.lock_timeout, k.key,
                    )  # fmt: skip
        if found is not MISS:
            value = found
        else:
            value = yield from _call_and_store(front, req, flight, locked)
    except BaseException as exc:  # noqa: BLE001 - handed to the flight and re-raised
        error = exc
    front._flights.land(k.key, flight, value, error)
    if locked:
        yield UNLOCK, k.key
    if error is not None:
        raise error
    return value


def _call_and_store(front: Cache, req: Request, flight: Flight, locked: bool) -> Steps:
    front._counters.miss()
    started = time.perf_counter()
    value, metadata = unwrap((yield CALL, None))
    duration = time.perf_counter() - started
    if req.store:
        entry = front._prepare(req, value, metadata, duration)
        if entry is not None:
            flight.stored = (entry.value_type, entry.value)
            if not req.serve:  # a refresh replaces an answer other spellings may hold in L1
                front._l1.forget_keys({entry.key})
            flight.record = front._remember(req, entry, value)
            yield WRITE, (entry, locked)
    return value


def run_sync(front: Cache, steps: Steps, call: Callable[[], Any]) -> Any:
    """Drive ``steps`` with blocking calls."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op, arg = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value
        error = None
        try:
            if op == CALL:
                result = call()
            elif op == FETCH:
                result = front._store.fetch(arg)
            elif op == WAIT:
                result = arg.wait()
            else:
                result = _blocking_step(front, op, arg)
        except BaseException as exc:  # noqa: BLE001 - handed to the flight and re-raised
            result, error = None, exc


async def run_async(front: Cache, steps: Steps, call: Callable[[], Awaitable[Any]]) -> Any:
    """Drive ``steps`` with awaits; blocking network steps run in a worker thread."""
    import asyncio  # here, not at the top: sync-only users never pay for importing it

    result: Any = None
    error: BaseException | None = None
    backend = front.backend
    while True:
        try:
            op, arg = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value
        error = None
        try:
            if op == CALL:
                result = await call()
            elif op == WAIT:
                result = await arg.await_result()
            elif op == SLEEP:
                await asyncio.sleep(arg)
                result = None
            elif op in (FETCH, FETCH_MANY):
                local = backend.lookup_is_local
                result = (
                    _blocking_step(front, op, arg)
                    if local
                    else await asyncio.to_thread(_blocking_step, front, op, arg)
                )
            elif backend.local or (op == WRITE and not arg[1]):
                # Local stores and the outbox answer in microseconds: no thread hop.
                result = _blocking_step(front, op, arg)
            else:
                result = await asyncio.to_thread(_blocking_step, front, op, arg)
        except BaseException as exc:  # noqa: BLE001 - handed to the flight and re-raised
            result, error = None, exc


def _blocking_step(front: Cache, op: int, arg: Any) -> Any:
    store = front._store
    if op == FETCH:
        return store.fetch(arg)
    if op == FETCH_MANY:
        return store.fetch_many(arg)
    if op == TRY_LOCK:
        return store.try_lock(arg)
    if op == UNLOCK:
        return store.unlock(arg)
    if op == WRITE:
        return store.write(*arg)
    if op == RECORD_HITS:
        return store.record_hits(arg)
    if op == SLEEP:
        time.sleep(arg)
        return None
    raise AssertionError(f"unknown step {op}")  # pragma: no cover

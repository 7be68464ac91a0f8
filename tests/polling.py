"""The one polling helper for tests: wait on a condition with a generous deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.002,
    what: str = "the condition",
) -> None:  # fmt: skip
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds.

    For conditions another thread or process makes true and can't signal (no sleeps as
    synchronisation: the deadline is generous, the interval short).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.001,
    what: str = "the condition",
) -> None:  # fmt: skip
    """:func:`wait_until` for asyncio tests: yields to the loop between polls."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)

"""The circuit breaker: its rules on their own, then in front of a real redis-server that
hangs (SIGSTOP) under a stream of calls."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import pytest
from redis_fixtures import new_redis_server

from sheetcache import Cache
from sheetcache._breaker import CircuitBreaker, CircuitOpenError


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_timeout_trips_it_and_a_trial_after_the_cooldown_closes_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5.0, trips_on=(TimeoutError,), clock=clock)
    with pytest.raises(TimeoutError), breaker.guard():
        raise TimeoutError("hung")
    assert breaker.state == "open" and breaker.trips == 1
    with pytest.raises(CircuitOpenError), breaker.guard():
        pytest.fail("the body must not run while open")
    clock.now += 5.0
    assert breaker.allow()  # the one trial call
    assert not breaker.allow()  # everyone else keeps failing fast while it runs
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def test_a_failed_trial_opens_it_for_another_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5.0, trips_on=(TimeoutError,), clock=clock)
    breaker.failure(TimeoutError())
    clock.now += 5.0
    assert breaker.allow()
    breaker.failure(TimeoutError())
    assert breaker.state == "open" and breaker.trips == 2
    clock.now += 4.9
    assert not breaker.allow()


def test_other_errors_do_not_trip_it() -> None:
    breaker = CircuitBreaker(5.0, trips_on=(TimeoutError,))
    with pytest.raises(KeyError), breaker.guard():
        raise KeyError("a bad argument says nothing about the store's health")
    assert breaker.state == "closed"


def test_a_background_probe_closes_it_without_any_caller_waiting() -> None:
    healthy = threading.Event()

    def probe() -> None:
        if not healthy.is_set():
            raise ConnectionError("still down")

    breaker = CircuitBreaker(0.05, trips_on=(ConnectionError,), probe=probe)
    try:
        breaker.failure(ConnectionError("refused"))
        time.sleep(0.2)  # several probe rounds, all failing: it must stay open
        assert breaker.state == "open" and not breaker.allow()
        healthy.set()
        wait_until(lambda: breaker.state == "closed", what="the probe to close it")
        # It trips and recovers again: one outage does not use up the prober.
        healthy.clear()
        breaker.failure(ConnectionError("refused again"))
        assert not breaker.allow()
        healthy.set()
        wait_until(lambda: breaker.state == "closed", what="the second recovery")
    finally:
        breaker.close()


def test_a_cooldown_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cooldown"):
        CircuitBreaker(0)


# -- against a hung redis-server --------------------------------------------------------


def test_a_hung_server_costs_one_call_one_timeout() -> None:
    server = new_redis_server()
    timeout = 1.0
    try:
        url = f"{server.url}/0?socket_timeout={timeout}&cooldown=0.5"
        with Cache(url, l1_size=0, lock_timeout=5) as cache:
            cache.get_or_call("warm up", str.upper)
            assert cache.flush(timeout=30)
            server.pause()  # accepts connections, never answers
            try:
                times = []
                hang_ends = time.monotonic() + 4 * timeout
                i = 0
                while time.monotonic() < hang_ends:
                    started = time.monotonic()
                    assert cache.get_or_call(f"during the hang {i}", str.upper) == (
                        f"DURING THE HANG {i}"
                    )
                    times.append(time.monotonic() - started)
                    i += 1
                assert cache.backend.breaker.state == "open"
            finally:
                server.resume()
            slow = [t for t in times if t > timeout * 0.8]
            # Generous bounds: the figures themselves are in benchmarks/bench_redis.py.
            assert len(slow) <= 1, f"{len(slow)} of {len(times)} calls waited a timeout"
            assert len(times) >= 20 and statistics.median(times) < 0.25
            wait_until(lambda: cache.backend.breaker.state == "closed", what="the probe")
            assert cache.flush(timeout=30)
            keys = [cache.key(f"during the hang {n}") for n in range(i)]
            assert len(cache.backend.get_many(keys)) == i  # the outbox kept every write
    finally:
        server.close()

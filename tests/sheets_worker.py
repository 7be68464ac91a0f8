"""A separate process using a Sheets cache, for the multi-process tests.

Usage: ``python sheets_worker.py URL MODE N [NAME]``

- ``write``: answer prompts ``shared-0`` .. ``shared-N-1`` through a Cache, close it (flush),
  print ``done``.
- ``stream``: answer ``stream-0`` .. ``stream-N-1`` one by one, printing each key once the
  call returned (the answer is then durable in the outbox); the test kills it with SIGKILL
  somewhere in the middle of a flush.
- ``mix``: round after round (at least N, until a line arrives on stdin), ask ``mix-0`` ..
  ``mix-39`` in a shuffled order (misses, then hits), checking every answer; prints
  ``wrong <prompt> <value>`` for any answer that is not the one the prompt must have, then
  ``done <calls> <wrong>``.
- ``agree``: on a line from stdin, answer ``overlap-0`` .. ``overlap-N-1`` with answers
  naming NAME (so processes disagree), print ``answered``; on a line from stdin, flush and print ``ready``; on another
  line, refresh once and print the answer each prompt gets now (L1 on, no calls) as JSON.
- ``serve``: open with ``l1_size=0`` and print, as JSON, ``{prompt: answer}`` for the prompts
  ``big-i`` with i in 0, 97, 194, ... below N (no calls allowed), then ``count``.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time

from sheetcache import BackendError, Cache


def never(prompt: str) -> str:
    raise AssertionError(f"called for {prompt!r}: should have been a hit")


def main() -> None:
    url, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    name = sys.argv[4] if len(sys.argv) > 4 else "worker"
    if mode == "write":
        cache = Cache(url)
        for i in range(n):
            cache.get_or_call(f"shared-{i}", lambda p: f"answer to {p}", model="m")
        cache.close(timeout=60)
        print("done", flush=True)
    elif mode == "stream":
        cache = Cache(url)
        for i in range(n):
            cache.get_or_call(f"stream-{i}", lambda p: f"answer to {p}", model="m")
            print(cache.key(f"stream-{i}", model="m"), flush=True)
            time.sleep(0.002)
        time.sleep(60)  # stay alive (flushing) until killed
    elif mode == "mix":
        cache = Cache(url, l1_size=8)  # small: most hits go to the backend
        calls = wrong = rounds = 0
        prompts = [f"mix-{i}" for i in range(40)]
        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
        while rounds < n or not stop.is_set():
            rounds += 1
            random.shuffle(prompts)
            for p in prompts:
                value = cache.get_or_call(p, lambda q: f"answer to {q}", model="m")
                calls += 1
                if value != f"answer to {p}":
                    wrong += 1
                    print("wrong", p, repr(value), flush=True)
            time.sleep(0.05)
        cache.close(timeout=60)
        print("done", calls, wrong, flush=True)
    elif mode == "agree":
        cache = Cache(url)
        sys.stdin.readline()
        for i in range(n):
            # refresh=True: each process answers itself (no lookup in the shared outbox), so
            # four different answers per prompt wait in the one outbox.
            cache.get_or_call(
                f"overlap-{i}", lambda p: f"{name}'s answer to {p}", refresh=True, model="m"
            )
        print("answered", flush=True)
        sys.stdin.readline()
        assert cache.flush(timeout=60)
        print("ready", flush=True)
        sys.stdin.readline()
        cache.refresh()
        seen = {f"overlap-{i}": cache.get_or_call(f"overlap-{i}", never, model="m")
                for i in range(n)}  # fmt: skip
        print(json.dumps(seen), flush=True)
        cache.close(timeout=60)
    elif mode == "serve":
        with Cache(url, l1_size=0) as cache:
            got = {f"big-{i}": cache.get_or_call(f"big-{i}", never, model="m")
                   for i in range(0, n, 97)}  # fmt: skip
            print(json.dumps(got), flush=True)
            try:
                print(cache.backend.count(), flush=True)
            except BackendError:  # Sheets is down: a read command says so
                print("unreachable", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

"""A separate process using a Sheets cache, for the multi-process tests.

Usage: ``python sheets_worker.py URL MODE N``

- ``write``: answer prompts ``shared-0`` .. ``shared-N-1`` through a Cache, close it (flush),
  print ``done``.
- ``stream``: answer ``stream-0`` .. ``stream-N-1`` one by one, printing each key once the
  call returned (the answer is then durable in the outbox); the test kills it with SIGKILL
  somewhere in the middle of a flush.
"""

from __future__ import annotations

import sys
import time

from sheetcache import Cache


def main() -> None:
    url, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = Cache(url)
    if mode == "write":
        for i in range(n):
            cache.get_or_call(f"shared-{i}", lambda p: f"answer to {p}", model="m")
        cache.close(timeout=60)
        print("done", flush=True)
    elif mode == "stream":
        for i in range(n):
            cache.get_or_call(f"stream-{i}", lambda p: f"answer to {p}", model="m")
            print(cache.key(f"stream-{i}", model="m"), flush=True)
            time.sleep(0.002)
        time.sleep(60)  # stay alive (flushing) until killed
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

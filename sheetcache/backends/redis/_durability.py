"""``durability=replica``: a write batch counts as done only once a replica confirmed it.

Each server's pipeline ends with ``WAIT 1 <timeout>`` on the same connection as its
writes, so the reply says whether a replica has them. A batch that is not confirmed raises
:class:`NotReplicatedError`: the flusher keeps it in the outbox and sends it again (writes
are upserts), and after a failover that re-send reaches the new master. A server whose
``WAIT`` found no replica (a replica just promoted, with none of its own yet) is not waited
on again for a couple of seconds: writes to it are refused at once instead of each paying
the timeout, so callers keep getting answers at memory speed.
"""

from __future__ import annotations

import time
from typing import Any

from sheetcache._errors import BackendError
from sheetcache._logging import OutageLog
from sheetcache.backends.redis._nodes import Batch

__all__ = ["DURABILITY", "NotReplicatedError", "Replication"]

#: ``?durability=``: ``replica`` keeps a write queued until a replica confirmed it (WAIT 1).
DURABILITY = ("primary", "replica")

# After a server's WAIT found no replica, skip waiting on it for this long.
_UNREPLICATED_BACKOFF = 2.0


class NotReplicatedError(BackendError):
    """``durability=replica``: no replica confirmed a batch in time. It stays queued."""


class Replication:
    """Sends write batches with the chosen durability. Thread-safe enough: the state is a
    dict of deadlines, and a race only costs one extra or one skipped wait.
    """

    def __init__(self, durability: str, wait_timeout: float, url: str) -> None:
        self.durability = durability
        self.wait_timeout = wait_timeout
        self.url = url
        self._unreplicated: dict[str, float] = {}  # server -> monotonic time to wait again
        self._log = OutageLog(f"replicating writes to {url}")

    def send(self, batch: Batch) -> list[Any]:
        """Send a write batch; with durability=replica, raise unless a replica has it.

        Raises:
            NotReplicatedError: some server's writes were not confirmed (they did land on
                the primary).
        """
        if self.durability == "primary":
            return batch.execute()
        now = time.monotonic()
        waited: list[str] = []
        skipped: list[str] = []

        def wait(name: str, pipe: Any) -> None:
            if self._unreplicated.get(name, 0.0) > now:
                skipped.append(name)
            else:
                waited.append(name)
                pipe.execute_command("WAIT", 1, max(1, int(self.wait_timeout * 1000)))

        replies, tails = batch.execute_then(wait)
        unconfirmed = list(skipped)
        for name, tail in tails.items():
            if name in waited and not (tail and int(tail[-1]) >= 1):
                unconfirmed.append(name)
                self._unreplicated[name] = time.monotonic() + _UNREPLICATED_BACKOFF
            elif name in waited:
                self._unreplicated.pop(name, None)
        if unconfirmed:
            where = ", ".join(n or self.url for n in unconfirmed)
            exc = NotReplicatedError(
                f"no replica of {where} confirmed the write within {self.wait_timeout:g}s "
                "(durability=replica); it stays queued and is sent again. If this Redis has "
                "no replicas, use ?durability=primary"
            )
            self._log.failed(exc, "answers wait in the outbox")
            raise exc
        if not self._unreplicated:
            self._log.ok()
        return replies

"""Keeping spreadsheets across restarts (``--state FILE``).

The whole store is written as one JSON document, atomically (temporary file, fsync, rename),
by a background thread shortly after changes and once more on shutdown. A file of another
format or version is refused, never overwritten.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from sheetcache.emulator._state import Store

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "StateFileError",
    "StateSaver",
    "load_state",
    "save_state",
]

STATE_FORMAT = "sheetcache-emulator-state"
STATE_VERSION = 1


class StateFileError(Exception):
    """The state file exists but is not one this emulator can read."""


def load_state(store: Store, path: Path) -> bool:
    """Fill ``store`` from ``path``; False when there is no file yet.

    Raises:
        StateFileError: the file is unreadable or of another format/version.
    """
    if not path.exists():
        return False
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StateFileError(f"cannot read emulator state {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise StateFileError(
            f"{path} is not a sheetcache emulator state file; pass another --state path"
        )
    if data.get("version") != STATE_VERSION:
        raise StateFileError(
            f"{path} holds emulator state version {data.get('version')}, this emulator reads "
            f"version {STATE_VERSION}; pass another --state path"
        )
    with store.lock:
        store.load_json(data["store"])
    return True


def save_state(store: Store, path: Path) -> int:
    """Write the store to ``path`` atomically; returns the store version written."""
    with store.lock:
        version = store.version
        payload = orjson.dumps(
            {"format": STATE_FORMAT, "version": STATE_VERSION, "store": store.to_json()}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return version


class StateSaver:
    """Saves the store shortly after it changes, and on :meth:`stop`."""

    def __init__(self, store: Store, path: Path, interval: float = 0.5) -> None:
        self.store = store
        self.path = path
        self.interval = interval
        self._saved = store.version
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="emulator-state", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> None:
        """Save now if anything changed since the last save."""
        with self._lock:
            if self.store.version != self._saved:
                self._saved = save_state(self.store, self.path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

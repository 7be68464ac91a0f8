"""Cache modes, for CI and debugging, and the scoped override of :meth:`Cache.override`.

=============  =================================================================
``read-write`` the default: serve stored answers, call and store on a miss
``replay``     serve stored answers; a miss raises :class:`~sheetcache.CacheMissError`
               and nothing is called (CI: fail when a prompt changed)
``refresh``    always call, and store the answer over the old one
``off``        bypass the cache: no lookup, no store, just the call
=============  =================================================================

An override lives in a :class:`contextvars.ContextVar`, so it holds for the code in its
``with`` block and for asyncio tasks created inside it (they copy the context), and never
leaks into other threads or tasks. A ``threading.Thread`` started inside the block does
*not* inherit it: run the thread's target through ``contextvars.copy_context().run`` to
carry it over.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from sheetcache._errors import ConfigError

__all__ = ["MODES", "OFF", "READ_WRITE", "REFRESH", "REPLAY", "check_mode", "default_mode"]

READ_WRITE: Final = "read-write"
REPLAY: Final = "replay"
REFRESH: Final = "refresh"
OFF: Final = "off"
MODES: Final = (READ_WRITE, REPLAY, REFRESH, OFF)

#: Cache id -> mode, for the caches overridden in the current context. None = no override,
#: which the hot path tells apart with one ``get()``.
OVERRIDES: ContextVar[Mapping[int, str] | None] = ContextVar("sheetcache_modes", default=None)


def check_mode(mode: object, where: str = "mode") -> str:
    """Return the canonical mode string for ``mode`` (so the front may compare with ``is``).

    Raises:
        ConfigError: ``mode`` is not one of :data:`MODES`.
    """
    for known in MODES:
        if mode == known:
            return known
    valid = ", ".join(repr(m) for m in MODES)
    raise ConfigError(f"{where} must be one of {valid}, not {mode!r}")


def default_mode() -> str:
    """``$SHEETCACHE_MODE`` if set, else ``read-write``."""
    env = os.environ.get("SHEETCACHE_MODE")
    return check_mode(env, "$SHEETCACHE_MODE") if env else READ_WRITE


@contextmanager
def override(cache_id: int, mode: str) -> Iterator[None]:
    """Run the ``with`` block with ``mode`` for the cache whose id is ``cache_id``."""
    current = OVERRIDES.get()
    token = OVERRIDES.set({**(current or {}), cache_id: mode})
    try:
        yield
    finally:
        OVERRIDES.reset(token)

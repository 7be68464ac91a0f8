"""Cache URLs to backends, and where sheetcache keeps its local files.

==========================  ==================================================
``memory://``               :class:`~sheetcache.backends.memory.MemoryBackend`
``sqlite:///abs/path.db``   :class:`~sheetcache.backends.sqlite.SQLiteBackend`
``sqlite://relative.db``    (relative to the working directory)
``redis://``, ``rediss://``, ``redis+unix://``   ``sheetcache.backends.redis``
``sheets://ID/TAB``         ``sheetcache.backends.sheets``
==========================  ==================================================

Optional backends are imported only when their URL is used, so a missing extra fails there
with the pip command to run, not at ``import sheetcache``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sheetcache._errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from sheetcache.backends.base import Backend

__all__ = ["backend_from_url", "data_dir", "default_url", "outbox_path", "redact_url"]

# scheme -> (module, class, pip extra needed or None)
_SCHEMES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("sheetcache.backends.memory", "MemoryBackend", None),
    "sqlite": ("sheetcache.backends.sqlite", "SQLiteBackend", None),
    "redis": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "rediss": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "redis+unix": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "redis+cluster": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "rediss+cluster": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "valkey": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "valkeys": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "valkey+unix": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "valkey+cluster": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "valkeys+cluster": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "unix": ("sheetcache.backends.redis", "RedisBackend", "redis"),
    "sheets": ("sheetcache.backends.sheets", "SheetsBackend", "sheets"),
}


def data_dir() -> Path:
    """Where the default cache and outboxes live: ``$SHEETCACHE_DIR`` or the user cache dir."""
    env = os.environ.get("SHEETCACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sheetcache"))


def default_url() -> str:
    """``$SHEETCACHE_URL`` if set, else a SQLite file in :func:`data_dir`."""
    return os.environ.get("SHEETCACHE_URL") or f"sqlite://{(data_dir() / 'cache.db').absolute()}"


def redact_url(url: str) -> str:
    """The URL with passwords, tokens and credential paths masked, for logs and errors."""
    url = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
    return re.sub(r"((?:password|token|secret|credentials|key)=)[^&]*", r"\1***", url, flags=re.I)


def outbox_path(url: str) -> Path:
    """One outbox file per backend URL, shared by every process that uses that URL."""
    digest = hashlib.sha256(redact_url(url).encode()).hexdigest()[:16]
    return data_dir() / "outbox" / f"outbox-v1-{digest}.db"


def backend_from_url(url: str) -> Backend:
    """Open the backend a URL names.

    Raises:
        ConfigError: unknown scheme or malformed URL.
        MissingDependencyError: the backend's extra is not installed.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"unknown cache URL {redact_url(url)!r}: use memory://, sqlite:///path.db, "
            "redis://host:6379/0 or sheets://SPREADSHEET_ID/TAB"
        )
    module_name, class_name, extra = _SCHEMES[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or (exc.name or "").startswith("sheetcache"):
            raise
        raise MissingDependencyError(
            f"{scheme}:// needs the '{extra}' extra ({exc.name} is not installed): "
            f"pip install 'sheetcache[{extra}]'"
        ) from exc
    backend: Backend = getattr(module, class_name).from_url(url)
    return backend

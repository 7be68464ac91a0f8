"""Compatibility alias of :mod:`sheetcache.backends._registry` (where these now live).

Part of the backends layer: it imports nothing else.
"""

from sheetcache.backends._registry import backend_from_url, data_dir, default_url, redact_url

__all__ = ["backend_from_url", "data_dir", "default_url", "redact_url"]

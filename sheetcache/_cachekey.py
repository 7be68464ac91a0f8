"""The front's one key call: lookup bytes, canonical bytes and the stored key, together.

:mod:`sheetcache._keys` defines the forms; this module is the only place in the front that
turns them into a stored key, through :func:`~sheetcache._keys.key_of` (the one sha256).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from sheetcache._keys import canonical_bytes, key_of, lookup_bytes

__all__ = ["CacheKey", "cache_key", "digest"]


class CacheKey(NamedTuple):
    """Everything the front needs to find and store one answer."""

    lookup: bytes
    """:func:`~sheetcache._keys.lookup_bytes`: the L1's exact key (b"" when there is no L1)."""
    canonical: bytes
    """:func:`~sheetcache._keys.canonical_bytes`: what the stored key hashes."""
    key: str
    """The stored key: sha256 hex of :attr:`canonical`."""


#: The stored key of canonical key bytes (64 lowercase hex characters): the package's one
#: sha256 of a key, :func:`sheetcache._keys.key_of`.
digest = key_of


def cache_key(
    prompt: Any, namespace: str, key_parts: Mapping[str, Any], *, lookup: bytes | None = None,
    with_lookup: bool = True,
) -> CacheKey:  # fmt: skip
    """Build the key of ``prompt`` with ``key_parts`` in ``namespace``.

    Args:
        prompt: a str or chat messages.
        namespace: the cache's namespace.
        key_parts: the other parts of the key.
        lookup: lookup bytes the caller already computed (an L1 miss), reused as they are.
        with_lookup: False when there is no L1, to skip computing lookup bytes at all.

    Raises:
        TypeError: a part has no canonical form; the message names it.
    """
    canonical = canonical_bytes(prompt, namespace, key_parts)
    if lookup is None:
        lookup = lookup_bytes(prompt, namespace, key_parts) if with_lookup else b""
    return CacheKey(lookup, canonical, key_of(canonical))

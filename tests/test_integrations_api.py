"""The integrations' public names, pinned: a rename or a leak shows up here."""

from __future__ import annotations

import sheetcache.langchain
import sheetcache.proxy
import sheetcache.transport


def test_exported_members() -> None:
    assert sheetcache.transport.__all__ == ["AsyncCacheTransport", "CacheTransport"]
    assert sheetcache.proxy.__all__ == [
        "TOKEN_HEADER", "check_listen", "create_app", "is_loopback", "serve",
    ]  # fmt: skip
    assert sheetcache.langchain.__all__ == [
        "CODEC_NAME", "KEY_FORMAT", "LangChainCache", "key_parts_of", "prompt_of",
    ]  # fmt: skip
    for module in (sheetcache.transport, sheetcache.proxy, sheetcache.langchain):
        assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
        for name in module.__all__:
            assert hasattr(module, name), name

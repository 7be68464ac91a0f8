"""Explain a miss: the nearest stored entry and the key paths that differ, on a real
100k-entry SQLite store; ``sheetcache explain A --against B``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sheetcache import Cache, Entry, SQLiteBackend, make_key
from sheetcache._explain import Explanation, diff, explain
from sheetcache._keys import legacy_key
from sheetcache.cli import app

PARTS = {"model": "gpt-4o", "temperature": 0.2, "max_tokens": 256}
N = 100_000


def messages(i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": f"Question {i}: what is {i} squared?"},
        {"role": "assistant", "content": f"Let me think about {i}."},
        {"role": "user", "content": f"Now explain case {i} in one short paragraph, for a child."},
    ]


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("explain") / "big.db"
    backend = SQLiteBackend(path)
    now = time.time()
    batch = []
    for i in range(N):
        prompt = messages(i)
        key = make_key(prompt, "default", **PARTS)
        batch.append(Entry(key, f"answer {i}", "str", "default", prompt, dict(PARTS), now + i))
        if len(batch) == 10_000:
            backend.put_many(batch)
            batch = []
    backend.close()
    return f"sqlite:///{path}"


def test_diff_paths_on_a_100k_entry_store(big_store: str) -> None:
    target = 48_611
    prompt = messages(target)
    original = prompt[3]["content"]
    prompt[3] = {"role": "user", "content": original.replace("short", "long")}
    with Cache(big_store, l1_size=0) as cache:
        assert cache.backend.count() == N
        ex = explain(cache, prompt, {**PARTS, "temperature": 0.7})
    assert not ex.hit and ex.nearest is not None
    assert ex.nearest.value == f"answer {target}"
    at = original.index("short")
    assert ex.diff == [
        "parts.temperature: 0.2 → 0.7",
        f"prompt[3].content: changed at char {at} ({len(original)} → {len(original) - 1} chars)",
    ]
    assert ex.scanned <= N
    text = str(ex)
    assert "miss" in text and "parts.temperature: 0.2 → 0.7" in text
    assert ex.nearest.key[:12] in text


def test_a_hit_and_the_stored_but_unserved(tmp_path: Path) -> None:
    with Cache(f"sqlite:///{tmp_path / 'c.db'}") as cache:
        cache.get_or_call("hi", lambda p: "hello", model="m", temperature=0)
        ex = explain(cache, "hi", {"model": "m", "temperature": 0.0})  # 0 == 0.0
        assert ex.hit and ex.diff == [] and ex.nearest is not None
        assert str(ex).startswith("hit:")
        entry = ex.nearest
        entry.status, entry.note = "rejected", "wrong tone"
        cache.backend.put_many([entry])
        rejected = explain(cache, "hi", {"model": "m", "temperature": 0})
        assert not rejected.hit and "rejected it: wrong tone" in str(rejected)


def test_an_entry_under_key_format_1_is_found(tmp_path: Path) -> None:
    # with the fallback off (legacy_keys=False), explain agrees it is a miss
    with Cache(f"sqlite:///{tmp_path / 'c.db'}") as cache:
        old_key = legacy_key("hi", "default", {"model": "m"})
        assert old_key is not None
        cache.backend.put_many(
            [Entry(old_key, "old answer", prompt="hi", key_parts={"model": "m"})]
        )
        ex = explain(cache, "hi", {"model": "m"})
        assert ex.hit and ex.nearest is not None and ex.nearest.value == "old answer"
        other = Cache(f"sqlite:///{tmp_path / 'other.db'}", legacy_keys=False)
        with other:
            other.backend.put_many([Entry(old_key, "old", prompt="hi", key_parts={"model": "m"})])
            off = explain(other, "hi", {"model": "m"})
            assert not off.hit and off.nearest is not None and off.diff == []


def test_nothing_to_compare_with() -> None:
    with Cache("memory://") as cache:
        ex = explain(cache, "hi", {})
        assert (ex.hit, ex.nearest, ex.scanned) == (False, None, 0)
        assert "no stored entry" in str(ex)


def test_the_limit_bounds_the_scan() -> None:
    with Cache("memory://") as cache:
        for i in range(50):
            cache.set(f"prompt {i}", "x", model="m")
        ex = explain(cache, "other", {"model": "m"}, limit=10)
        assert ex.scanned == 10 and ex.limited and "limit=None" in str(ex)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"parts": {"seed": 1}}, {"parts": {}}, ["parts.seed: removed (was 1)"]),
        ({"parts": {}}, {"parts": {"top_p": 1}}, ["parts.top_p: added (1)"]),
        ({"parts": {"t": 0}}, {"parts": {"t": 0.0}}, []),
        ({"parts": {"f": True}}, {"parts": {"f": 1}}, ["parts.f: true → 1"]),
        ({"prompt": "short"}, {"prompt": "shorter"}, ['prompt: "short" → "shorter"']),
        ({"prompt": [1, 2]}, {"prompt": [1, 2, 3]}, ["prompt: 2 → 3 items"]),
        ({"parts": {"a b": 1}}, {"parts": {"a b": 2}}, ['parts["a b"]: 1 → 2']),
        ({"prompt": "x" * 100}, {"prompt": "x" * 60 + "y" * 40}, ["prompt: changed at char 60"]),
    ],
)
def test_diff_lines(old: Any, new: Any, expected: list[str]) -> None:
    assert diff(old, new) == expected


def test_explanation_fields() -> None:
    ex = Explanation(False, "k" * 64, None, [], 0)
    assert (ex.hit, ex.key, ex.nearest, ex.diff, ex.scanned) == (False, "k" * 64, None, [], 0)


def test_cli_explain_compares_two_stored_entries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Cache(url) as cache:
        a = cache.set([{"role": "user", "content": "hi"}], "1", model="m", temperature=0.2)
        b = cache.set([{"role": "user", "content": "hi"}], "2", model="m", temperature=0.7)
    result = CliRunner().invoke(app, ["explain", b[:8], "--against", a[:8], "--url", url])
    assert result.exit_code == 0, result.output
    assert "parts.temperature: 0.2 → 0.7" in result.output
    full = CliRunner().invoke(app, ["explain", b, "--against", a, "--url", url])
    assert full.exit_code == 0 and "parts.temperature: 0.2 → 0.7" in full.output
    missing = CliRunner().invoke(app, ["explain", "ffffff", "--against", a[:8], "--url", url])
    assert missing.exit_code == 1 and "no entry" in missing.output

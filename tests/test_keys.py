"""Keys: one pure function; everything that changes an answer changes the key, nothing else."""

from __future__ import annotations

import dataclasses
import socket

import pytest
from pydantic import BaseModel

from sheetcache import Cache, make_key
from sheetcache._keys import canonical_bytes

MESSAGES = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "What is 2+2?"},
]
BASE = dict(
    model="gpt-4o",
    temperature=0.2,
    max_tokens=256,
    tools=[{"name": "calc", "parameters": {"type": "object"}}],
)


class Answer(BaseModel):
    value: int


class OtherAnswer(BaseModel):
    value: str


def test_key_is_64_hex_and_pinned() -> None:
    key = make_key("What is 2+2?", model="gpt-4o", temperature=0)
    assert len(key) == 64 and int(key, 16) >= 0
    # Pinned: if this changes, every stored entry stops matching. Change the canonical form
    # only with a KEY_FORMAT_VERSION bump, and update this value then.
    assert key == "867c1c793067cd653cca7905e7ed05fb2127e189a57c78b7c1423c93a59e4189"


def test_dict_and_kwargs_order_do_not_matter() -> None:
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    a = make_key(MESSAGES, **BASE)
    b = make_key(reordered, **dict(reversed(list(BASE.items()))))
    assert a == b
    nested = dict(BASE, tools=[{"parameters": {"type": "object"}, "name": "calc"}])
    assert make_key(MESSAGES, **nested) == a


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o-mini"},
        {"temperature": 0.3},
        {"temperature": 0},  # 0.2 -> 0: documented that numbers key by their JSON form
        {"max_tokens": 257},
        {"tools": [{"name": "calc", "parameters": {"type": "object", "required": ["x"]}}]},
        {"tools": []},
        {"system": "Be verbose."},
        {"output_schema": Answer},
        {"template_version": "v2"},
        {"top_p": 1},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_part_changes_the_key(change: dict[str, object]) -> None:
    assert make_key(MESSAGES, **{**BASE, **change}) != make_key(MESSAGES, **BASE)


def test_prompt_namespace_and_schema_change_the_key() -> None:
    base = make_key(MESSAGES, **BASE)
    edited = [MESSAGES[0], {"role": "user", "content": "What is 2+3?"}]
    assert make_key(edited, **BASE) != base
    assert make_key(MESSAGES, "evals-v2", **BASE) != base
    assert make_key(MESSAGES, output_schema=Answer) != make_key(MESSAGES, output_schema=OtherAnswer)
    assert make_key("x", flag=True) != make_key("x", flag=1)
    assert make_key("x", value=None) != make_key("x")
    assert make_key(["a", "b"]) != make_key(["b", "a"])


def test_cache_namespace_is_in_the_key() -> None:
    with Cache("memory://", namespace="a") as a, Cache("memory://", namespace="b") as b:
        assert a.key("q", model="m") != b.key("q", model="m")
        assert a.key("q", model="m") == make_key("q", "a", model="m")


def test_unicode_is_kept_not_escaped() -> None:
    data = canonical_bytes("héllo — 中文 😀", "default", {})
    assert "héllo — 中文 😀".encode() in data
    assert make_key("é") != make_key("e\u0301")  # NFC vs NFD are different prompts


def test_pydantic_models_and_dataclasses_as_parts() -> None:
    @dataclasses.dataclass
    class Settings:
        temperature: float
        seed: int

    assert make_key("q", s=Settings(0.5, 1)) == make_key("q", s={"seed": 1, "temperature": 0.5})
    assert make_key("q", a=Answer(value=1)) != make_key("q", a=Answer(value=2))
    assert make_key("q", tags={"b", "a"}) == make_key("q", tags={"a", "b"})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "NaN and infinities"),
        ({"nested": [1, float("-inf")]}, r"\['nested'\]\[1\]"),
        (lambda: 1, "function cannot be part of a cache key"),
        ({1: "a"}, "non-string dict key"),
        ("\ud800", "not valid Unicode"),
        (2**70, "too large"),
    ],
    ids=["nan", "inf", "nested-inf", "lambda", "int-key", "surrogate", "bigint"],
)
def test_bad_parts_raise_typeerror_naming_the_part(bad: object, message: str) -> None:
    with pytest.raises(TypeError, match=rf"key part 'temperature'.*{message}|{message}"):
        make_key("q", temperature=bad)


def test_bad_part_raises_before_the_call() -> None:
    calls = []
    with Cache("memory://") as cache, socket.socket() as sock:
        with pytest.raises(TypeError, match="key part 'client'.*socket"):
            cache.get_or_call("q", calls.append, client=sock)
        with pytest.raises(TypeError, match="prompt"):
            cache.get_or_call(["ok", float("nan")], calls.append)
    assert calls == []


def test_nan_never_matches_a_cached_none() -> None:
    # The L1 skips the NaN scan on the hot path; a NaN must still not hit an entry for None.
    with Cache("memory://") as cache:
        cache.get_or_call("q", lambda p: "answer for None", temperature=None)
        with pytest.raises(TypeError, match="NaN"):
            cache.get_or_call("q", lambda p: "x", temperature=float("nan"))
        with pytest.raises(TypeError, match="NaN"):
            cache.get(["q", float("inf")])


def test_same_content_in_another_order_hits_through_the_backend(tmp_path: object) -> None:
    with Cache("memory://") as cache:
        cache.get_or_call({"a": 1, "b": 2}, lambda p: "first", x=1, y=2)
        assert cache.get_or_call({"b": 2, "a": 1}, lambda p: "second", y=2, x=1) == "first"

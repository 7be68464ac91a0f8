"""Keys: one pure function; everything that changes an answer changes the key, nothing else.

Format 2 is RFC 8785 (JCS) with documented extensions; format 1 stays reachable through
``legacy_key`` so caches written before the upgrade keep hitting.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import logging
import random
import socket
import struct
import uuid
from typing import Any

import orjson
import pytest
import rfc8785
from pydantic import BaseModel

from sheetcache import Cache, make_key
from sheetcache._keys import (
    KEY_FORMAT_VERSION,
    _write_all,
    canonical_bytes,
    is_secret_name,
    legacy_key,
    lookup_bytes,
    parse_canonical,
)

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


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Settings:
    temperature: float
    seed: int


def jcs(value: Any) -> bytes:
    """The canonical text of one value, cut out of the key's ``[2, ns, value, {}]``."""
    data = canonical_bytes(value, "n", {})
    head, tail = b'[2,"n",', b",{}]"
    assert data.startswith(head) and data.endswith(tail)
    return data[len(head) : -len(tail)]


def test_key_is_64_hex_and_pinned() -> None:
    key = make_key("What is 2+2?", model="gpt-4o", temperature=0)
    assert len(key) == 64 and int(key, 16) >= 0
    # Pinned: if this changes, every stored entry stops matching. Change the canonical form
    # only with a KEY_FORMAT_VERSION bump, and update this value then.
    assert key == "dbf500fb48dacecede511bd24e3e98f727ac8c188d87186787458fb7eaab060b"
    assert KEY_FORMAT_VERSION == 2


def test_zero_and_zero_point_zero_are_one_key() -> None:
    """Issue 10, failure 5: temperature=0 and temperature=0.0 were different keys."""
    assert make_key("q", temperature=0) == make_key("q", temperature=0.0)
    assert make_key("q", temperature=0) == make_key("q", temperature=-0.0)
    assert make_key("q", n=[1, 2.0, {"x": 3}]) == make_key("q", n=[1.0, 2, {"x": 3.0}])
    assert make_key("q", temperature=0) != make_key("q", temperature=0.1)
    with Cache("memory://") as cache:
        calls = []
        cache.get_or_call("q", lambda p: calls.append(p) or "a", temperature=0)
        assert cache.get_or_call("q", lambda p: "b", temperature=0.0) == "a"
        assert calls == ["q"]


# -- RFC 8785 ------------------------------------------------------------------------------

# RFC 8785 appendix B: IEEE-754 bit patterns and their canonical text.
RFC8785_NUMBERS = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


@pytest.mark.parametrize(("bits", "text"), RFC8785_NUMBERS.items())
def test_rfc8785_number_vectors(bits: str, text: str) -> None:
    number = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert jcs(number) == text.encode()
    assert jcs([number]) == f"[{text}]".encode()  # the fast path, inside a list
    assert jcs({1: number}).endswith(f",{text}]]}}".encode())  # the full writer


# The reference implementation's test data (cyberphone/json-canonicalization, testdata/).
JCS_FILES = [
    (
        '{"numbers": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],'
        ' "escaping": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}',
        '{"escaping":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/","literals":[null,true,false],'
        '"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}',
    ),
    (
        '{"\\u20ac": "Euro Sign", "1": "One", "\\u0080": "Control\\u007f",'
        ' "\\ud83d\\ude02": "Smiley", "\\u00f6": "Latin Small Letter O With Diaeresis",'
        ' "\\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}',
        '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f",'
        '"ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😂":"Smiley",'
        '"\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    ),
    (
        '{"1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0}, "10": { }, "": "empty", "a": { },'
        ' "111": [ { } ], "A": { }}',
        '{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}',
    ),
    (
        '{"peach": "This sorting order", "péché": "is wrong according to French",'
        ' "pêche": "but canonicalization MUST", "sin": "ingnore locale"}',
        '{"peach":"This sorting order","péché":"is wrong according to French",'
        '"pêche":"but canonicalization MUST","sin":"ingnore locale"}',
    ),
    ('[56, {"d": true, "10": null, "1": [ ]}]', '[56,{"1":[],"10":null,"d":true}]'),
]


@pytest.mark.parametrize(
    ("given", "expected"), JCS_FILES, ids=["values", "weird", "structures", "french", "arrays"]
)
def test_jcs_reference_files(given: str, expected: str) -> None:
    assert jcs(json.loads(given)) == expected.encode("utf-8")


def test_fast_path_agrees_with_the_full_writer_on_random_data() -> None:
    """orjson writes most keys; the pure-Python writer takes over for the rest. Same bytes."""
    rng = random.Random(10)

    def value(depth: int) -> Any:
        kind = rng.randrange(8 if depth < 3 else 5)
        if kind == 0:
            return struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if kind == 1:
            return rng.choice(
                [0, -1, 2**53, -(2**53), 2**53 + 1, 2**63, rng.randrange(-(9**9), 9**9)]
            )
        if kind == 2:
            return rng.choice(["", "a", "é", "\n\x01", "😀", "\ufb33", "\x7f\u2028", 'q"\\'])
        if kind == 3:
            return rng.uniform(-1e3, 1e3) * 10.0 ** rng.randint(-25, 25)
        if kind == 4:
            return rng.choice([None, True, False, 1.0, 0.5, -0.0])
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        keys = ["a", "b", "model", "B", "_", "0"]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randrange(4))}

    for _ in range(3000):
        v = value(0)
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            continue
        try:
            fast = canonical_bytes(v, "n", {"p": v})
        except TypeError:
            continue  # a NaN/inf deep inside: refused by both, tested elsewhere
        assert fast == _write_all(v, "n", {"p": v}), v


def test_keys_match_a_reference_jcs_implementation_on_random_json() -> None:
    """Within JCS's domain (no huge ints, no lone surrogates, str keys), the canonical bytes
    are exactly what an independent RFC 8785 library writes."""
    rng = random.Random(8785)
    alphabet = [
        "a",
        "Z",
        "0",
        " ",
        "é",
        "€",
        "\u0080",
        "\ufb33",
        "😀",
        "😂",
        "\n",
        "\x00",
        '"',
        "\\",
    ]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(5)))

    def value(depth: int) -> Any:
        kind = rng.randrange(7 if depth < 3 else 4)
        if kind == 0:
            x = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
            return x if x == x and abs(x) != float("inf") else 0.5
        if kind == 1:
            return rng.choice([rng.randrange(-(2**53), 2**53 + 1), 0, 1.0, -0.0, 2.0**60])
        if kind == 2:
            return text()
        if kind == 3:
            return rng.choice([None, True, False])
        if kind == 4:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {text() + rng.choice(["", "k"]): value(depth + 1) for _ in range(rng.randrange(5))}

    for _ in range(2000):
        v = value(0)
        expected = b'[2,"n",' + rfc8785.dumps(v) + b',{"p":' + rfc8785.dumps(v) + b"}]"
        if any(k[:1] == "\x00" for k in _keys_of(v)):
            continue  # NUL-led keys get sheetcache's escape: tested on their own
        assert canonical_bytes(v, "n", {"p": v}) == expected, v


def _keys_of(v: Any) -> list[str]:
    if isinstance(v, dict):
        return list(v) + [k for x in v.values() for k in _keys_of(x)]
    if isinstance(v, list):
        return [k for x in v for k in _keys_of(x)]
    return []


def test_integers_beyond_2_53_never_collide() -> None:
    """JCS would round 2**53 + 1 to a double, colliding with 2**53: sheetcache doesn't."""
    assert make_key("q", n=2**53) != make_key("q", n=2**53 + 1)
    assert make_key("q", n=2**62) == make_key("q", n=2.0**62)  # the same number
    # 2**62 as a double is written 4611686018427388000; the int with those digits is not it.
    assert make_key("q", n=4611686018427388000) != make_key("q", n=2.0**62)
    assert make_key("q", n=10**21) == make_key("q", n=1e21)
    assert make_key("q", n=10**30 + 1) != make_key("q", n=10**30)
    assert jcs(2**53 + 1) == b'{"\\u0000int":"9007199254740993"}'
    assert jcs(-(10**5000)).endswith(b'0"}')  # past Python's str() limit for ints


# -- hostile content: keyed, deterministic, no collisions --------------------------------


def test_lone_surrogate_in_a_tool_result_is_keyed() -> None:
    """Issue 10, failure 1: a lone surrogate in a tool result raised TypeError."""
    tool_result = [{"role": "tool", "content": "truncated emoji \ud83d"}]
    key = make_key(tool_result, model="m")
    assert key == make_key(list(tool_result), model="m")
    assert key != make_key([{"role": "tool", "content": "truncated emoji \ufffd"}], model="m")
    assert key != make_key([{"role": "tool", "content": "truncated emoji \\ud83d"}], model="m")
    # A surrogate *pair* of code points is not the emoji itself: different text in Python.
    assert make_key("\ud83d\ude00") != make_key("😀")
    assert jcs("a\ud83d") == b'"a\\ud83d"'
    with Cache("memory://") as cache:
        assert cache.get_or_call(tool_result, lambda p: "ok", model="m") == "ok"
        assert cache.get_or_call(tool_result, lambda p: "again", model="m") == "ok"
        (entry,) = list(cache.backend.iter_entries())
        assert entry.prompt == [{"content": "truncated emoji \ufffd", "role": "tool"}]


def test_non_string_dict_keys_are_keyed_without_colliding() -> None:
    """Issue 10, failure 1: a non-string dict key in provider_details raised TypeError."""
    a = make_key("q", provider_details={1: "x"})
    assert a == make_key("q", provider_details={1: "x"})
    assert a != make_key("q", provider_details={"1": "x"})
    assert a != make_key("q", provider_details={"\x00dict": [[1, "x"]]})  # the tag, forged
    assert make_key("q", d={1: "a", 2: "b"}) == make_key("q", d={2: "b", 1: "a"})
    assert make_key("q", d={None: 1}) != make_key("q", d={"null": 1})
    assert make_key("q", d={(1, 2): 1}) != make_key("q", d={"[1,2]": 1})
    assert make_key("q", d={"\x00a": 1}) != make_key("q", d={"\x00\x00a": 1})
    assert jcs({1: "x", "b": 2}) == b'{"\\u0000dict":[["b",2],[1,"x"]]}'


def test_nul_and_a_megabyte_are_keyed() -> None:
    big = "x" * 1_000_000 + "\x00" + "\ud800"
    assert make_key(big) == make_key("x" * 1_000_000 + "\x00" + "\ud800")
    assert make_key(big) != make_key(big[:-1])
    assert make_key("a\x00b") != make_key("a") != make_key("a\x00")
    assert jcs("a\x00b") == b'"a\\u0000b"'


def test_stored_prompt_is_read_back_from_the_canonical_bytes() -> None:
    ns, prompt, parts = parse_canonical(canonical_bytes("a\ud800", "n", {"t": 1.0, "d": {1: 2}}))
    assert (ns, prompt, parts) == ("n", "a\ufffd", {"d": {"\x00dict": [[1, 2]]}, "t": 1})
    orjson.dumps([prompt, parts])  # every store can write it


# -- the old rules that still hold ---------------------------------------------------------


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
        {"temperature": 0},
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
    assert make_key("q", s=Settings(0.5, 1)) == make_key("q", s={"seed": 1, "temperature": 0.5})
    assert make_key("q", a=Answer(value=1)) != make_key("q", a=Answer(value=2))
    assert make_key("q", tags={"b", "a"}) == make_key("q", tags={"a", "b"})
    assert make_key("q", c=Color.RED) == make_key("q", c="red")
    when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
    assert make_key("q", at=when) == make_key("q", at="2024-05-01T12:00:00+00:00")
    assert make_key("q", at=when) != make_key("q", at=when.replace(minute=1))
    ident = uuid.UUID(int=7)
    assert make_key("q", id=ident) == make_key("q", id=str(ident))
    assert make_key("q", d=datetime.date(2024, 5, 1)) == make_key("q", d="2024-05-01")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "NaN and infinities"),
        ({"nested": [1, float("-inf")]}, r"\['nested'\]\[1\]"),
        (lambda: 1, "function cannot be part of a cache key"),
        ({1: object()}, r"\[1\] of type object"),
    ],
    ids=["nan", "inf", "nested-inf", "lambda", "object-in-int-keyed-dict"],
)
def test_bad_parts_raise_typeerror_naming_the_part(bad: object, message: str) -> None:
    with pytest.raises(TypeError, match=rf"key part 'temperature'.*{message}|{message}"):
        make_key("q", temperature=bad)


def test_bad_part_raises_before_the_call() -> None:
    calls: list[object] = []
    with Cache("memory://") as cache, socket.socket() as sock:
        with pytest.raises(TypeError, match=r"key part 'client'.*socket"):
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


def test_same_content_in_another_order_hits_through_the_backend() -> None:
    with Cache("memory://") as cache:
        cache.get_or_call({"a": 1, "b": 2}, lambda p: "first", x=1, y=2)
        assert cache.get_or_call({"b": 2, "a": 1}, lambda p: "second", y=2, x=1) == "first"


def test_lookup_bytes_of_unusual_content_never_equal_plain_ones() -> None:
    odd = lookup_bytes({1: "x"}, "n", {})
    assert odd.startswith(b"[2,") and lookup_bytes({"1": "x"}, "n", {}) != odd
    assert lookup_bytes("\ud800", "n", {}) != lookup_bytes("\\ud800", "n", {})


# -- format 1, for entries stored before the upgrade --------------------------------------

LEGACY = [
    ("What is 2+2?", "default", {"model": "gpt-4o", "temperature": 0},
     "867c1c793067cd653cca7905e7ed05fb2127e189a57c78b7c1423c93a59e4189"),
    ("What is 2+2?", "default", {"model": "gpt-4o", "temperature": 0.0},
     "4035e2c56975b67445381c890960ae3d583d81e5dcc68053852762cc0d81f036"),
    ("What is 2+2?", "default", {"model": "gpt-4o", "temperature": 0.2},
     "d9d9888930349dbf023a9c9b182253fee6605622c905d9f6ec85a46a6e175fff"),
    (MESSAGES, "evals-v2", {"model": "gpt-4o-mini", "max_tokens": 256,
                            "tools": [{"name": "calc", "parameters": {"type": "object"}}]},
     "bd0076226591d2250e4e3ddb15ad7ce6344bed924392878d166b7abfe55e19cd"),
    ("héllo — 中文 😀", "default", {},
     "d931c5bd7c1f2cb42506702bf79b3365b910816855e8e2cd39e2efadff3b382c"),
    ("", "default", {"system": "Be verbose.", "stop": ["\n", "END"], "seed": 42},
     "49da021a1bf145b84789b2dec4c3f0f7cc5de1b4f30108579352a2bcfb71ecaf"),
    ("q", "default", {"value": None, "flag": True, "n": -7, "big": 2**62, "tiny": 1e-7,
                      "huge": 1e21, "third": 1 / 3},
     "5cfa393a8b139a134196175c7f10e4aebd56875b30a6dc2d5b8dc6098fdfc345"),
    ("q", "default", {"s": Settings(0.5, 1), "tags": {"b", "a"}, "color": Color.RED, "t": (1, 2)},
     "9dff3b7a6a801925a5f6500f823e636d23cd79411c1a050a9e39c9b8dbc302ce"),
    ({"function": "mod.ask", "arguments": {"question": "hi", "style": "short"}}, "default",
     {"model": "gpt-4o"}, "6c4053cf27e796a15d247b2e034937a468066f96015ad12148c2feea59d95947"),
    ("control \x00\x1f\t\n\"\\ chars", "ns", {"api_key": "sk-secret"},
     "c5d84e894aa30eac40c9e61c6de574a887a6e9dfcd7caea706204e121ac2f3bc"),
    ("q", "default", {"provider_details": {1: "x"}}, None),
    ("\ud800", "default", {}, None),
    ("q", "default", {"t": float("nan")}, None),
    ("q", "default", {"b": 2**70}, None),
]  # fmt: skip


@pytest.mark.parametrize(("prompt", "namespace", "parts", "expected"), LEGACY)
def test_legacy_key_is_exactly_format_1(
    prompt: Any, namespace: str, parts: dict[str, Any], expected: str | None
) -> None:
    """Pinned against make_key as it was before format 2 (computed from that code)."""
    assert legacy_key(prompt, namespace, parts) == expected
    if expected is not None:
        assert make_key(prompt, namespace, **parts) != expected  # format 2 is a new key
    elif "t" not in parts:  # what format 1 refused, format 2 keys (all but NaN)
        assert len(make_key(prompt, namespace, **parts)) == 64


# -- secrets -------------------------------------------------------------------------------

SECRET = [
    "api_key", "API_KEY", "openai_api_key", "apiKey", "x-api-key", "apikey", "token",
    "access_token", "githubToken", "password", "db_password", "secret", "client_secret",
    "Authorization", "auth", "basic_auth", "auth_header", "credentials", "private_key",
    "secret_key", "session_cookie", "bearer",
]  # fmt: skip
NOT_SECRET = [
    "max_tokens", "max_completion_tokens", "token_limit", "tokenizer", "sort_key", "key",
    "cache_key", "author", "authors", "keyword", "model", "temperature", "system", "monkey",
    "eos_token", "pad_token", "stop_token", "next_page_token", "page_token", "cursor_token",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRET)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", NOT_SECRET)
def test_names_that_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


def test_secret_parts_are_left_out_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 10, failure 3: a secret went into the key, and rotating it made every call miss."""
    caplog.set_level(logging.WARNING, "sheetcache")
    name = "warned_once_api_key"
    assert make_key("q", model="m", **{name: "sk-1"}) == make_key("q", model="m")
    assert make_key("q", model="m", **{name: "sk-2"}) == make_key("q", model="m")
    assert canonical_bytes("q", "n", {name: "sk-1"}, include={name}) != canonical_bytes(
        "q", "n", {}
    )
    assert b"sk-1" not in canonical_bytes("q", "n", {name: "sk-1", "model": "m"})
    warned = [r for r in caplog.records if name in r.getMessage()]
    assert len(warned) == 1 and "include=" in warned[0].getMessage()
    assert "sk-1" not in caplog.text


def test_keys_are_the_same_in_another_process(subprocess_env: dict[str, str]) -> None:
    """Set order, dict order and str hashing vary per process; keys must not."""
    import subprocess
    import sys

    code = (
        "from sheetcache import make_key\n"
        "print(make_key([{'b': 1, 'a': {3: 'x', 'k': 1.0}}], tags={'z', 'y', 'é', '😀'}, n=2**70))\n"
    )
    mine = make_key([{"a": {"k": 1, 3: "x"}, "b": 1.0}], tags={"😀", "é", "y", "z"}, n=2**70)
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**subprocess_env, "PYTHONHASHSEED": seed}, timeout=60,
        )  # fmt: skip
        assert out.stdout.strip() == mine

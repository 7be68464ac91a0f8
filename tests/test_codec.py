"""Values: every answer either round-trips exactly through every store or is refused with
a clear error before anything is written; stored text never crashes a read."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from redis_fixtures import redis_server_fixture, redis_url_fixture  # noqa: F401 - fixtures
from sheets_fixtures import Sheet, emulator, sheet  # noqa: F401 - fixtures

from sheetcache import Cache, UnsupportedValueError
from sheetcache._codec import ValueDecodeError, decode_value, encode_value


class Reply(BaseModel):
    text: str
    score: float


@dataclasses.dataclass
class Note:
    text: str
    n: int


HALF_EMOJI = "the model said: \ud83d"  # a truncated emoji, as json.loads gives it
HOSTILE: list[tuple[str, Any]] = [
    ("lone-surrogate", HALF_EMOJI),
    ("nul", "a\x00b\x00"),
    ("controls", "\x01\x1b[31m\x7f\u2028"),
    ("dict-with-surrogate", {"text": HALF_EMOJI, "tokens": [1, 2]}),
    ("list-with-nul", ["\x00", "x"]),
    ("huge-int", {"n": 2**80}),
]


@pytest.mark.parametrize(("name", "value"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_answers_round_trip_as_valid_text(name: str, value: Any) -> None:
    value_type, text = encode_value(value)
    text.encode("utf-8")  # every store can write it
    assert decode_value(value_type, text) == value


def test_two_surrogate_code_points_come_back_as_the_character_they_spell() -> None:
    """Documented: JSON reads an escaped high+low pair as one character."""
    value_type, text = encode_value("\ud83d\ude00!")
    assert decode_value(value_type, text) == "😀!"


def test_models_and_dataclasses_with_a_lone_surrogate_round_trip() -> None:
    for value in (Reply(text=HALF_EMOJI, score=0.5), Note(HALF_EMOJI, 3)):
        value_type, text = encode_value(value)
        text.encode("utf-8")
        back = decode_value(value_type, text)
        assert type(back) is type(value) and back == value


def _answer_survives(url: str, value: Any) -> None:
    """Store through one Cache, read through another (nothing from the first's L1)."""
    calls = []
    with Cache(url) as cache:
        assert cache.get_or_call("q", lambda p: calls.append(p) or value, model="m") == value
        assert cache.flush(timeout=60)
    with Cache(url) as cache:
        got = cache.get_or_call("q", lambda p: calls.append(p) or "called again", model="m")
    assert got == value and type(got) is type(value)
    assert calls == ["q"]


def test_lone_surrogate_answer_survives_sqlite(tmp_path: Path) -> None:
    """Issue 10, failure 1: an answer holding a lone surrogate could not be stored (the
    paid-for call raised UnicodeEncodeError or was lost)."""
    _answer_survives(f"sqlite:///{tmp_path / 'c.db'}", HALF_EMOJI)


@pytest.mark.parametrize(
    "value",
    [HALF_EMOJI, "a\x00b", "ü" * 1_000_000, {"t": HALF_EMOJI}],
    ids=["surrogate", "nul", "1mb", "dict-surrogate"],
)
def test_hostile_answers_survive_sqlite_and_redis(
    value: Any, tmp_path: Path, redis_url: str
) -> None:
    _answer_survives(f"sqlite:///{tmp_path / 'c.db'}", value)
    _answer_survives(redis_url, value)


@pytest.mark.parametrize(
    "value", [HALF_EMOJI, "a\x00b", {"t": HALF_EMOJI}], ids=["surrogate", "nul", "dict"]
)
def test_hostile_answers_survive_the_sheet(sheet: Sheet, value: Any) -> None:  # noqa: F811
    _answer_survives(sheet.url, value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "NaN"),
        ({"x": [float("inf")]}, "NaN"),
        ({1: "a"}, "key must be str"),
        (object(), "object"),
        (Note(text="x", n=float("nan")), "NaN"),  # type: ignore[arg-type]
    ],
    ids=["nan", "nested-inf", "int-key", "object", "dataclass-nan"],
)
def test_what_cannot_round_trip_is_refused_with_the_answer_kept(value: Any, reason: str) -> None:
    with pytest.raises(UnsupportedValueError, match=reason) as info:
        encode_value(value)
    assert info.value.value is value


@pytest.mark.parametrize(
    ("value_type", "text"),
    [
        ("json", "{not json"),
        ("json", ""),
        ("bytes", "***"),
        ("bytes", "é"),
        ("pydantic:tests_gone:Model", "{}"),
        ("pydantic:test_codec:Reply", '{"text": 1}'),
        ("pydantic:test_codec:Reply", "\\ud800"),
        ("dataclass:test_codec:Note", '{"nope": 1}'),
        ("dataclass:test_codec:Note", "[1, 2]"),
        ("no-such-format", "x"),
        ("str", None),
    ],
)
def test_bad_stored_text_raises_only_value_decode_error(value_type: str, text: Any) -> None:
    with pytest.raises(ValueDecodeError):
        decode_value(value_type, text)


def test_decode_error_is_a_value_error() -> None:
    """Callers that caught ValueError (the old contract) still catch it."""
    assert issubclass(ValueDecodeError, ValueError)


def test_an_integration_format_decodes_in_a_process_that_never_imported_it(
    subprocess_env: dict[str, str],
) -> None:
    """The codec names no integration: pydantic-ai announces its format by entry point."""
    from pydantic_ai.messages import ModelResponse, TextPart

    import sheetcache.pydantic_ai  # noqa: F401 - registers the format in this process

    value_type, text = encode_value(ModelResponse(parts=[TextPart("hi")]))
    assert value_type == "pydantic-ai-response"
    code = (
        "import sys\n"
        "from sheetcache._codec import decode_value\n"
        "assert 'sheetcache.pydantic_ai' not in sys.modules\n"
        f"print(decode_value({value_type!r}, sys.stdin.read()).parts[0].content)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True,
        env=subprocess_env, check=True, timeout=120,
    )  # fmt: skip
    assert out.stdout.strip() == "hi"
    source = Path(__file__).parents[1] / "sheetcache" / "_codec.py"
    assert "pydantic" + "_ai" not in source.read_text()

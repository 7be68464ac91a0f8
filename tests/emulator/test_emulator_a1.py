"""A1 notation as Google reads and prints it."""

from __future__ import annotations

import pytest

from sheetcache.emulator._a1 import Bounds, format_range, parse_a1, quote_title, split_sheet


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("A1", Bounds(0, 0, 1, 1)),
        ("b2:c3", Bounds(1, 1, 3, 3)),
        ("A:A", Bounds(0, 0, None, 1)),
        ("2:3", Bounds(1, 0, 3, None)),
        ("A1:1", Bounds(0, 0, 1, None)),
        ("A2:H", Bounds(1, 0, None, 8)),
        ("$AA$10", Bounds(9, 26, 10, 27)),
        ("C3:A1", Bounds(0, 0, 3, 3)),
    ],
)
def test_parse(text: str, bounds: Bounds) -> None:
    assert parse_a1(text) == bounds


@pytest.mark.parametrize("text", ["", "A", "1", "A0", "A:1", "1:A", "A1:B2:C3", "ABCD1", "A-1"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_a1(text)


def test_sheet_titles_split_and_quote() -> None:
    assert split_sheet("'It''s'!A1:B2") == ("It's", "A1:B2")
    assert split_sheet("'Sheet 1'") == ("Sheet 1", None)
    assert split_sheet("Sheet1!A1") == ("Sheet1", "A1")
    assert split_sheet("A1:B2") == (None, "A1:B2")
    with pytest.raises(ValueError):
        split_sheet("'unterminated!A1")
    assert [quote_title(t) for t in ("Sheet1", "data_2", "My Sheet", "AB12", "R1C1", "🌵")] == [
        "Sheet1",
        "data_2",
        "'My Sheet'",
        "'AB12'",
        "'R1C1'",
        "'🌵'",
    ]
    assert format_range("Sheet1", 0, 1, 0, 1) == "Sheet1!A1"
    assert format_range("It's", 1, 1000, 0, 26) == "'It''s'!A2:Z1000"

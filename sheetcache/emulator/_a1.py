"""A1 notation: parsing what clients send and printing what Google answers.

Rows and columns are 0-based and end-exclusive inside the emulator; ``None`` as an end means
"to the edge of the grid" (``A:A``, ``A2:H``, ``1:1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Bounds",
    "col_index",
    "col_letters",
    "format_range",
    "parse_a1",
    "quote_title",
    "split_sheet",
]

_ENDPOINT = re.compile(r"\$?([A-Za-z]*)\$?([0-9]*)")
_PLAIN_TITLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Titles that would read as a cell (ABC12) or an R1C1 reference must stay quoted.
_CELL_LIKE = re.compile(r"[A-Za-z]{1,3}[0-9]+|[Rr][0-9]*[Cc][0-9]*")


@dataclass(frozen=True, slots=True)
class Bounds:
    """A rectangle of a grid, 0-based, ends exclusive, ``None`` ends unbounded."""

    start_row: int
    start_col: int
    end_row: int | None
    end_col: int | None

    def clip(self, rows: int, cols: int) -> tuple[int, int, int, int]:
        """The rectangle cut to a grid of ``rows`` x ``cols``: ``(r0, r1, c0, c1)``."""
        r1 = rows if self.end_row is None else min(self.end_row, rows)
        c1 = cols if self.end_col is None else min(self.end_col, cols)
        return self.start_row, r1, self.start_col, c1

    def is_cell(self) -> bool:
        """True when the text named one cell (``B3``), which only fixes a start."""
        return self.end_row == self.start_row + 1 and self.end_col == self.start_col + 1


def col_letters(index: int) -> str:
    """0 -> ``A``, 25 -> ``Z``, 26 -> ``AA``."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def col_index(letters: str) -> int:
    """``A`` -> 0, ``AA`` -> 26 (case-insensitive)."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def quote_title(title: str) -> str:
    """A sheet title as Google prints it in a range: quoted only when it has to be."""
    if _PLAIN_TITLE.fullmatch(title) and not _CELL_LIKE.fullmatch(title):
        return title
    return "'" + title.replace("'", "''") + "'"


def format_range(title: str, r0: int, r1: int, c0: int, c1: int) -> str:
    """``Sheet1!A1:B2`` for rows ``[r0, r1)`` and columns ``[c0, c1)``; one cell prints alone."""
    start = f"{col_letters(c0)}{r0 + 1}"
    if r1 - r0 <= 1 and c1 - c0 <= 1:
        return f"{quote_title(title)}!{start}"
    return f"{quote_title(title)}!{start}:{col_letters(max(c1, c0 + 1) - 1)}{max(r1, r0 + 1)}"


def split_sheet(text: str) -> tuple[str | None, str | None]:
    """Split ``'It''s'!A1:B2`` into ``("It's", "A1:B2")``.

    Returns ``(None, text)`` when no sheet is named (the caller decides whether ``text`` is a
    sheet title, a named range or cells of the first sheet), and ``(title, None)`` for a quoted
    title alone.

    Raises:
        ValueError: unbalanced quotes or an empty part.
    """
    if text.startswith("'"):
        title: list[str] = []
        i = 1
        while i < len(text):
            ch = text[i]
            if ch == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    title.append("'")
                    i += 2
                    continue
                break
            title.append(ch)
            i += 1
        else:
            raise ValueError(text)
        rest = text[i + 1 :]
        if not rest:
            return "".join(title), None
        if rest.startswith("!") and len(rest) > 1:
            return "".join(title), rest[1:]
        raise ValueError(text)
    if "!" in text:
        title_text, a1 = text.rsplit("!", 1)
        if not title_text or not a1:
            raise ValueError(text)
        return title_text, a1
    return None, text


def parse_a1(a1: str) -> Bounds:
    """Parse the cells part of a range: ``A1``, ``A1:B2``, ``A:A``, ``1:3``, ``A2:H``, ``A1:1``.

    Raises:
        ValueError: not A1 notation.
    """
    parts = a1.split(":")
    if len(parts) == 1:
        col, row = _endpoint(parts[0])
        if col is None or row is None:
            raise ValueError(a1)
        return Bounds(row, col, row + 1, col + 1)
    if len(parts) != 2:
        raise ValueError(a1)
    c0, r0 = _endpoint(parts[0])
    c1, r1 = _endpoint(parts[1])
    # A bare column on one side and a bare row on the other (A:1, 1:A) is not a rectangle.
    if (r0 is None and c1 is None) or (c0 is None and r1 is None):
        raise ValueError(a1)
    start_row = 0 if r0 is None else r0
    start_col = 0 if c0 is None else c0
    end_row = None if r1 is None else r1 + 1
    end_col = None if c1 is None else c1 + 1
    if end_row is not None and end_row <= start_row:
        start_row, end_row = end_row - 1, start_row + 1
    if end_col is not None and end_col <= start_col:
        start_col, end_col = end_col - 1, start_col + 1
    return Bounds(start_row, start_col, end_row, end_col)


def _endpoint(text: str) -> tuple[int | None, int | None]:
    match = _ENDPOINT.fullmatch(text)
    if not match or not (match.group(1) or match.group(2)):
        raise ValueError(text)
    letters, digits = match.groups()
    if len(letters) > 3:
        raise ValueError(text)
    row = None
    if digits:
        row = int(digits) - 1
        if row < 0:
            raise ValueError(text)
    return (col_index(letters) if letters else None), row

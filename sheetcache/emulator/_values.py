"""Cell values: what a write stores and how a read renders it.

A stored cell is one of:

* ``""``: empty. Rows never end with ``""`` and a sheet's row list never ends with ``[]``.
* ``str``, ``int``, ``float``, ``bool``: a value written with ``valueInputOption=RAW`` (or a
  typed ``userEnteredValue``), kept exactly as sent: a RAW ``"0042"`` stays the text ``"0042"``
  and a RAW ``"=1+1"`` stays text.
* :class:`Entered`: a value written with ``USER_ENTERED``, parsed the way the Sheets UI parses
  typing (numbers, booleans, dates, percentages, formulas), with its display text fixed at
  write time.

Plain Python values keep the common RAW path cheap: a sheet holding only text renders without
touching a single cell (see ``_state.Sheet.plain_text``).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any

__all__ = [
    "FORMATTED",
    "FORMATTED_STRING",
    "FORMULA",
    "MAX_CELL_CHARS",
    "SERIAL_NUMBER",
    "UNFORMATTED",
    "Entered",
    "cell_from_extended_value",
    "cell_from_json",
    "cell_to_json",
    "effective_value",
    "format_number",
    "input_option_of",
    "parse_user_entered",
    "render",
    "text_width_px",
    "user_entered_value",
]

FORMATTED = "FORMATTED_VALUE"
UNFORMATTED = "UNFORMATTED_VALUE"
FORMULA = "FORMULA"
SERIAL_NUMBER = "SERIAL_NUMBER"
FORMATTED_STRING = "FORMATTED_STRING"

#: Google's per-cell limit; a longer string is refused with a 400.
MAX_CELL_CHARS = 50_000

# Sheets' epoch for date serial numbers (Lotus 1-2-3 compatible).
_EPOCH = _dt.datetime(1899, 12, 30)


class Entered:
    """A cell written with ``USER_ENTERED``.

    Attributes:
        value: The effective value: ``str``, ``int``, ``float`` or ``bool`` (an error such as
            ``#NAME?`` is a ``str`` with ``kind="error"``).
        display: The ``FORMATTED_VALUE`` text.
        formula: The formula text (``"=1+1"``) or ``None``.
        kind: ``None``, ``"date"`` (value is a serial number), or ``"error"``.
    """

    __slots__ = ("display", "formula", "kind", "value")

    def __init__(
        self, value: Any, display: str, formula: str | None = None, kind: str | None = None
    ) -> None:
        self.value = value
        self.display = display
        self.formula = formula
        self.kind = kind

    def __repr__(self) -> str:
        return f"Entered({self.value!r}, display={self.display!r}, formula={self.formula!r})"


def input_option_of(cell: Any) -> str | None:
    """Which ``valueInputOption`` wrote a stored cell (``None`` for an empty cell)."""
    if type(cell) is Entered:
        return "USER_ENTERED"
    if cell == "":
        return None
    return "RAW"


# --- numbers -------------------------------------------------------------------------------


def format_number(value: float | int) -> str:
    """Render a number the way Sheets' automatic format does (en_US).

    Integers print plainly up to 15 digits; other magnitudes use up to 15 significant digits
    and switch to ``1.23457E+19`` style outside ``[1e-4, 1e15)``.
    """
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int) and abs(value) < 10**15:
        return str(value)
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        return "#NUM!"
    if v == 0:
        return "0"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if 1e-4 <= abs(v) < 1e15:
        text = f"{v:.15g}"
        if "e" not in text:
            return text
    mantissa, exponent = f"{v:.5E}".split("E")
    mantissa = mantissa.rstrip("0").rstrip(".")
    sign = exponent[0]
    digits = exponent[1:].lstrip("0").rjust(2, "0")
    return f"{mantissa}E{sign}{digits}"


def _plain_number(value: float | int) -> float | int:
    # Google prints integral doubles without a fraction (1, not 1.0).
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# --- USER_ENTERED parsing ------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PERCENT = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))\s*%")
_CURRENCY = re.compile(r"([+-]?)\$\s*(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.?\d*|\.\d+)")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def parse_user_entered(value: Any) -> Any:
    """Turn one ``USER_ENTERED`` JSON value into a stored cell.

    Covers what Sheets does for en_US input: numbers (``"0042"`` is 42), thousands separators,
    percentages, dollar amounts, ``TRUE``/``FALSE``, ISO and US dates and times, a leading
    apostrophe forcing text, and formulas (see :func:`_evaluate` for what is computed).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return Entered(value, "TRUE" if value else "FALSE")
    if isinstance(value, (int, float)):
        return Entered(value, format_number(value))
    text = str(value)
    if text == "":
        return ""
    if text.startswith("=") and len(text) > 1:
        result, kind = _evaluate(text[1:])
        if kind == "error":
            return Entered(result, result, formula=text, kind="error")
        display = result if isinstance(result, str) else format_number(result)
        return Entered(result, display, formula=text)
    if text.startswith("'"):
        return Entered(text[1:], text[1:])
    stripped = text.strip()
    upper = stripped.upper()
    if upper in ("TRUE", "FALSE"):
        return Entered(upper == "TRUE", upper)
    if _NUMBER.fullmatch(stripped):
        number = _to_number(stripped)
        return Entered(number, format_number(number))
    if _THOUSANDS.fullmatch(stripped):
        number = _to_number(stripped.replace(",", ""))
        return Entered(number, stripped)
    match = _PERCENT.fullmatch(stripped)
    if match:
        number = _to_number(match.group(1)) / 100
        return Entered(_plain_number(number), stripped.replace(" ", ""))
    match = _CURRENCY.fullmatch(stripped)
    if match:
        number = _to_number(match.group(2).replace(",", ""))
        if match.group(1) == "-":
            number = -number
        return Entered(number, f"{'-' if number < 0 else ''}${abs(number):,.2f}")
    serial = _date_serial(stripped)
    if serial is not None:
        return Entered(serial, stripped, kind="date")
    return Entered(text, text)


def _to_number(text: str) -> int | float:
    if re.fullmatch(r"[+-]?\d+", text) and len(text.lstrip("+-")) <= 15:
        return int(text)
    return _plain_number(float(text))


def _date_serial(text: str) -> int | float | None:
    try:
        match = _ISO_DATE.fullmatch(text)
        if match:
            y, m, d, hh, mm, ss = match.groups()
            moment = _dt.datetime(int(y), int(m), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
            return _serial(moment)
        match = _US_DATE.fullmatch(text)
        if match:
            m, d, y, hh, mm, ss = match.groups()
            moment = _dt.datetime(int(y), int(m), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
            return _serial(moment)
        match = _TIME.fullmatch(text)
        if match:
            hh, mm, ss = match.groups()
            if int(hh) < 24 and int(mm) < 60 and int(ss or 0) < 60:
                return (int(hh) * 3600 + int(mm) * 60 + int(ss or 0)) / 86400
    except ValueError:
        return None
    return None


def _serial(moment: _dt.datetime) -> int | float:
    delta = moment - _EPOCH
    return _plain_number(delta.days + delta.seconds / 86400)


# --- formulas ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<str>\"(?:[^\"]|\"\")*\")"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op><=|>=|<>|[-+*/^&()=<>,%:!$]))"
)


def _evaluate(source: str) -> tuple[Any, str | None]:
    """Evaluate a constant formula: numbers, strings, ``+ - * / ^ & %``, comparisons.

    Anything naming a function or a cell is beyond the emulator: it evaluates to ``#NAME?``
    (Google would compute it). A formula that does not parse is ``#ERROR!``, as in Sheets.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if not match or match.end() == pos:
            if source[pos:].strip() == "":
                break
            return "#ERROR!", "error"
        pos = match.end()
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
    if any(kind == "name" and text.upper() not in ("TRUE", "FALSE") for kind, text in tokens):
        return "#NAME?", "error"
    try:
        value, rest = _parse_compare(tokens)
    except (IndexError, ValueError, TypeError):
        return "#ERROR!", "error"
    except ZeroDivisionError:
        return "#DIV/0!", "error"
    except OverflowError:
        return "#NUM!", "error"
    if rest:
        return "#ERROR!", "error"
    if isinstance(value, float):
        value = _plain_number(value)
    return value, None


_Tokens = list[tuple[str, str]]


def _parse_compare(tokens: _Tokens) -> tuple[Any, _Tokens]:
    left, tokens = _parse_concat(tokens)
    ops = {"=", "<>", "<", ">", "<=", ">="}
    while tokens and tokens[0][0] == "op" and tokens[0][1] in ops:
        op = tokens[0][1]
        right, tokens = _parse_concat(tokens[1:])
        left = {
            "=": left == right,
            "<>": left != right,
            "<": left < right,
            ">": left > right,
            "<=": left <= right,
            ">=": left >= right,
        }[op]
    return left, tokens


def _parse_concat(tokens: _Tokens) -> tuple[Any, _Tokens]:
    left, tokens = _parse_sum(tokens)
    while tokens and tokens[0] == ("op", "&"):
        right, tokens = _parse_sum(tokens[1:])
        left = _as_text(left) + _as_text(right)
    return left, tokens


def _parse_sum(tokens: _Tokens) -> tuple[Any, _Tokens]:
    left, tokens = _parse_product(tokens)
    while tokens and tokens[0][0] == "op" and tokens[0][1] in "+-":
        op = tokens[0][1]
        right, tokens = _parse_product(tokens[1:])
        left = (
            _as_number(left) + _as_number(right)
            if op == "+"
            else _as_number(left) - _as_number(right)
        )
    return left, tokens


def _parse_product(tokens: _Tokens) -> tuple[Any, _Tokens]:
    left, tokens = _parse_power(tokens)
    while tokens and tokens[0][0] == "op" and tokens[0][1] in "*/":
        op = tokens[0][1]
        right, tokens = _parse_power(tokens[1:])
        if op == "*":
            left = _as_number(left) * _as_number(right)
        else:
            left = _as_number(left) / _as_number(right)
    return left, tokens


def _parse_power(tokens: _Tokens) -> tuple[Any, _Tokens]:
    left, tokens = _parse_unary(tokens)
    if tokens and tokens[0] == ("op", "^"):
        right, tokens = _parse_power(tokens[1:])
        left = _as_number(left) ** _as_number(right)
    return left, tokens


def _parse_unary(tokens: _Tokens) -> tuple[Any, _Tokens]:
    if tokens and tokens[0][0] == "op" and tokens[0][1] in "+-":
        value, rest = _parse_unary(tokens[1:])
        return (-_as_number(value) if tokens[0][1] == "-" else _as_number(value)), rest
    value, tokens = _parse_atom(tokens)
    while tokens and tokens[0] == ("op", "%"):
        value = _as_number(value) / 100
        tokens = tokens[1:]
    return value, tokens


def _parse_atom(tokens: _Tokens) -> tuple[Any, _Tokens]:
    kind, text = tokens[0]
    if kind == "num":
        return _to_number(text), tokens[1:]
    if kind == "str":
        return text[1:-1].replace('""', '"'), tokens[1:]
    if kind == "name":
        return text.upper() == "TRUE", tokens[1:]
    if (kind, text) == ("op", "("):
        value, rest = _parse_compare(tokens[1:])
        if not rest or rest[0] != ("op", ")"):
            raise ValueError("unbalanced")
        return value, rest[1:]
    raise ValueError(text)


def _as_number(value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if value == "":
        return 0
    raise TypeError(value)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return format_number(value)


# --- rendering -----------------------------------------------------------------------------


def render(cell: Any, option: str, date_option: str = SERIAL_NUMBER) -> Any:
    """One stored cell as ``values.get`` returns it for a ``valueRenderOption``."""
    kind = type(cell)
    if kind is str:
        return cell
    if kind is Entered:
        if option == FORMULA and cell.formula is not None:
            return cell.formula
        if option == FORMATTED:
            return cell.display
        if cell.kind == "date" and date_option == FORMATTED_STRING:
            return cell.display
        value = cell.value
        return _plain_number(value) if type(value) is float else value
    if kind is bool:
        return ("TRUE" if cell else "FALSE") if option == FORMATTED else cell
    if option == FORMATTED:
        return format_number(cell)
    return _plain_number(cell)


def user_entered_value(cell: Any) -> dict[str, Any] | None:
    """The ``userEnteredValue`` of a stored cell, as ``spreadsheets.get`` reports it."""
    if cell == "" and type(cell) is str:
        return None
    if type(cell) is Entered:
        if cell.formula is not None:
            return {"formulaValue": cell.formula}
        return _typed(cell.value)
    return _typed(cell)


def effective_value(cell: Any) -> dict[str, Any] | None:
    """The ``effectiveValue`` of a stored cell (formula results included)."""
    if cell == "" and type(cell) is str:
        return None
    if type(cell) is Entered:
        if cell.kind == "error":
            return {"errorValue": {"type": "ERROR", "message": cell.value}}
        return _typed(cell.value)
    return _typed(cell)


def _typed(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, (int, float)):
        return {"numberValue": _plain_number(value)}
    return {"stringValue": value}


def cell_from_extended_value(value: dict[str, Any]) -> Any:
    """A stored cell from an ``ExtendedValue`` (``updateCells``/``repeatCell`` input)."""
    if not value:
        return ""
    if "formulaValue" in value:
        return parse_user_entered(str(value["formulaValue"]))
    if "stringValue" in value:
        return str(value["stringValue"])
    if "numberValue" in value:
        return value["numberValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    return ""


# --- persistence ---------------------------------------------------------------------------


def cell_to_json(cell: Any) -> Any:
    """A stored cell as JSON for the state file (plain values stay plain)."""
    if type(cell) is Entered:
        out: dict[str, Any] = {"v": cell.value, "d": cell.display}
        if cell.formula is not None:
            out["f"] = cell.formula
        if cell.kind is not None:
            out["k"] = cell.kind
        return out
    return cell


def cell_from_json(data: Any) -> Any:
    """Inverse of :func:`cell_to_json`."""
    if isinstance(data, dict):
        return Entered(data["v"], data["d"], data.get("f"), data.get("k"))
    return data


# --- column widths -------------------------------------------------------------------------

# Advance widths of Arial (metric-compatible with Helvetica), 1/1000 em, for ASCII 32..126.
_ARIAL_WIDTHS = (
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
)  # fmt: skip
# Pixels per em of the default 10pt Arial as Sheets measures it for autoResizeDimensions;
# calibrated on a recorded auto-resize (1024 x "A" -> 8691 px).
_EM_PX = 12.725


def text_width_px(text: str) -> int:
    """Estimated pixel width of ``text`` in the default font (widest line of a multi-line cell)."""
    widest = 0.0
    for line in text.split("\n"):
        units = 0
        for ch in line:
            code = ord(ch)
            if 32 <= code <= 126:
                units += _ARIAL_WIDTHS[code - 32]
            elif code >= 0x2E80:
                units += 1000  # CJK and emoji are about one em wide
            else:
                units += 556
        widest = max(widest, units / 1000 * _EM_PX)
    return round(widest)

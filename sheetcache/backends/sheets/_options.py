"""``sheets://SPREADSHEET_ID/TAB?opt=...``: the URL and its options, checked early.

Every option is a keyword argument of :class:`~sheetcache.backends.sheets.SheetsBackend`
(documented there and in docs/sheets.md); a wrong one fails at open with the list of
known ones, never later.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sheetcache._errors import ConfigError
from sheetcache._urls import redact_url

__all__ = ["DEFAULT_MAX_CELLS", "OPTIONS", "parse_sheets_url"]

#: Google's limit on cells in one spreadsheet (all worksheets, rows x columns).
DEFAULT_MAX_CELLS = 10_000_000


def _flag(value: str) -> bool:
    return value.lower() not in ("0", "off", "false", "no")


#: Option name -> how its text becomes the keyword argument.
OPTIONS: dict[str, Callable[[str], Any]] = {
    "credentials": str,
    "endpoint": str,
    "user": str,
    "refresh": float,
    "full_refresh": float,
    "flush": float,
    "timeout": float,
    "deadline": float,
    "backoff": float,
    "max_wait": float,
    "open_timeout": float,
    "late_apply": float,
    "compact": float,
    "read_quota": int,
    "write_quota": int,
    "max_cells": int,
    "quota_window": float,
    "mirror": _flag,
}


def parse_sheets_url(url: str) -> dict[str, Any]:
    """``sheets://ID/TAB?opt=...`` -> keyword arguments of :class:`SheetsBackend`.

    Raises:
        ConfigError: malformed URL or unknown/invalid option.
    """
    shown = redact_url(url)
    parts = urlsplit(url)
    spreadsheet_id = parts.netloc
    tab = unquote(parts.path.lstrip("/"))
    if "." in spreadsheet_id or "/" in tab:
        raise ConfigError(
            f"{shown!r}: put the spreadsheet ID after sheets://, not its web address: for "
            "https://docs.google.com/spreadsheets/d/ABC123/edit use sheets://ABC123/TAB"
        )
    if not re.fullmatch(r"[A-Za-z0-9_-]+", spreadsheet_id or "") or not tab:
        raise ConfigError(
            f"{shown!r} is not sheets://SPREADSHEET_ID/WORKSHEET (e.g. sheets://1AbC.../llm-cache)"
        )
    kwargs: dict[str, Any] = {"spreadsheet_id": spreadsheet_id, "worksheet": tab}
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        convert = OPTIONS.get(name)
        if convert is None:
            raise ConfigError(
                f"unknown option {name!r} in {shown!r}; known: {', '.join(sorted(OPTIONS))}"
            )
        try:
            value = convert(values[-1])
        except ValueError:
            raise ConfigError(f"option {name}={values[-1]!r} in {shown!r} is not valid") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not value > 0:
            raise ConfigError(f"option {name} in {shown!r} must be positive")
        kwargs[name] = value
    return kwargs

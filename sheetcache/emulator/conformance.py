"""Replay recorded Google traffic against the emulator and compare the answers.

Usage::

    python -m sheetcache.emulator.conformance DIR [DIR ...] [--verbose]

Each ``*.json`` file under the directories is a VCR cassette (``interactions[].request`` /
``response``), such as gspread's test suite records against the real API. Every cassette is
replayed in order against a fresh emulator, and each response is compared with Google's:

* the status must be equal;
* ``values`` endpoints, ``batchUpdate`` replies and masked (``fields=``) metadata must be
  equal as JSON;
* plain ``spreadsheets.get`` metadata must be equal on what gspread reads: spreadsheet
  title, locale, time zone, and each sheet's properties, merges, filters, protected ranges;
* Drive answers must carry the same keys, and the same values except timestamps;
* errors must have the same ``code``, ``status`` and ``message``.

Google's ids differ from the emulator's: the runner learns the mapping from each response
(a recorded spreadsheet or sheet id where the emulator answered another) and substitutes it in
later request paths and bodies. Token requests to Google's OAuth endpoints are skipped.

It prints one line per cassette and a last line ``N passed, M failed``; the exit status is 1
when any cassette failed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sheetcache.emulator._emulator import SheetsEmulator

__all__ = ["CassetteResult", "main", "run_cassette", "run_directories"]

_TOKEN_HOSTS = ("oauth2.googleapis.com", "accounts.google.com")
_SHEET_ID_KEYS = ("sheetId", "sourceSheetId")
_SPREADSHEET_ID_KEYS = ("spreadsheetId", "id", "destinationSpreadsheetId")
_TIME_KEYS = ("createdTime", "modifiedTime")


@dataclass
class CassetteResult:
    """The outcome of one cassette."""

    name: str
    requests: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every recorded request was replayed and matched."""
        return not self.failures and self.requests > 0

    def line(self) -> str:
        """One line for people: the cassette's name and its outcome."""
        if self.passed:
            extra = f", {self.skipped} token requests skipped" if self.skipped else ""
            return f"PASS {self.name} ({self.requests} requests{extra})"
        if not self.failures:
            return f"FAIL {self.name}: no requests to replay"
        more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        return f"FAIL {self.name}: {self.failures[0]}{more}"


class _Ids:
    """Recorded ids -> emulator ids, learnt from responses."""

    def __init__(self) -> None:
        self.spreadsheets: dict[str, str] = {}
        self.sheets: dict[int, int] = {}

    def learn(self, recorded: Any, actual: Any) -> None:
        if isinstance(recorded, dict) and isinstance(actual, dict):
            for key, value in recorded.items():
                if key not in actual:
                    continue
                other = actual[key]
                if (
                    key in _SPREADSHEET_ID_KEYS
                    and isinstance(value, str)
                    and isinstance(other, str)
                    and len(value) >= 20
                    and value != other
                ):
                    self.spreadsheets.setdefault(value, other)
                elif (
                    key in _SHEET_ID_KEYS
                    and isinstance(value, int)
                    and isinstance(other, int)
                    and value != other
                ):
                    self.sheets.setdefault(value, other)
                else:
                    self.learn(value, other)
        elif isinstance(recorded, list) and isinstance(actual, list):
            for a, b in zip(recorded, actual, strict=False):
                self.learn(a, b)

    def text(self, value: str) -> str:
        for recorded, actual in self.spreadsheets.items():
            if recorded in value:
                value = value.replace(recorded, actual)
        return value

    def json(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.json(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v, key) for v in value]
        if isinstance(value, str):
            return self.text(value)
        if key in _SHEET_ID_KEYS and isinstance(value, int) and not isinstance(value, bool):
            return self.sheets.get(value, value)
        return value

    def uri(self, uri: str) -> str:
        uri = self.text(uri)
        return re.sub(
            r"/sheets/(\d+):copyTo",
            lambda m: f"/sheets/{self.sheets.get(int(m.group(1)), int(m.group(1)))}:copyTo",
            uri,
        )


def _body_bytes(body: Any, headers: dict[str, Any] | None = None) -> bytes:
    """A cassette body as bytes: plain, ``{"string": ...}`` or ``{"base64_string": ...}``,
    gzip-decoded when the recorded headers say so.
    """
    if body is None:
        return b""
    if isinstance(body, dict):
        if "base64_string" in body:
            data = base64.b64decode(body["base64_string"])
        else:
            data = _body_bytes(body.get("string"))
    elif isinstance(body, bytes):
        data = body
    else:
        data = str(body).encode("utf-8")
    encoding = ""
    for name, value in (headers or {}).items():
        if name.lower() == "content-encoding":
            encoding = " ".join(value) if isinstance(value, list) else str(value)
    if "gzip" in encoding.lower() or data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError):
            data = gzip.decompress(data)
    return data


def _json(data: bytes) -> Any:
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def _content_type(headers: dict[str, Any]) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() == "content-type":
            return value[0] if isinstance(value, list) else str(value)
    return None


def _metadata_view(body: Any) -> Any:
    """What gspread reads from ``spreadsheets.get``."""
    if not isinstance(body, dict):
        return body
    props = body.get("properties") or {}
    sheets = []
    for sheet in body.get("sheets") or []:
        view = {"properties": sheet.get("properties")}
        for key in ("merges", "basicFilter", "protectedRanges", "rowGroups", "columnGroups"):
            if key in sheet:
                view[key] = sheet[key]
        sheets.append(view)
    return {
        "spreadsheetId": body.get("spreadsheetId"),
        "properties": {k: props.get(k) for k in ("title", "locale", "timeZone", "autoRecalc")},
        "sheets": sheets,
        "namedRanges": body.get("namedRanges"),
    }


def _drive_view(body: Any) -> Any:
    # Timestamps differ by nature: keep that they are there, not their value.
    if isinstance(body, dict):
        return {k: ("<time>" if k in _TIME_KEYS else _drive_view(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [_drive_view(v) for v in body]
    return body


def _error_view(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        view = {k: error.get(k) for k in ("code", "status", "message")}
        if isinstance(error.get("errors"), list) and error["errors"]:
            view["reason"] = error["errors"][0].get("reason")
        return view
    return body


def _view(method: str, uri: str, status: int, body: Any) -> Any:
    parts = urlsplit(uri)
    if status >= 400:
        return _error_view(body)
    path = parts.path
    if "/drive/" in path or (parts.netloc.endswith("www.googleapis.com") and "/upload/" in path):
        return _drive_view(body)
    query = parse_qs(parts.query)
    if method == "GET" and re.fullmatch(r"/v4/spreadsheets/[^/:]+", path) and "fields" not in query:
        return _metadata_view(body)
    return body


def _diff(expected: Any, actual: Any, where: str = "") -> str | None:
    """The first difference between two JSON values, as a short path and description."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected:
            if key not in actual:
                return f"{where}.{key} missing"
            found = _diff(expected[key], actual[key], f"{where}.{key}")
            if found:
                return found
        for key in actual:
            if key not in expected:
                return f"{where}.{key} unexpected ({json.dumps(actual[key])[:80]})"
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{where} has {len(actual)} items, Google {len(expected)}"
        for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
            found = _diff(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    if expected != actual or type(expected) is not type(actual):
        return (
            f"{where or 'body'}: {json.dumps(actual)[:120]} != Google {json.dumps(expected)[:120]}"
        )
    return None


def _is_token_request(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.netloc in _TOKEN_HOSTS or parts.path.rstrip("/").endswith(
        ("/token", "/oauth2/v4/token")
    )


def run_cassette(path: Path) -> CassetteResult:
    """Replay one cassette against a fresh emulator."""
    result = CassetteResult(path.stem)
    try:
        data = json.loads(path.read_text("utf-8"))
        interactions = data["interactions"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        result.failures.append(f"unreadable cassette: {exc}")
        return result
    ids = _Ids()
    with SheetsEmulator(quota=False) as emu:
        session = emu.session("conformance@example.iam.gserviceaccount.com")
        for n, interaction in enumerate(interactions, 1):
            request = interaction.get("request") or {}
            response = interaction.get("response") or {}
            method = str(request.get("method", "GET")).upper()
            uri = str(request.get("uri", ""))
            if _is_token_request(uri):
                result.skipped += 1
                continue
            result.requests += 1
            body = _body_bytes(request.get("body"))
            recorded_request = _json(body)
            if isinstance(recorded_request, (dict, list)):
                body = json.dumps(ids.json(recorded_request)).encode("utf-8")
            elif body:
                body = ids.text(body.decode("utf-8", "replace")).encode("utf-8")
            headers = {}
            content_type = _content_type(request.get("headers") or {})
            if content_type:
                headers["Content-Type"] = content_type
            mapped_uri = ids.uri(uri)
            try:
                got = session.request(method, mapped_uri, data=body or None, headers=headers)
            except Exception as exc:  # noqa: BLE001 - report, keep replaying
                result.failures.append(f"#{n} {method} {urlsplit(uri).path}: {exc!r}")
                continue
            status = int((response.get("status") or {}).get("code", 0))
            expected = _json(_body_bytes(response.get("body"), response.get("headers")))
            actual = _json(got.content)
            ids.learn(expected, actual)
            expected = ids.json(expected)
            label = f"#{n} {method} {urlsplit(uri).path}"
            if got.status_code != status:
                detail = json.dumps(actual)[:160] if actual is not None else ""
                result.failures.append(
                    f"{label}: status {got.status_code} != Google {status} {detail}"
                )
                continue
            problem = _diff(
                _view(method, uri, status, expected), _view(method, uri, status, actual)
            )
            if problem:
                result.failures.append(f"{label}: {problem}")
    return result


def run_directories(directories: Sequence[Path], *, verbose: bool = False, out: Any = None) -> int:
    """Replay every cassette under ``directories``; returns the process exit status."""
    out = out or sys.stdout
    files: list[Path] = []
    for directory in directories:
        if directory.is_file():
            files.append(directory)
        else:
            files.extend(sorted(directory.rglob("*.json")))
    passed = failed = 0
    for path in files:
        result = run_cassette(path)
        print(result.line(), file=out)
        if verbose:
            for failure in result.failures[1:]:
                print(f"    {failure}", file=out)
        if result.passed:
            passed += 1
        else:
            failed += 1
    print(f"{passed} passed, {failed} failed", file=out)
    return 0 if failed == 0 and passed > 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Replay the cassettes named on the command line; exit 0 when all pass."""
    parser = argparse.ArgumentParser(
        prog="python -m sheetcache.emulator.conformance",
        description="Replay recorded Google Sheets API cassettes against the emulator.",
    )
    parser.add_argument("directories", nargs="+", type=Path, help="cassette directories or files")
    parser.add_argument("--verbose", "-v", action="store_true", help="list every mismatch")
    args = parser.parse_args(argv)
    missing = [d for d in args.directories if not d.exists()]
    if missing:
        parser.error(f"no such directory: {', '.join(map(str, missing))}")
    return run_directories(args.directories, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())

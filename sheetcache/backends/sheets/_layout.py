"""The sheet as people see it: columns found by header name, one row per entry.

Main worksheet (``sheets://ID/TAB``), one row per entry, plain headers, readable first:

==========  ===================================================================
key         the cache key (64 hex): what a lookup matches
created     ISO 8601 UTC time the answer was stored
model       the ``model`` key part, for people (the key parts in ``meta`` count)
prompt      what the prompt column shows: the last user message (see
            :func:`sheetcache._display.prompt_text`); the full prompt is in ``meta``
            whenever this is not the whole prompt
response    the answer as text (:mod:`sheetcache._codec`); a reviewer may edit it
status      ``approved``, ``rejected`` or empty (unreviewed)
note        free text for reviewers; a rejected answer that got replaced is kept here
hits        times the entry was served (a number)
last hit    ISO 8601 UTC time of the last hit
meta        JSON for the machine: format version, namespace, key parts, value type,
            call duration, expiry, the full prompt when needed, split-cell info, the
            entry's ``metadata`` (usage) and the write id of the append that made the row
saved       optional (``sheetcache init`` adds it): dollars saved by this entry's hits
            so far, from its usage (:func:`sheetcache._savings.entry_savings`)
==========  ===================================================================

Columns are found by their header, so people may reorder them and add their own; ours are
written by name and theirs are never touched.

Long values. A cell holds at most 50,000 characters. A longer response, note, prompt or key
parts text is split: the first 50,000 characters of a response or note stay in its cell and
the rest goes, in order, to rows of a second worksheet ``TAB.parts`` (``key | id | field |
part | text``), which ``meta`` points to by an ``id`` derived from the content. Splitting into
rows of another tab (instead of more columns or continuation rows in the main tab) keeps the
main tab at one row per entry and ten columns: extra columns would cost one cell per row of
the whole sheet against the 10,000,000-cell limit. Parts are appended before their main row,
so a reader that sees a main row finds its parts; an entry whose parts are incomplete is
skipped, never served truncated.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from sheetcache._display import model_of, prompt_text
from sheetcache._errors import SchemaError
from sheetcache.backends.base import Entry

__all__ = [
    "ALL_HEADERS",
    "CELL_LIMIT",
    "FORMAT_VERSION",
    "HEADERS",
    "OPTIONAL_HEADERS",
    "PARTS_HEADERS",
    "EncodedEntry",
    "IncompleteParts",
    "Layout",
    "PartsIndex",
    "RowDecoder",
    "RowError",
    "col_letter",
    "decode_row",
    "encode_entry",
    "format_requests",
    "format_time",
    "header_requests",
    "parse_time",
    "split_text",
]

#: Version of the row format, written in every ``meta``. A row with a newer one is skipped.
FORMAT_VERSION = 1

#: Google's per-cell limit, counted here in UTF-16 code units to be safe with emoji.
CELL_LIMIT = 50_000

HEADERS = (
    "key", "created", "model", "prompt", "response", "status", "note", "hits", "last hit", "meta",
)  # fmt: skip
#: Columns written when the header has them, skipped otherwise; ``sheetcache init`` adds them.
OPTIONAL_HEADERS = ("saved",)
ALL_HEADERS = HEADERS + OPTIONAL_HEADERS
PARTS_HEADERS = ("key", "id", "field", "part", "text")

_KEY = re.compile(r"[0-9a-f]{64}")
_SPLIT_FIELDS = ("response", "note", "prompt", "key_parts")


class RowError(ValueError):
    """A row that cannot be read as an entry (edited into garbage); it is skipped."""


class IncompleteParts(RowError):
    """A split entry whose parts are not (yet) all in the parts tab."""


def normalize_header(text: Any) -> str:
    """``" Last_Hit "`` -> ``"last hit"``: how header cells are matched."""
    return " ".join(str(text).replace("_", " ").replace("-", " ").split()).lower()


def col_letter(index: int) -> str:
    """0 -> ``A``, 26 -> ``AA``."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def quote_title(title: str) -> str:
    """A worksheet title as it goes in an A1 range: always quoted, quotes doubled."""
    return "'" + title.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each of our columns is in a worksheet, found from its header row."""

    columns: dict[str, int]
    """Our header name -> 0-based column index."""
    width: int
    """Cells in the header row, ours and other people's."""

    @classmethod
    def from_header(
        cls, header: Sequence[Any], tab: str, url_hint: str, names: Sequence[str] = HEADERS
    ) -> Layout:
        """Map ``names`` to their columns.

        Raises:
            SchemaError: a required header is missing or appears twice; the message says to
                run ``sheetcache init`` or fix the header row.
        """
        found: dict[str, int] = {}
        twice: list[str] = []
        wanted = set(names) | (set(OPTIONAL_HEADERS) if names is HEADERS else set())
        for i, cell in enumerate(header):
            name = normalize_header(cell)
            if name in wanted:
                if name in found:
                    twice.append(name)
                found.setdefault(name, i)
        missing = [n for n in names if n not in found]
        if missing or twice:
            problems = []
            if missing:
                problems.append(f"lacks the column(s) {', '.join(missing)}")
            if twice:
                problems.append(f"has the column(s) {', '.join(twice)} twice")
            shown = [str(c) for c in header[:12]]
            raise SchemaError(
                f"worksheet {tab!r} {' and '.join(problems)} (header row: {shown or 'empty'}). "
                f"Run `sheetcache init {url_hint}` to add the sheetcache columns, or fix row 1 "
                f"by hand: it needs the headers {', '.join(names)} (any order; other columns "
                "are left alone). Nothing was changed."
            )
        return cls(found, max(len(header), max(found.values()) + 1))

    def runs(self, names: Iterable[str]) -> list[tuple[int, list[str]]]:
        """Group ``names`` into runs of adjacent columns: ``[(first column, [names...])]``."""
        ordered = sorted(names, key=self.columns.__getitem__)
        out: list[tuple[int, list[str]]] = []
        for name in ordered:
            col = self.columns[name]
            if out and out[-1][0] + len(out[-1][1]) == col:
                out[-1][1].append(name)
            else:
                out.append((col, [name]))
        return out

    def row(self, cells: Mapping[str, Any]) -> list[Any]:
        """A full row for an append: our cells by name, ``""`` in other columns.

        Cells of optional columns this header lacks are left out.
        """
        width = max(self.columns.values()) + 1
        out: list[Any] = [""] * width
        columns = self.columns
        for name, value in cells.items():
            col = columns.get(name)
            if col is not None:
                out[col] = value
        return out

    def present(self, cells: Mapping[str, Any]) -> dict[str, Any]:
        """``cells`` without the optional columns this header lacks."""
        return {n: v for n, v in cells.items() if n in self.columns}


# -- time ----------------------------------------------------------------------------------


def format_time(ts: float | None) -> str:
    """Unix time -> ``2024-05-01T12:00:00.25Z`` (UTC, microseconds, trailing zeros dropped)."""
    if ts is None:
        return ""
    text = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text.rstrip("0").rstrip(".") + "Z"


def parse_time(value: Any) -> float | None:
    """Inverse of :func:`format_time`; also takes plain Unix seconds. "" -> None.

    Raises:
        ValueError: not a time.
    """
    if value.__class__ is str:
        if not value:
            return None
        if _ISO_Z and value[-1:] == "Z":  # the format we write: the fast path of a big load
            return _fromisoformat(value).timestamp()
    elif value is None:
        return None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


_fromisoformat = datetime.fromisoformat
_ISO_Z = sys.version_info >= (3, 11)  # fromisoformat() reads a trailing "Z" since 3.11


# -- splitting -----------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = CELL_LIMIT) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` UTF-16 units; ``"".join`` restores it.

    Always returns at least one piece (``[""]`` for empty text).
    """
    if len(text) <= limit and (text.isascii() or utf16_len(text) <= limit):
        return [text]
    if utf16_len(text) == len(text):  # no astral characters: units == characters
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    pieces: list[str] = []
    start = units = 0
    for i, ch in enumerate(text):
        width = 2 if ord(ch) > 0xFFFF else 1
        if units + width > limit:
            pieces.append(text[start:i])
            start, units = i, 0
        units += width
    pieces.append(text[start:])
    return pieces


# -- entry <-> row -------------------------------------------------------------------------


@dataclass(slots=True)
class EncodedEntry:
    """What one entry becomes: its main-row cells by header name and its part rows."""

    key: str
    cells: dict[str, Any]
    parts: list[list[Any]]
    """Rows for ``TAB.parts``: ``[key, id, field, part, text]``."""


def _json(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def saved_cell(entry: Entry) -> Any:
    """The ``saved`` cell: dollars the entry's hits saved so far.

    Empty when its usage is unknown or has no price.
    """
    from sheetcache._savings import entry_savings

    try:
        _tokens, usd = entry_savings(entry.metadata)
    except Exception:  # noqa: BLE001 - a display column must never stop a write
        return ""
    if usd is None or not entry.hits:
        return ""
    return round(usd * entry.hits, 6)


def encode_entry(
    entry: Entry, limit: int = CELL_LIMIT, write_id: str | None = None
) -> EncodedEntry:
    """The cells of ``entry``'s main row and, for values over ``limit``, its part rows.

    ``write_id`` (from the outbox) goes in ``meta`` as ``"w"``: a re-send checks for it.
    """
    shown = prompt_text(entry.prompt)
    meta: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "namespace": entry.namespace,
        "value_type": entry.value_type,
        "key_parts": entry.key_parts or {},
        "duration": entry.duration,
        "expires_at": format_time(entry.expires_at) or None,
    }
    if entry.metadata:
        meta["metadata"] = entry.metadata
    if write_id:
        meta["w"] = write_id
    prompt_cell = shown
    if utf16_len(shown) > limit:
        prompt_cell = split_text(shown, limit - 1)[0] + "…"
    if not (isinstance(entry.prompt, str) and prompt_cell == entry.prompt):
        meta["prompt"] = entry.prompt

    overflow: dict[str, list[str]] = {}
    response = split_text(entry.value, limit)
    note = split_text(entry.note, limit)
    if len(response) > 1:
        overflow["response"] = response[1:]
    if len(note) > 1:
        overflow["note"] = note[1:]
    meta_text = _json(meta)
    if utf16_len(meta_text) > limit:
        # Big prompts and key parts (a long system prompt, tool schemas) move to parts.
        for name, field in (("prompt", "prompt"), ("key_parts", "key_parts")):
            if name in meta:
                overflow[field] = split_text(_json(meta.pop(name)), limit)
        meta_text = _json(meta)
    parts: list[list[Any]] = []
    if overflow:
        digest = hashlib.sha256(entry.key.encode())
        for field in _SPLIT_FIELDS:
            for piece in overflow.get(field, ()):
                digest.update(piece.encode("utf-8", "surrogatepass"))
        part_id = digest.hexdigest()[:16]
        meta["parts"] = {"id": part_id, **{f: len(p) for f, p in overflow.items()}}
        meta_text = _json(meta)
        for field in _SPLIT_FIELDS:
            for n, piece in enumerate(overflow.get(field, ()), start=1):
                parts.append([entry.key, part_id, field, n, piece])
    if utf16_len(meta_text) > limit:
        raise ValueError(f"entry {entry.key}: its meta is over {limit} characters even split")
    cells = {
        "key": entry.key,
        "created": format_time(entry.created_at),
        "model": model_of(entry.key_parts or {}),
        "prompt": prompt_cell,
        "response": response[0],
        "status": entry.status,
        "note": note[0],
        "hits": entry.hits,
        "last hit": format_time(entry.last_hit_at),
        "meta": meta_text,
    }
    if entry.metadata:
        cells["saved"] = saved_cell(entry)
    return EncodedEntry(entry.key, cells, parts)


class PartsIndex:
    """The rows of ``TAB.parts``: ``id -> field -> part number -> text`` (+ their rows)."""

    def __init__(self) -> None:
        self.texts: dict[str, dict[str, dict[int, str]]] = {}
        self.rows: dict[str, list[int]] = {}
        """Part id -> sheet rows (1-based) holding its parts, duplicates included."""
        self.bad_rows: list[int] = []
        self.dup_rows: list[int] = []
        """Rows repeating a part already seen (a retried append): safe to delete."""

    def add_rows(self, rows: Sequence[Sequence[Any]], first_row: int) -> None:
        """Index ``rows`` read from the parts tab, the first being sheet row ``first_row``."""
        for offset, row in enumerate(rows):
            if len(row) < 4 or not row[1]:
                if any(cell != "" for cell in row):
                    self.bad_rows.append(first_row + offset)
                continue
            part_id, field = str(row[1]), str(row[2])
            try:
                number = int(row[3])
            except (TypeError, ValueError):
                self.bad_rows.append(first_row + offset)
                continue
            text = cell_text(row[4]) if len(row) > 4 else ""
            numbered = self.texts.setdefault(part_id, {}).setdefault(field, {})
            if number in numbered:
                self.dup_rows.append(first_row + offset)
            else:
                numbered[number] = text
            self.rows.setdefault(part_id, []).append(first_row + offset)

    def forget(self, part_ids: Iterable[str]) -> None:
        """Drop the texts of parts whose entries are decoded (they live in the mirror now).

        Their rows stay known, for deletes and compaction.
        """
        for part_id in part_ids:
            self.texts.pop(part_id, None)

    def join(self, part_id: str, field: str, count: int) -> str:
        """The text of parts 1..count of ``field``, or RowError if any is missing."""
        found = self.texts.get(part_id, {}).get(field, {})
        try:
            return "".join(found[n] for n in range(1, count + 1))
        except KeyError:
            raise IncompleteParts(
                f"its long {field} is incomplete in the parts tab (id {part_id})"
            ) from None


def cell_text(value: Any) -> str:
    """A cell read with UNFORMATTED_VALUE as text: numbers a reviewer typed come back as such."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    return "" if value is None else str(value)


def normalize_status(value: Any) -> tuple[str, bool]:
    """A status cell -> (status, recognised). Lenient on case and spacing."""
    text = cell_text(value).strip().lower()
    if not text:
        return "", True
    if text.startswith("approv"):
        return "approved", True
    if text.startswith("reject"):
        return "rejected", True
    return "", False


_HEX = "0123456789abcdef"


class RowDecoder:
    """Rebuilds entries from main-tab rows of one layout.

    ``decoder(row)`` -> ``(entry, parts id or None)``.

    Written for a cold load of 100,000 rows: column positions are resolved once, and the
    common case (a full row of text the backend wrote) takes no detours.

    Raises (from a call):
        RowError: the row is garbage (empty or malformed key, unreadable meta, incomplete
            parts); the message says what is wrong. Callers skip such rows.
    """

    def __init__(self, layout: Layout, parts: PartsIndex) -> None:
        cols = layout.columns
        self.parts = parts
        self.width = max(cols.values()) + 1
        self.order = tuple(cols[name] for name in HEADERS)
        self.write_id: str | None = None
        """The write id in the meta of the row decoded last (None if it has none)."""

    def parse_metas(self, rows: Sequence[list[Any]], chunk: int = 1000) -> list[Any]:
        """Parse the meta cells of ``rows`` a thousand at a time.

        One ``orjson.loads`` per chunk costs half as much as one per cell; ``None`` where a
        row must parse its own.

        Only cells shaped like what the backend writes (``{"v":...}``) are batched, and a
        chunk that fails or yields another number of objects falls back to row by row, so a
        garbage cell never lends its neighbour a meta.
        """
        i_meta = self.order[9]
        out: list[Any] = [None] * len(rows)
        for start in range(0, len(rows), chunk):
            at: list[int] = []
            texts: list[str] = []
            for i in range(start, min(len(rows), start + chunk)):
                row = rows[i]
                text = row[i_meta] if i_meta < len(row) else ""
                if text.__class__ is str and text.startswith('{"v":') and text.endswith("}"):
                    at.append(i)
                    texts.append(text)
            if not texts:
                continue
            try:
                parsed = orjson.loads("[" + ",".join(texts) + "]")
            except orjson.JSONDecodeError:
                continue
            if len(parsed) == len(texts):
                for i, meta in zip(at, parsed, strict=True):
                    out[i] = meta
        return out

    def __call__(self, row: list[Any], meta: Any = None) -> tuple[Entry, str | None]:
        if len(row) < self.width:
            row = row + [""] * (self.width - len(row))
        (
            i_key,
            i_created,
            _i_model,
            i_prompt,
            i_response,
            i_status,
            i_note,
            i_hits,
            i_last,
            i_meta,
        ) = self.order
        key = row[i_key]
        if key.__class__ is not str or len(key) != 64 or key.strip(_HEX):
            key = cell_text(key).strip()
            if len(key) != 64 or key.strip(_HEX):
                raise RowError(
                    "its key is empty" if not key else f"its key {key[:20]!r} is not 64 hex"
                )
        if meta is None:
            meta_text = row[i_meta]
            try:
                meta = orjson.loads(
                    meta_text if meta_text.__class__ is str else cell_text(meta_text)
                )
            except orjson.JSONDecodeError:
                raise RowError("its meta cell is not JSON") from None
        if meta.__class__ is not dict:
            raise RowError("its meta cell is not a JSON object")
        version = meta.get("v")
        if version.__class__ is not int or version > FORMAT_VERSION:
            raise RowError(f"its meta has format version {version!r}; this sheetcache reads 1")
        value = row[i_response]
        if value.__class__ is not str:
            value = cell_text(value)
        note = row[i_note]
        if note.__class__ is not str:
            note = cell_text(note)
        key_parts = meta.get("key_parts", {})
        part_id = None
        try:
            split = meta.get("parts")
            if split is not None:
                part_id, value, note, key_parts = self._join(split, meta, value, note, key_parts)
            prompt = meta["prompt"] if "prompt" in meta else cell_text(row[i_prompt])
            expires = meta.get("expires_at")
            expires_at = parse_time(expires) if expires is not None else None
            duration = meta.get("duration")
            if duration is not None:
                if duration.__class__ not in (int, float):
                    raise RowError("its meta 'duration' is not a number")
                duration = float(duration)
            value_type = meta.get("value_type", "str")
            namespace = meta.get("namespace", "default")
            if value_type.__class__ is not str or namespace.__class__ is not str:
                raise RowError("its meta 'value_type' or 'namespace' is not text")
            if key_parts.__class__ is not dict:
                raise RowError("its meta 'key_parts' is not an object")
        except (ValueError, TypeError, AttributeError) as exc:
            if isinstance(exc, RowError):
                raise
            raise RowError(f"its meta is malformed ({exc})") from None
        status = row[i_status]
        if status and status not in ("approved", "rejected"):
            status = normalize_status(status)[0]
        try:
            created_at = parse_time(row[i_created]) or 0.0
        except ValueError:
            created_at = 0.0  # display column edited: the entry is still good
        try:
            last_hit_at = parse_time(row[i_last])
        except ValueError:
            last_hit_at = None
        hits = row[i_hits]
        if hits.__class__ is not int:
            try:
                hits = int(float(str(hits).replace(",", ""))) if hits != "" else 0
            except ValueError:
                hits = 0
        metadata = meta.get("metadata")
        if metadata.__class__ is not dict:
            metadata = {}
        entry = Entry(
            key, value, value_type, namespace, prompt, key_parts, created_at, expires_at, hits,
            last_hit_at, duration, status or "", note, metadata,
        )  # fmt: skip
        write_id = meta.get("w")
        self.write_id = write_id if write_id.__class__ is str else None
        return entry, part_id

    def _join(
        self, split: Any, meta: dict[str, Any], value: str, note: str, key_parts: Any
    ) -> tuple[str, str, str, Any]:
        if split.__class__ is not dict or split.get("id").__class__ is not str:
            raise RowError("its meta 'parts' is malformed")
        part_id = split["id"]
        parts = self.parts
        if split.get("response"):
            value += parts.join(part_id, "response", int(split["response"]))
        if split.get("note"):
            note += parts.join(part_id, "note", int(split["note"]))
        if split.get("prompt"):
            meta["prompt"] = orjson.loads(parts.join(part_id, "prompt", int(split["prompt"])))
        if split.get("key_parts"):
            key_parts = orjson.loads(parts.join(part_id, "key_parts", int(split["key_parts"])))
        return part_id, value, note, key_parts


def decode_row(row: list[Any], layout: Layout, parts: PartsIndex) -> tuple[Entry, str | None]:
    """One row through a :class:`RowDecoder` (for callers decoding a few rows)."""
    return RowDecoder(layout, parts)(row)


def winner_rank(entry: Entry, row: int) -> tuple[int, float, int]:
    """Sort key of duplicate rows of one key; the largest wins (see docs/sheets.md).

    A row a reviewer judged wins (approved before rejected), then the newest ``created``,
    then the lowest (earliest) row, so every process picks the same row.
    """
    status_rank = {"approved": 2, "rejected": 1}.get(entry.status, 0)
    return status_rank, entry.created_at, -row


# -- preparing a worksheet (``sheetcache init``, and the backend on an empty tab) ---------------

_WIDTHS = {
    "key": 110, "created": 170, "model": 110, "prompt": 360, "response": 480, "status": 100,
    "note": 240, "hits": 60, "last hit": 170, "meta": 160, "saved": 80,
}  # fmt: skip
_STATUS_HELP = "approved, rejected, or empty (not reviewed yet)"


def header_requests(sheet_id: int, header: list[Any], grid_cols: int) -> list[dict[str, Any]]:
    """BatchUpdate requests adding our missing headers after the existing ones."""
    present = {normalize_header(c) for c in header}
    missing = [h for h in ALL_HEADERS if h not in present]
    if not missing:
        return []
    start = len(header)
    while start and str(header[start - 1]).strip() == "":
        start -= 1
    requests: list[dict[str, Any]] = []
    need = start + len(missing)
    if need > grid_cols:
        requests.append({"appendDimension": {
            "sheetId": sheet_id, "dimension": "COLUMNS", "length": need - grid_cols,
        }})  # fmt: skip
    requests.append({"updateCells": {
        "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": start},
        "rows": [{"values": [{"userEnteredValue": {"stringValue": h}} for h in missing]}],
        "fields": "userEnteredValue",
    }})  # fmt: skip
    return requests


def format_requests(sheet_id: int, layout: Layout) -> list[dict[str, Any]]:
    """Freeze the header, set widths, wrap prompt/response, a dropdown on status."""
    cols = layout.columns

    def column(name: str, *, from_row: int = 1) -> dict[str, Any]:
        c = cols[name]
        return {"sheetId": sheet_id, "startRowIndex": from_row,
                "startColumnIndex": c, "endColumnIndex": c + 1}  # fmt: skip

    requests: list[dict[str, Any]] = [
        {"updateSheetProperties": {
            "properties": {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": 1}},
            "fields": "gridProperties.frozenRowCount",
        }},
        {"repeatCell": {
            "range": {"sheetId": sheet_id, "startRowIndex": 0, "endRowIndex": 1},
            "cell": {"userEnteredFormat": {"textFormat": {"bold": True}}},
            "fields": "userEnteredFormat.textFormat.bold",
        }},
    ]  # fmt: skip
    for name, width in _WIDTHS.items():
        if name not in cols:
            continue
        c = cols[name]
        requests.append({"updateDimensionProperties": {
            "range": {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": c, "endIndex": c + 1},
            "properties": {"pixelSize": width},
            "fields": "pixelSize",
        }})  # fmt: skip
    for name in ("prompt", "response"):
        requests.append({"repeatCell": {
            "range": column(name),
            "cell": {"userEnteredFormat": {"wrapStrategy": "WRAP", "verticalAlignment": "TOP"}},
            "fields": "userEnteredFormat.wrapStrategy,userEnteredFormat.verticalAlignment",
        }})  # fmt: skip
    requests.append({"setDataValidation": {
        "range": column("status"),
        "rule": {
            "condition": {"type": "ONE_OF_LIST", "values": [
                {"userEnteredValue": "approved"}, {"userEnteredValue": "rejected"},
            ]},
            "inputMessage": _STATUS_HELP,
            "strict": True,
            "showCustomUi": True,
        },
    }})  # fmt: skip
    return requests

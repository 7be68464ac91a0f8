"""Cache commands: stats, ls, show, export, import, prune, clear."""

from __future__ import annotations

import csv
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TextIO

import orjson
import typer
from rich.table import Table

import sheetcache.cli._ui as _ui
from sheetcache._cache import Cache
from sheetcache._codec import decode_value
from sheetcache._display import age, model_of, prompt_text, response_text
from sheetcache._savings import entry_savings
from sheetcache.backends.base import STATUSES, Entry, chunks
from sheetcache.cli._app import app

_ENTRY_FIELDS = list(Entry.__dataclass_fields__)
_JSON_FIELDS = {"prompt", "key_parts", "metadata"}
_TIME_FIELDS = {"created_at", "expires_at", "last_hit_at"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' (or plain seconds) to seconds, more than 0."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise typer.BadParameter(f"{text!r}: use a number with a unit, like 30d, 12h, 90m or 45s")
    number, unit = float(match[1]), match[2] or "s"
    if number <= 0:
        raise typer.BadParameter(f"{text!r}: give an age above 0, like 30d, 12h, 90m or 45s")
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


def iso(ts: float | None) -> str:
    """ISO 8601 UTC with every digit the float holds, so a CSV round trip is exact."""
    if ts is None:
        return ""
    exact = Decimal(ts).quantize(Decimal("1e-9"))
    whole = int(exact // 1)
    frac = f"{exact - whole:.9f}"[1:].rstrip("0").rstrip(".")
    stamp = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}{frac}Z"


def parse_time(text: str) -> float | None:
    """Inverse of :func:`iso`; plain epoch seconds (older exports) are read too."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", text)
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 time like 2026-01-31T12:00:00Z")
    base = datetime.fromisoformat(match[1] + (match[3] or "Z").replace("Z", "+00:00"))
    return float(Decimal(int(base.timestamp())) + Decimal(match[2] or "0"))


# -- inspection ----------------------------------------------------------------------------


def _read_all(cache: Cache, namespace: str | None, label: str) -> Iterator[Entry]:
    """Every entry, with progress on stderr (a count first, so the bar has an end)."""
    total = cache.backend.count(namespace)
    with _ui.progress(label, total) as task:
        for e in cache.entries(namespace):
            yield e
            task.advance()


class _Savings:
    __slots__ = ("entries", "hits", "seconds", "tokens", "unpriced_hits", "usd")

    def __init__(self) -> None:
        self.entries = self.hits = self.tokens = self.unpriced_hits = 0
        self.seconds = self.usd = 0.0

    def add(self, e: Entry) -> None:
        self.entries += 1
        self.hits += e.hits
        self.seconds += e.hits * (e.duration or 0.0)
        tokens, usd = entry_savings(e.metadata)
        self.tokens += e.hits * tokens
        if usd is None:
            self.unpriced_hits += e.hits
        else:
            self.usd += e.hits * usd

    def dollars(self) -> str:
        if not self.hits:
            return "-"
        if self.unpriced_hits == self.hits:
            return "unknown"
        shown = f"${self.usd:,.4f}" if self.usd < 1 else f"${self.usd:,.2f}"
        return shown + (" + unknown" if self.unpriced_hits else "")


def _model(e: Entry) -> str:
    usage = e.metadata.get("usage") if isinstance(e.metadata, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("model"), str):
        return str(usage["model"])
    return model_of(e.key_parts) or "-"


@app.command()
def stats(url: _ui.UrlOption = None, namespace: _ui.NamespaceOption = None) -> None:
    """Entries, hits and what they saved.

    Time, tokens and dollars saved, in total and per namespace and per model.
    """
    target = _ui.resolve_url(url)
    with _ui.open_cache(target) as cache:
        total, reviewed, expired = _Savings(), 0, 0
        by_namespace: dict[str, _Savings] = {}
        by_model: dict[str, _Savings] = {}
        now = time.time()
        for e in _read_all(cache, namespace, "reading entries"):
            total.add(e)
            by_namespace.setdefault(e.namespace, _Savings()).add(e)
            by_model.setdefault(_model(e), _Savings()).add(e)
            reviewed += e.status != ""
            expired += e.is_expired(now)
        pending = cache.stats.pending_writes
    _ui.out(f"sheetcache: {target.shown}")
    summary = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    summary.add_row("entries", f"{total.entries:,}")
    summary.add_row("hits recorded", f"{total.hits:,}")
    summary.add_row("LLM time saved", f"{total.seconds:,.1f} s")
    summary.add_row("tokens saved", f"{total.tokens:,}")
    summary.add_row("dollars saved", total.dollars())
    summary.add_row("reviewed (approved or rejected)", f"{reviewed:,}")
    summary.add_row("expired (prune removes them)", f"{expired:,}")
    summary.add_row("answers waiting in the outbox", f"{pending:,}")
    _ui.state.out.print(summary)
    for title, groups in (("namespace", by_namespace), ("model", by_model)):
        if not groups:
            continue
        table = Table(title=f"saved per {title}", title_justify="left")
        table.add_column(title, overflow="fold")
        for column in ("entries", "hits", "time", "tokens", "dollars"):
            table.add_column(column, justify="right", no_wrap=True)
        for name, s in sorted(groups.items()):
            table.add_row(name, f"{s.entries:,}", f"{s.hits:,}", f"{s.seconds:,.1f} s",
                          f"{s.tokens:,}", s.dollars())  # fmt: skip
        _ui.state.out.print(table)
    if total.unpriced_hits:
        _ui.out(
            f"unknown: {_ui.plural(total.unpriced_hits, 'hit')} on entries with no known price "
            "(no usage recorded, or no price for the model)"
        )


@app.command("ls")
def list_entries(
    url: _ui.UrlOption = None,
    namespace: _ui.NamespaceOption = None,
    limit: Annotated[
        int, typer.Option(min=1, metavar="N", help="Show at most this many (newest first).")
    ] = 50,
) -> None:
    """List entries, newest first, one line each.

    Key prefix, namespace, model, age, hits, and the prompt and answer as a person reads them.
    """
    target = _ui.resolve_url(url)
    with _ui.open_cache(target) as cache:
        newest: list[Entry] = []
        seen = 0
        for e in _read_all(cache, namespace, "reading entries"):
            seen += 1
            newest.append(e)
            if len(newest) > 4 * limit:  # keep memory bounded on a big store
                newest = sorted(newest, key=lambda x: x.created_at, reverse=True)[:limit]
        newest = sorted(newest, key=lambda x: x.created_at, reverse=True)[:limit]
    shown = f" (newest {len(newest):,} shown)" if seen > len(newest) else ""
    _ui.out(f"{_ui.plural(seen, 'entry', 'entries')} in {target.shown}{shown}")
    if not newest:
        return
    now = time.time()
    rows = [
        [e.key[:8], e.namespace, _model(e), age(e.created_at, now), f"{e.hits:,}",
         (f"[{e.status}] " if e.status else "") + _flat(prompt_text(e.prompt)),
         _flat(response_text(e.value_type, e.value))]
        for e in newest
    ]  # fmt: skip
    header = ["key", "namespace", "model", "age", "hits", "prompt", "response"]
    # Fixed columns first (capped), the preview gets the rest: one line per entry, always.
    caps = [8, 12, 14, 4, 6]
    widths = [min(cap, max(len(r[i]) for r in [header, *rows])) for i, cap in enumerate(caps)]
    preview = max(10, _ui.state.out.width - sum(widths) - len(widths))
    for row in [header, *rows]:
        cells = [_fit(row[i], w).ljust(w) if i not in (3, 4) else _fit(row[i], w).rjust(w)
                 for i, w in enumerate(widths)]  # fmt: skip
        _ui.out(" ".join([*cells, _pair(row[5], row[6], preview)]).rstrip())


def _pair(prompt: str, response: str, width: int) -> str:
    """``prompt → response`` in ``width`` characters, each side keeping a fair share."""
    budget = width - 3
    if len(prompt) + len(response) > budget:
        share = max(budget - len(response), budget // 3)
        prompt = _fit(prompt, min(len(prompt), share))
        response = _fit(response, budget - len(prompt))
    return f"{prompt} → {response}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _flat(text: str) -> str:
    return " ".join(text.split())[:500]


def _find(cache: Cache, key: str) -> Entry:
    key = key.strip().lower()
    if len(key) == 64:
        found: Entry | None = cache.backend.get_many([key]).get(key)
        if found is not None:
            return found
    elif len(key) >= 6:
        matches = [e for e in _read_all(cache, None, "searching") if e.key.startswith(key)]
        if len(matches) == 1:
            only: Entry = matches[0]
            return only
        if len(matches) > 1:
            raise _ui.fail(f"{len(matches)} keys start with {key!r}; give more characters")
    else:
        raise _ui.fail(
            "give the key, or at least its first 6 characters (see `sheetcache ls`)", code=2
        )
    raise _ui.fail(f"no entry with key {key!r} in {_ui.current_target.shown}")  # type: ignore[union-attr]


def _block(value: Any) -> str:
    text = (
        value
        if isinstance(value, str)
        else orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    )
    return "\n".join("  " + line for line in text.splitlines()) or "  (empty)"


@app.command()
def show(
    key: Annotated[str, typer.Argument(metavar="KEY", help="A key or its first 6+ characters.")],
    url: _ui.UrlOption = None,
) -> None:
    """Show one entry in full.

    Every field, the prompt and the stored answer, untruncated.
    """
    target = _ui.resolve_url(url)
    with _ui.open_cache(target) as cache:
        e = _find(cache, key)
    now = time.time()

    def when(ts: float | None, never: str = "never") -> str:
        return f"{iso(ts)} ({age(ts, now)} ago)" if ts is not None else never

    tokens, usd = entry_savings(e.metadata)
    fields = [
        ("key", e.key),
        ("namespace", e.namespace),
        ("model", _model(e)),
        ("created", when(e.created_at)),
        ("expires", iso(e.expires_at) or "never"),
        ("hits", f"{e.hits:,} (last {when(e.last_hit_at)})"),
        ("call took", "unknown" if e.duration is None else f"{e.duration:.3f} s"),
        (
            "saves per hit",
            f"{tokens:,} tokens, " + ("price unknown" if usd is None else f"${usd:.6f}"),
        ),
        ("status", e.status or "unreviewed"),
        ("note", e.note or "-"),
        ("value type", e.value_type),
    ]
    for name, text in fields:
        _ui.out(f"{name:<14}{text}")
    for name, value in (("key parts", e.key_parts), ("metadata", e.metadata),
                        ("prompt", e.prompt), ("response", e.value)):  # fmt: skip
        _ui.out(f"{name}:")
        _ui.out(_block(value))


# -- export / import -----------------------------------------------------------------------


class Format(str, Enum):
    """Export file formats."""

    jsonl = "jsonl"
    csv = "csv"


def _csv_row(e: Entry) -> list[Any]:
    data = e.to_dict()
    row: list[Any] = []
    for f in _ENTRY_FIELDS:
        if f in _JSON_FIELDS:
            row.append(orjson.dumps(data[f]).decode())
        elif f in _TIME_FIELDS:
            row.append(iso(data[f]))
        else:
            row.append("" if data[f] is None else data[f])
    return row


@app.command()
def export(
    url: _ui.UrlOption = None,
    format: Annotated[
        Format,
        typer.Option(
            "--format", "-f", help="jsonl keeps every field exactly; csv opens in a spreadsheet."
        ),
    ] = Format.jsonl,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="File to write (default: stdout)."),
    ] = None,
    namespace: _ui.NamespaceOption = None,
) -> None:
    """Write every entry to JSONL or CSV.

    Streaming: the cache is never loaded whole.
    With --output the file appears only when the export is complete, so a failed export
    never leaves a partial backup behind.
    """
    target = _ui.resolve_url(url)
    partial = output.with_name(output.name + ".partial") if output else None
    written = 0
    with _ui.open_cache(target) as cache:
        sink: TextIO = partial.open("w", encoding="utf-8", newline="") if partial else sys.stdout
        try:
            writer = csv.writer(sink) if format is Format.csv else None
            if writer:
                writer.writerow(_ENTRY_FIELDS)
            for e in _read_all(cache, namespace, "exporting"):
                if writer:
                    writer.writerow(_csv_row(e))
                else:
                    sink.write(orjson.dumps(e.to_dict()).decode() + "\n")
                written += 1
        except BaseException:
            if partial:
                sink.close()
                partial.unlink(missing_ok=True)
            raise
        if partial and output:
            sink.close()
            os.replace(partial, output)
    where = f" to {output}" if output else ""
    _ui.err(f"exported {_ui.plural(written, 'entry', 'entries')} from {target.shown}{where}")


def _number(data: dict[str, Any], name: str, *, optional: bool) -> None:
    value = data.get(name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {value!r}")


def validate(data: Any) -> Entry:
    """An export line as an :class:`Entry`, checked field by field, the value decoded.

    Raises:
        ValueError: what is wrong, in a few words.
    """
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    key = data.get("key")
    if not isinstance(key, str) or not _HEX64.fullmatch(key):
        raise ValueError("'key' must be 64 lowercase hex characters")
    if not isinstance(data.get("value"), str):
        raise ValueError("'value' must be text")
    value_type = data.get("value_type", "str")
    if not isinstance(value_type, str):
        raise ValueError("'value_type' must be text")
    try:
        decode_value(value_type, data["value"])
    except Exception as exc:  # noqa: BLE001 - any failure to decode rejects the line
        raise ValueError(f"the value does not decode as {value_type!r} ({exc})") from None
    namespace = data.get("namespace", "default")
    if not isinstance(namespace, str) or not namespace:
        raise ValueError("'namespace' must be non-empty text")
    for name in ("key_parts", "metadata"):
        if data.get(name) is not None and not isinstance(data[name], dict):
            raise ValueError(f"'{name}' must be a JSON object")
    _number(data, "created_at", optional=True)
    for name in ("expires_at", "last_hit_at", "duration"):
        _number(data, name, optional=True)
    hits = data.get("hits", 0)
    if isinstance(hits, bool) or not isinstance(hits, int) or hits < 0:
        raise ValueError(f"'hits' must be a whole number >= 0, not {hits!r}")
    if data.get("status", "") not in STATUSES:
        raise ValueError(f"'status' must be one of {', '.join(map(repr, STATUSES))}")
    if not isinstance(data.get("note", ""), str):
        raise ValueError("'note' must be text")
    entry = Entry.from_dict(data)
    if "created_at" not in data or data["created_at"] is None:
        entry.created_at = time.time()
    return entry


def _from_csv(row: dict[str, str | None]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, text in row.items():
        if name not in Entry.__dataclass_fields__:
            continue
        text = text or ""
        if name in _JSON_FIELDS:
            try:
                data[name] = orjson.loads(text) if text else None
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"'{name}' is not JSON ({exc})") from None
        elif name in _TIME_FIELDS:
            data[name] = parse_time(text)
        elif name == "duration":
            data[name] = float(text) if text else None
        elif name == "hits":
            data[name] = int(text or 0)
        else:
            data[name] = text
    return data


class _NotText(Exception):
    pass


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 text file; raises _NotText on binary or other encodings."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if b"\x00" in raw:
                raise _NotText(f"line {n} holds a NUL byte")
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _NotText(
                    f"line {n} is not UTF-8 ({exc.reason} at byte {exc.start})"
                ) from None


def _parsed(path: Path, fmt: Format) -> Iterator[tuple[int, Entry | str]]:
    """(line number, entry or the reason it is rejected) for every record of the file."""
    if fmt is Format.csv:
        lines = _lines(path)
        reader = csv.DictReader(text for _, text in lines)
        for row in reader:
            n = reader.line_num
            try:
                yield n, validate(_from_csv(row))
            except (ValueError, TypeError) as exc:
                yield n, str(exc)
        return
    for n, text in _lines(path):
        if not text.strip():
            continue
        try:
            yield n, validate(orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            yield n, f"not JSON ({exc})"
        except (ValueError, TypeError) as exc:
            yield n, str(exc)


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="A file written by `sheetcache export`.",
        ),
    ],
    url: _ui.UrlOption = None,
    format: Annotated[
        Format | None, typer.Option("--format", "-f", help="Default: from the file extension.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace entries the cache already holds.")
    ] = False,
) -> None:
    """Load entries from a JSONL or CSV export.

    Every line is checked first (fields, value type, the value decodes); a bad line is
    reported with its number and never loaded. Entries the cache already holds are kept
    unless --overwrite. Exits 1 if any line was rejected.
    """
    fmt = format or (Format.csv if file.suffix.lower() == ".csv" else Format.jsonl)
    target = _ui.resolve_url(url)
    bad: list[str] = []
    good = 0
    try:  # first pass: check everything before writing anything
        with _ui.progress("checking", unit="lines") as task:
            for n, parsed in _parsed(file, fmt):
                if isinstance(parsed, str):
                    bad.append(f"line {n}: {parsed}")
                else:
                    good += 1
                task.update(n)
    except _NotText as exc:
        raise _ui.fail(
            f"{file} is not a UTF-8 text file ({exc}): give a file written by `sheetcache export`"
        ) from None
    except csv.Error as exc:
        raise _ui.fail(f"{file} is not a CSV file ({exc})") from None
    for problem in bad[:20]:
        _ui.err(f"rejected {problem}")
    if len(bad) > 20:
        _ui.err(f"... and {_ui.plural(len(bad) - 20, 'more line')}")
    loaded = kept = 0
    with _ui.open_cache(target) as cache:
        entries = (p for _, p in _parsed(file, fmt) if not isinstance(p, str))
        with _ui.progress("importing", good) as task:
            for batch in chunks(entries, 500):
                if not overwrite:
                    present = cache.backend.get_many([e.key for e in batch])
                    kept += sum(e.key in present for e in batch)
                    batch = [e for e in batch if e.key not in present]
                if batch:
                    cache.backend.put_many(batch)
                loaded += len(batch)
                task.advance(len(batch))
    summary = f"imported {_ui.plural(loaded, 'entry', 'entries')} into {target.shown}"
    if kept:
        summary += f"; kept {_ui.plural(kept, 'existing entry', 'existing entries')} (--overwrite replaces them)"
    summary += f"; {_ui.plural(len(bad), 'line')} rejected"
    _ui.out(summary)
    if bad:
        raise typer.Exit(1)


# -- maintenance ---------------------------------------------------------------------------


@app.command()
def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Also delete entries created before this age: 30d, 12h, 90m.",
        ),
    ] = None,
    url: _ui.UrlOption = None,
) -> None:
    """Delete expired entries (and old ones with --older-than)."""
    age_s = parse_age(older_than) if older_than else None
    target = _ui.resolve_url(url)
    with (
        _ui.open_cache(target) as cache,
        _ui.waiting(f"pruning {_ui.short_url(target.url, 48)}"),
    ):
        deleted = cache.prune(older_than=age_s)
    _ui.out(f"deleted {_ui.plural(deleted, 'entry', 'entries')} from {target.shown}")


@app.command()
def clear(
    url: _ui.UrlOption = None,
    namespace: _ui.NamespaceOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every entry (of --namespace if given). Asks first unless --yes."""
    target = _ui.resolve_url(url)
    with _ui.open_cache(target) as cache:
        count = cache.backend.count(namespace)
        what = f"in namespace {namespace!r} " if namespace else ""
        if count == 0:
            _ui.out(f"nothing to delete: no entries {what}in {target.shown}")
            return
        question = f"Delete {_ui.plural(count, 'entry', 'entries')} {what}from {target.shown}?"
        if not yes and not typer.confirm(question):
            _ui.out("nothing deleted")
            raise typer.Exit(1)
        with _ui.waiting(f"deleting from {_ui.short_url(target.url, 44)}"):
            deleted = cache.clear(namespace)
    _ui.out(f"deleted {_ui.plural(deleted, 'entry', 'entries')} from {target.shown}")

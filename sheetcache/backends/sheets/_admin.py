"""Setting a worksheet up (``sheetcache init``) and checking one (``sheetcache doctor``).

Both work on the spreadsheet directly, without opening a :class:`SheetsBackend`, so they
can explain a sheet the backend would refuse.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sheetcache._errors import BackendError, ConfigError, SchemaError
from sheetcache._urls import redact_url
from sheetcache.backends.sheets._client import (
    Identity,
    RetryPolicy,
    SheetsApi,
    make_client,
    shared_limiter,
)
from sheetcache.backends.sheets._layout import (
    ALL_HEADERS,
    HEADERS,
    PARTS_HEADERS,
    Layout,
    PartsIndex,
    RowError,
    decode_row,
    format_requests,
    header_requests,
    normalize_header,
    quote_title,
)
from sheetcache.backends.sheets._options import DEFAULT_MAX_CELLS, parse_sheets_url

__all__ = ["Check", "doctor", "init_worksheet"]


def _connect(url: str, **overrides: Any) -> tuple[dict[str, Any], SheetsApi, Identity]:
    opts = parse_sheets_url(url)
    client, identity = make_client(
        credentials=opts.get("credentials"), endpoint=opts.get("endpoint"), user=opts.get("user"),
        timeout=opts.get("timeout", 30.0),
    )  # fmt: skip
    policy = RetryPolicy(
        timeout=opts.get("timeout", 30.0), deadline=overrides.get("deadline", opts.get("deadline", 60.0)),
        backoff=opts.get("backoff", 1.0), max_wait=opts.get("max_wait", 32.0),
    )  # fmt: skip
    limiter = shared_limiter(opts.get("endpoint") or "google", identity.principal,
                             opts.get("read_quota", 60), opts.get("write_quota", 60))  # fmt: skip
    return opts, SheetsApi(client, opts["spreadsheet_id"], identity, policy, limiter), identity


def _close(api: SheetsApi) -> None:
    session = getattr(api.http, "session", None)
    if session is not None:
        session.close()


def _sheets(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["properties"]["title"]: s["properties"] for s in meta.get("sheets", [])}


def init_worksheet(url: str, share: list[str] | None = None) -> list[str]:
    """Create or prepare the worksheet ``url`` names; return what was done, line by line.

    Creates the tab if missing, adds the sheetcache headers that are missing (after any
    existing columns, never reordering), freezes the header, sets column widths, wraps the
    prompt and response columns and puts an ``approved``/``rejected`` dropdown on status,
    in one ``batchUpdate``. Then shares the spreadsheet with each address in ``share``.

    Raises:
        ConfigError: the tab holds other data in row 1, or the URL is wrong.
        BackendError: Google refused (the message says what to do).
    """
    opts, api, _identity = _connect(url)
    tab = opts["worksheet"]
    done: list[str] = []
    try:
        sheets = _sheets(api.metadata())
        requests: list[dict[str, Any]] = []
        if tab not in sheets:
            sheet_id = random.randrange(1, 2**31 - 1)
            requests.append({"addSheet": {"properties": {
                "sheetId": sheet_id, "title": tab,
                "gridProperties": {"rowCount": 2, "columnCount": len(HEADERS), "frozenRowCount": 1},
            }}})  # fmt: skip
            header: list[Any] = []
            grid_cols = len(HEADERS)
            done.append(f"created worksheet {tab!r}")
        else:
            props = sheets[tab]
            sheet_id = int(props["sheetId"])
            grid_cols = int(props.get("gridProperties", {}).get("columnCount", 0))
            top = api.batch_get([f"{quote_title(tab)}!1:2"])[0].get("values", [])
            header = list(top[0]) if top else []
            names = {normalize_header(c) for c in header}
            has_data = any(any(c != "" for c in row) for row in top)
            if has_data and not names & {"key", "response", "meta"}:
                raise ConfigError(
                    f"row 1 of worksheet {tab!r} holds other data ({[str(c) for c in header[:6]]}); "
                    "sheetcache will not write into it. Use a new worksheet name."
                )
        added = header_requests(sheet_id, header, grid_cols)
        if added:
            requests += added
            new = [h for h in ALL_HEADERS if h not in {normalize_header(c) for c in header}]
            done.append(f"wrote header(s): {', '.join(new)}")
        full_header = _merged_header(header)
        layout = Layout.from_header(full_header, tab, redact_url(url))
        requests += format_requests(sheet_id, layout)
        api.batch_update(requests, "prepare the worksheet")
        done.append("froze the header row, set column widths, wrapped prompt and response, "
                    "added the status dropdown (approved / rejected)")  # fmt: skip
        for email in share or []:
            try:
                api.http.insert_permission(
                    api.id, email, perm_type="user", role="writer", notify=False
                )
            except Exception as exc:
                raise BackendError(
                    f"sharing with {email} failed: {api.explain(exc, 'share')}"
                ) from exc
            done.append(f"shared the spreadsheet with {email} (editor)")
    except BackendError:
        raise
    except (ConfigError, SchemaError):
        raise
    except Exception as exc:
        raise api.explain(exc, "prepare the worksheet") from exc
    finally:
        _close(api)
    return done


def _merged_header(header: list[Any]) -> list[Any]:
    present = {normalize_header(c) for c in header}
    start = len(header)
    while start and str(header[start - 1]).strip() == "":
        start -= 1
    return list(header[:start]) + [h for h in ALL_HEADERS if h not in present]


@dataclass
class Check:
    """One line of ``sheetcache doctor``: ``ok`` True (fine), False (broken), None (warning)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


@dataclass
class _Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool | None, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, ok, detail, fix))


def doctor(url: str) -> list[Check]:
    """Check credentials, access, worksheet, header, rows, cell and quota headroom."""
    report = _Report()
    shown = redact_url(url)
    try:
        opts, api, identity = _connect(url, deadline=20.0)
    except ConfigError as exc:
        report.add("credentials", False, str(exc), "see docs/sheets.md, 'Setup'")
        return report.checks
    report.add("credentials", True, f"acting as {identity.principal} (from {identity.source})")
    tab = opts["worksheet"]
    try:
        try:
            meta = api.metadata()
        except BackendError as exc:
            report.add("access", False, str(exc))
            return report.checks
        sheets = _sheets(meta)
        report.add("access", True, f"spreadsheet {opts['spreadsheet_id']} is readable")
        cells = sum(
            int(p.get("gridProperties", {}).get("rowCount", 0))
            * int(p.get("gridProperties", {}).get("columnCount", 0))
            for p in sheets.values()
        )
        limit = opts.get("max_cells", DEFAULT_MAX_CELLS)
        share = cells / limit
        report.add(
            "cells", True if share < 0.8 else None,
            f"{cells:,} of {limit:,} cells used ({share:.1%}); headroom {limit - cells:,}",
            "" if share < 0.8 else "near the limit, the backend will prune unreviewed, "
            "least-hit entries; archive old rows or use a new spreadsheet",
        )  # fmt: skip
        if tab not in sheets:
            report.add("worksheet", False, f"no worksheet {tab!r} (tabs: {', '.join(sheets)})",
                       f"run `sheetcache init {shown}`")  # fmt: skip
            return report.checks
        report.add("worksheet", True, f"worksheet {tab!r} exists")
        ranges = [quote_title(tab)]
        if f"{tab}.parts" in sheets:
            ranges.append(quote_title(f"{tab}.parts"))
        value_ranges = api.batch_get(ranges)
        rows = value_ranges[0].get("values", [])
        if not rows:
            report.add(
                "header",
                None,
                "the worksheet is empty",
                f"run `sheetcache init {shown}` (or just use it: the header is written)",
            )
            _quota(report, opts)
            return report.checks
        try:
            layout = Layout.from_header(rows[0], tab, shown)
        except SchemaError as exc:
            report.add("header", False, str(exc), f"run `sheetcache init {shown}`")
            return report.checks
        extra = [
            str(c) for c in rows[0] if normalize_header(c) not in ALL_HEADERS and str(c).strip()
        ]
        report.add(
            "header",
            True,
            "all sheetcache columns found"
            + (f"; your extra columns are left alone: {', '.join(extra)}" if extra else ""),
        )
        parts = PartsIndex()
        if len(value_ranges) > 1:
            prows = value_ranges[1].get("values", [])
            if prows:
                try:
                    playout = Layout.from_header(prows[0], f"{tab}.parts", shown, PARTS_HEADERS)
                    cols = [playout.columns[n] for n in PARTS_HEADERS]
                    parts.add_rows(
                        [[r[c] if c < len(r) else "" for c in cols] for r in prows[1:]], 2
                    )
                except SchemaError as exc:
                    report.add("parts", False, str(exc))
        keys: dict[str, int] = {}
        bad: list[str] = []
        blank = 0
        for offset, row in enumerate(rows[1:]):
            if not any(c != "" for c in row):
                blank += 1
                continue
            try:
                entry, _pid = decode_row(row, layout, parts)
            except RowError as exc:
                bad.append(f"row {offset + 2}: {exc}")
                continue
            keys[entry.key] = keys.get(entry.key, 0) + 1
        dups = sum(n - 1 for n in keys.values())
        report.add("rows", True, f"{len(keys):,} entries in {len(rows) - 1:,} rows")
        if bad:
            listed = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            report.add("bad rows", None, f"{len(bad)} row(s) are skipped: {listed}",
                       "fix or delete them (they are never served)")  # fmt: skip
        if dups:
            report.add(
                "duplicates",
                None,
                f"{dups} duplicate row(s)",
                f"run `sheetcache compact {shown}` (reads resolve them meanwhile)",
            )
        if blank:
            report.add("empty rows", None, f"{blank} empty row(s) inside the table",
                       f"run `sheetcache compact {shown}`: Google appends new rows after the "
                       "first empty row, in the middle of the sheet")  # fmt: skip
        _quota(report, opts)
    finally:
        _close(api)
    return report.checks


def _quota(report: _Report, opts: dict[str, Any]) -> None:
    read, write = opts.get("read_quota", 60), opts.get("write_quota", 60)
    flush = opts.get("flush", 5.0)
    refresh = opts.get("refresh", 30.0)
    # A busy process: one append + one hits update + one hits check per flush, plus refreshes.
    writes = 2 * 60 / flush
    reads = 60 / flush + 60 / refresh
    ok = writes <= write * 0.8 and reads <= read * 0.8
    report.add(
        "quota", True if ok else None,
        f"this process allows itself {read} read + {write} write requests/min (Google's "
        f"default per user: 60 + 60); a busy cache uses up to ~{writes:.0f} writes and "
        f"~{reads:.0f} reads/min at flush={flush:g}s, refresh={refresh:g}s, so "
        f"{max(0, write - writes):.0f} writes/min are left for other processes of this user",
        "" if ok else "raise ?flush= (bigger, fewer batches) or ?refresh=, or lower the number "
        "of processes sharing these credentials",
    )  # fmt: skip

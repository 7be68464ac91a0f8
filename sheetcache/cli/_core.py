"""Core cache commands: demo, stats, ls, show, export, import, prune, clear."""

from __future__ import annotations

import csv
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TextIO

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sheetcache._cache import Cache
from sheetcache._display import model_of, prompt_text
from sheetcache._errors import SheetcacheError
from sheetcache._urls import default_url, redact_url
from sheetcache.backends.base import Entry, chunks
from sheetcache.cli import app

console = Console()
err = Console(stderr=True)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        "-u",
        help="Cache URL. Default: $SHEETCACHE_URL, else SQLite in the user cache dir.",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Only this namespace.", show_default=False)
]

_ENTRY_FIELDS = list(Entry.__dataclass_fields__)
_JSON_FIELDS = {"prompt", "key_parts"}
_FLOAT_FIELDS = {"created_at", "expires_at", "last_hit_at", "duration"}


@contextmanager
def open_cache(url: str | None, **kwargs: Any) -> Iterator[Cache]:
    """Open a cache for a command; configuration errors become a one-line message, exit 2."""
    try:
        cache = Cache(url, **kwargs)
    except (SheetcacheError, ValueError, OSError) as exc:
        err.print(f"[red]error:[/red] cannot open {redact_url(url or default_url())}: {exc}")
        raise typer.Exit(2) from None
    try:
        yield cache
    finally:
        cache.close()


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' (or plain seconds) to seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise typer.BadParameter(f"{text!r}: use a number with a unit, like 30d, 12h, 90m or 45s")
    number, unit = float(match[1]), match[2] or "s"
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


# -- demo ----------------------------------------------------------------------------------

DEMO_QUESTIONS = [
    ("What is the capital of France?", "Paris"),
    ("What is 12 * 12?", "144"),
    ("Translate 'good morning' to Spanish.", "Buenos días"),
    ("Name the largest planet in the solar system.", "Jupiter"),
    ("What is the boiling point of water at sea level in Celsius?", "100 °C"),
    ("Who wrote 'Pride and Prejudice'?", "Jane Austen"),
    ("What is the chemical symbol for gold?", "Au"),
    ("How many continents are there?", "Seven"),
    ("What is the square root of 81?", "9"),
    ("Which language runs in a web browser natively?", "JavaScript"),
    ("What is the freezing point of water in Fahrenheit?", "32 °F"),
    ("What gas do plants absorb from the air?", "Carbon dioxide"),
    ("Spell 'necessary' backwards.", "yrassecen"),
    ("What is the longest river in Africa?", "The Nile"),
    ("How many sides does a hexagon have?", "Six"),
    ("What is HTTP status 404?", "Not Found"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("What is the smallest prime number?", "2"),
    ("Convert 1 kilometre to metres.", "1000 m"),
    ("What is the plural of 'mouse'?", "Mice"),
    ("In which year did the first person walk on the Moon?", "1969"),
    ("What does CPU stand for?", "Central processing unit"),
    ("What is 2 to the power of 10?", "1024"),
    ("Name a noble gas.", "Neon"),
]

DEMO_SYSTEM = "You are a terse quiz assistant. Answer in a few words."


def run_demo(cache: Cache, *, latency: float, out: Console) -> list[dict[str, Any]]:
    """Run the eval-style suite twice through ``get_or_call``; return per-run figures."""
    answers = dict(DEMO_QUESTIONS)
    calls = 0

    def simulated_llm(messages: list[dict[str, str]]) -> str:
        """SIMULATED model: sleeps ``latency`` seconds like a network call, then answers."""
        nonlocal calls
        calls += 1
        time.sleep(latency)
        return answers[messages[-1]["content"]]

    runs = []
    for run in (1, 2):
        calls_before, stats_before = calls, cache.stats
        started = time.perf_counter()
        for question, _expected in DEMO_QUESTIONS:
            messages = [
                {"role": "system", "content": DEMO_SYSTEM},
                {"role": "user", "content": question},
            ]
            cache.get_or_call(messages, simulated_llm, model="simulated-llm", temperature=0)
        wall = time.perf_counter() - started
        stats = cache.stats
        runs.append(
            {
                "run": run,
                "wall_seconds": wall,
                "hits": stats.hits - stats_before.hits,
                "misses": stats.misses - stats_before.misses,
                "calls_saved": len(DEMO_QUESTIONS) - (calls - calls_before),
            }
        )
    table = Table(title=f"{len(DEMO_QUESTIONS)} questions, twice, through cache.get_or_call")
    for column in ("run", "wall time", "hits", "misses", "LLM calls saved"):
        table.add_column(column, justify="right")
    for r in runs:
        table.add_row(
            str(r["run"]),
            f"{r['wall_seconds']:.3f} s",
            str(r["hits"]),
            str(r["misses"]),
            str(r["calls_saved"]),
        )
    out.print(table)
    return runs


@app.command()
def demo(
    url: UrlOption = None,
    latency: Annotated[float, typer.Option(help="Seconds each simulated LLM call takes.")] = 0.2,
    agent: Annotated[
        bool,
        typer.Option(
            "--agent/--no-agent",
            help="Also run a pydantic-evals dataset through a cached pydantic-ai Agent.",
        ),
    ] = True,
    sheets_emulator: Annotated[
        bool,
        typer.Option(
            "--sheets-emulator",
            help="Run against the bundled Google Sheets emulator and show the rows a reviewer sees.",
        ),
    ] = False,
) -> None:
    """Run an eval-style suite twice against a SIMULATED slow LLM: the second run is all hits."""
    if sheets_emulator:
        from sheetcache.cli._demo_sheets import demo_on_emulator

        demo_on_emulator(latency=latency, agent=agent, out=console)
        return
    with open_cache(url, namespace="sheetcache-demo") as cache:
        console.print(
            f"[bold]sheetcache demo[/bold] on {cache.url} (namespace 'sheetcache-demo', "
            f"cleared first). The LLM is [bold]simulated[/bold]: {latency:.2f} s per call."
        )
        cache.clear("sheetcache-demo")
        run_demo(cache, latency=latency, out=console)
        if agent:
            _agent_demo(cache, latency)
        stats = cache.stats
        console.print(
            f"Cache stats: {stats.hits} hits, {stats.misses} misses, hit rate "
            f"{stats.hit_rate:.0%}, {stats.saved_seconds:.2f} s of simulated LLM time saved."
        )


def _agent_demo(cache: Cache, latency: float) -> None:
    try:
        from sheetcache._demo_agent import run_agent_demo
    except ImportError as exc:
        console.print(f"(pydantic-ai part skipped: {exc}; pip install 'sheetcache[pydantic-ai]')")
        return
    run_agent_demo(cache, console=console, latency=latency / 4)


# -- inspection ----------------------------------------------------------------------------


@app.command()
def stats(url: UrlOption = None, namespace: NamespaceOption = None) -> None:
    """Entries, hits and time saved, as stored in the cache."""
    with open_cache(url) as cache:
        count = hits = reviewed = expired = 0
        saved = 0.0
        namespaces: dict[str, int] = {}
        now = time.time()
        for e in cache.entries(namespace):
            count += 1
            hits += e.hits
            saved += e.hits * (e.duration or 0.0)
            reviewed += e.status != ""
            expired += e.is_expired(now)
            namespaces[e.namespace] = namespaces.get(e.namespace, 0) + 1
        table = Table(title=f"sheetcache: {cache.url}", show_header=False)
        table.add_row("entries", str(count))
        table.add_row(
            "namespaces", ", ".join(f"{n} ({c})" for n, c in sorted(namespaces.items())) or "-"
        )
        table.add_row("hits recorded", str(hits))
        table.add_row("LLM time saved", f"{saved:.1f} s")
        table.add_row("reviewed (approved or rejected)", str(reviewed))
        table.add_row("expired (prune removes them)", str(expired))
        table.add_row("answers waiting in the outbox", str(cache.stats.pending_writes))
        console.print(table)


@app.command("ls")
def list_entries(
    url: UrlOption = None,
    namespace: NamespaceOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest first).")] = 50,
) -> None:
    """List cached entries, newest first."""
    with open_cache(url) as cache:
        newest: list[Entry] = sorted(
            cache.entries(namespace), key=lambda e: e.created_at, reverse=True
        )
        table = Table(
            title=f"{len(newest)} entries in {cache.url}"
            + (f" (showing {limit})" if len(newest) > limit else "")
        )
        for column in ("key", "created (UTC)", "model", "prompt", "response", "hits", "status"):
            table.add_column(column, overflow="fold" if column == "key" else "ellipsis")
        for e in newest[:limit]:
            table.add_row(e.key[:12], _when(e.created_at), model_of(e.key_parts), _short(prompt_text(e.prompt), 40),
                          _short(e.value, 40), str(e.hits), e.status or "-")  # fmt: skip
        console.print(table)


def _find(cache: Cache, key: str) -> Entry:
    key = key.strip().lower()
    if len(key) == 64:
        found = cache.backend.get_many([key]).get(key)
        if found is not None:
            return found
    elif len(key) >= 6:
        matches = [e for e in cache.entries() if e.key.startswith(key)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            err.print(
                f"[red]error:[/red] {len(matches)} keys start with {key!r}; give more characters"
            )
            raise typer.Exit(1)
    else:
        err.print(
            "[red]error:[/red] give the key, or at least its first 6 characters (see `sheetcache ls`)"
        )
        raise typer.Exit(2)
    err.print(f"[red]error:[/red] no entry with key {key!r} in {cache.url}")
    raise typer.Exit(1)


@app.command()
def show(
    key: Annotated[str, typer.Argument(help="A key or its first 6+ characters.")],
    url: UrlOption = None,
) -> None:
    """Show one entry in full."""
    with open_cache(url) as cache:
        e = _find(cache, key)
        table = Table(show_header=False, title=e.key)
        table.add_row("namespace", e.namespace)
        table.add_row("created (UTC)", _when(e.created_at))
        table.add_row("expires (UTC)", _when(e.expires_at) or "never")
        table.add_row("model", model_of(e.key_parts))
        table.add_row("key parts", orjson.dumps(e.key_parts, option=orjson.OPT_INDENT_2).decode())
        table.add_row(
            "prompt",
            e.prompt
            if isinstance(e.prompt, str)
            else orjson.dumps(e.prompt, option=orjson.OPT_INDENT_2).decode(),
        )
        table.add_row("response", e.value)
        table.add_row("value type", e.value_type)
        table.add_row("hits", f"{e.hits} (last {_when(e.last_hit_at) or 'never'})")
        table.add_row("call took", "" if e.duration is None else f"{e.duration:.3f} s")
        table.add_row("status", e.status or "unreviewed")
        table.add_row("note", e.note)
        console.print(table)


# -- export / import -----------------------------------------------------------------------


class Format(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True)  # fmt: skip


def _csv_row(e: Entry) -> list[Any]:
    data = e.to_dict()
    return [
        orjson.dumps(data[f]).decode()
        if f in _JSON_FIELDS
        else ("" if data[f] is None else data[f])
        for f in _ENTRY_FIELDS
    ]


def _entry_from_csv(row: dict[str, str]) -> Entry:
    data: dict[str, Any] = {}
    for name, text in row.items():
        if name not in Entry.__dataclass_fields__:
            continue
        if name in _JSON_FIELDS:
            data[name] = orjson.loads(text) if text else None
        elif name in _FLOAT_FIELDS:
            data[name] = float(text) if text else None
        elif name == "hits":
            data[name] = int(text or 0)
        else:
            data[name] = text
    if data.get("created_at") is None:
        data["created_at"] = time.time()
    return Entry.from_dict(data)


@app.command()
def export(
    url: UrlOption = None,
    format: Annotated[
        Format,
        typer.Option(
            "--format", "-f", help="jsonl keeps every field exactly; csv opens in a spreadsheet."
        ),
    ] = Format.jsonl,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    namespace: NamespaceOption = None,
) -> None:
    """Write every entry to JSONL or CSV, streaming (the cache is never loaded whole)."""
    with open_cache(url) as cache:
        total = cache.backend.count(namespace)
        sink: TextIO = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        written = 0
        try:
            writer = csv.writer(sink) if format is Format.csv else None
            if writer:
                writer.writerow(_ENTRY_FIELDS)
            with _progress() as progress:
                task = progress.add_task("exporting", total=total)
                for e in cache.entries(namespace):
                    if writer:
                        writer.writerow(_csv_row(e))
                    else:
                        sink.write(orjson.dumps(e.to_dict()).decode() + "\n")
                    written += 1
                    progress.advance(task)
        finally:
            if output:
                sink.close()
        err.print(f"exported {written} entries" + (f" to {output}" if output else ""))


def _read_entries(path: Path, fmt: Format, bad: list[str]) -> Iterator[Entry]:
    with path.open(encoding="utf-8", newline="") as f:
        if fmt is Format.csv:
            for n, row in enumerate(csv.DictReader(f), start=2):
                try:
                    yield _entry_from_csv(row)
                except (ValueError, TypeError) as exc:
                    bad.append(f"line {n}: {exc}")
            return
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                yield Entry.from_dict(data)
            except (ValueError, TypeError) as exc:
                bad.append(f"line {n}: {exc}")


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="A file written by `sheetcache export`."),
    ],
    url: UrlOption = None,
    format: Annotated[
        Format | None, typer.Option("--format", "-f", help="Default: from the file extension.")
    ] = None,
) -> None:
    """Load entries from a JSONL or CSV export (upserts by key). Bad lines are reported, not loaded."""
    fmt = format or (Format.csv if file.suffix.lower() == ".csv" else Format.jsonl)
    bad: list[str] = []
    loaded = 0
    with open_cache(url) as cache, _progress() as progress:
        task = progress.add_task("importing", total=None)
        for batch in chunks(_read_entries(file, fmt, bad), 500):
            cache.backend.put_many(batch)
            loaded += len(batch)
            progress.advance(task, len(batch))
    for problem in bad[:20]:
        err.print(f"[yellow]skipped[/yellow] {problem}")
    console.print(f"imported {loaded} entries into {cache.url}; {len(bad)} lines skipped")
    if bad:
        raise typer.Exit(1)


# -- maintenance ---------------------------------------------------------------------------


@app.command()
def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", help="Also delete entries created before this age: 30d, 12h, 90m."
        ),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Delete expired entries, and with --older-than those older than that."""
    age = parse_age(older_than) if older_than else None
    with open_cache(url) as cache:
        deleted = cache.prune(older_than=age)
        console.print(f"deleted {deleted} entries from {cache.url}")


@app.command()
def clear(
    url: UrlOption = None,
    namespace: NamespaceOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every entry (of --namespace if given). Asks first unless --yes."""
    with open_cache(url) as cache:
        what = f"namespace {namespace!r}" if namespace else "ALL entries"
        count = cache.backend.count(namespace)
        if not yes and not typer.confirm(f"Delete {what} ({count}) from {cache.url}?"):
            console.print("nothing deleted")
            raise typer.Exit(1)
        deleted = cache.clear(namespace)
        console.print(f"deleted {deleted} entries from {cache.url}")

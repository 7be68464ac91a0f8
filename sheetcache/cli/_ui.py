"""What every command shares: where the URL came from, consoles, messages, progress.

Conventions kept here so each command gets them for free: errors are one line on stderr
(exit 1), URLs say where they came from (``--url``, ``$SHEETCACHE_URL`` or the default),
commands a user should run are printed on their own line, unwrapped and shell-quoted, and
progress fits 80 columns on a terminal and is a plain line every few seconds through a pipe.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sheetcache._urls import default_url, redact_url

if TYPE_CHECKING:
    from sheetcache._cache import Cache

__all__ = [
    "NamespaceOption",
    "Target",
    "UrlOption",
    "command_line",
    "err",
    "fail",
    "open_cache",
    "out",
    "plural",
    "progress",
    "resolve_url",
    "short_url",
    "waiting",
]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        "-u",
        metavar="URL",
        help="Cache URL. Default: $SHEETCACHE_URL, else SQLite in the user cache dir.",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", metavar="NAME", help="Only this namespace.", show_default=False
    ),
]

#: Seconds between progress lines when stderr is not a terminal (a pipe, a CI log).
PLAIN_PROGRESS_EVERY = 5.0


class _Consoles:
    """One pair per invocation, made when first used, so COLUMNS and the runner's streams
    of that invocation apply (module-level consoles would freeze the first ones).
    """

    def __init__(self) -> None:
        self._out: Console | None = None
        self._err: Console | None = None
        self.debug = False

    def reset(self) -> None:
        self._out = self._err = None
        self.debug = bool(os.environ.get("SHEETCACHE_DEBUG"))

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = Console(highlight=False)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = Console(stderr=True, highlight=False)
        return self._err


state = _Consoles()

#: The store the running command works on, so a failure message can name it.
current_target: Target | None = None


def out(text: str = "", *, markup: bool = False) -> None:
    """Print a result line on stdout; never wrapped, so a pipe gets whole lines."""
    state.out.print(text, markup=markup, soft_wrap=True)


def err(text: str, *, markup: bool = False) -> None:
    """Print a message on stderr, unwrapped (paths and URLs stay whole)."""
    state.err.print(text, markup=markup, soft_wrap=True)


def fail(message: str, *, fix: Sequence[str] | None = None, code: int = 1) -> typer.Exit:
    """Print ``error: message`` (and the command that fixes it), return the Exit to raise."""
    err(f"error: {message}")
    if fix:
        err("  " + command_line(fix))
    return typer.Exit(code)


def command_line(args: Sequence[str]) -> str:
    """A command as a user would paste it: shell-quoted, one line."""
    return shlex.join(args)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "entry", "entries")`` -> "1 entry"; default plural adds "s"."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


@dataclass(frozen=True)
class Target:
    """A store URL and where it came from, for messages."""

    url: str
    source: str
    """"--url", "$SHEETCACHE_URL" or "the default"."""

    @property
    def shown(self) -> str:
        """The URL without credentials, and its origin: what error messages print."""
        return f"{redact_url(self.url)} (from {self.source})"


def resolve_url(url: str | None, *, option: str = "--url") -> Target:
    """The URL a command works on: ``--url``, else ``$SHEETCACHE_URL``, else the default."""
    if url:
        return Target(url, option)
    if os.environ.get("SHEETCACHE_URL"):
        return Target(os.environ["SHEETCACHE_URL"], "$SHEETCACHE_URL")
    return Target(default_url(), "the default")


def short_url(url: str, width: int = 32) -> str:
    """A URL for a progress label: credentials and query gone, the middle elided."""
    text = redact_url(url).split("?", 1)[0]
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep // 2] + "…" + text[-(keep - keep // 2) :]


class _Task:
    """What a command reports progress to; the same calls on a terminal and a pipe."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total, self.done = label, total, 0

    def advance(self, n: int = 1) -> None:
        self.done += n

    def update(self, done: int) -> None:
        self.done = done


class _RichTask(_Task):
    def __init__(self, bar: Progress, label: str, total: int | None) -> None:
        super().__init__(label, total)
        self._bar = bar
        self._id = bar.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        super().advance(n)
        self._bar.update(self._id, completed=self.done)

    def update(self, done: int) -> None:
        super().update(done)
        self._bar.update(self._id, completed=done)


class _PlainTask(_Task):
    """A line like ``exporting: 12,000 of 50,000 entries, 5 s`` every few seconds.

    A timer thread prints it, so a read that blocks (a slow store's first page) still
    shows that the command is alive.
    """

    def __init__(self, label: str, total: int | None, unit: str) -> None:
        super().__init__(label, total)
        self._unit = unit
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sheetcache-progress", daemon=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        if not self._unit:  # a wait with nothing to count (opening a store)
            return f"{self.label}... {elapsed:.0f} s"
        of = "" if self.total is None else f" of {self.total:,}"
        return f"{self.label}: {self.done:,}{of} {self._unit}, {elapsed:.0f} s"

    def _run(self) -> None:
        while not self._stop.wait(PLAIN_PROGRESS_EVERY):
            err(self.line())

    def __enter__(self) -> _PlainTask:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def progress(label: str, total: int | None = None, *, unit: str = "entries") -> Iterator[_Task]:
    """Show progress of a long read or write on stderr; nothing is left on screen after.

    On a terminal: a rich bar whose label is at most 32 characters, so it fits 80 columns.
    Elsewhere: a plain line every :data:`PLAIN_PROGRESS_EVERY` seconds.
    """
    label = label if len(label) <= 32 else label[:31] + "…"
    if state.err.is_terminal:
        columns: list[Any] = [
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=state.err, transient=True) as bar:
            yield _RichTask(bar, label, total)
        return
    with _PlainTask(label, total, unit) as task:
        yield task


@contextmanager
def waiting(label: str) -> Iterator[None]:
    """Show that a wait without a count (opening a remote store) is alive."""
    label = label if len(label) <= 60 else label[:59] + "…"
    if state.err.is_terminal:
        with state.err.status(label):
            yield
        return
    with _PlainTask(label, None, ""):
        yield


@contextmanager
def open_cache(target: Target, **kwargs: Any) -> Iterator[Cache]:
    """Open a :class:`~sheetcache.Cache` on ``target`` for a command, closed after.

    A URL that can't be opened, or a default cache file that can't be used, is one
    ``error:`` line naming the URL and where it came from, exit 1.
    """
    global current_target
    from sheetcache._cache import Cache
    from sheetcache._errors import SheetcacheError

    current_target = target
    try:
        with waiting(f"opening {short_url(target.url, 48)}"):
            cache = Cache(target.url, **kwargs)
    except SheetcacheError as exc:
        if state.debug:
            raise
        raise fail(f"cannot open {target.shown}: {exc}") from None
    try:
        from sheetcache.backends.sqlite import SQLiteBackend

        backend = cache.backend
        if isinstance(backend, SQLiteBackend) and backend.unusable is not None:
            path = str(backend.path)
            raise fail(
                f"{target.shown} cannot be used: {backend.reason}. Move it aside and a new cache "
                "is created on the next start:",
                fix=["mv", path, path + ".broken"],
            )
        yield cache
    finally:
        # A read command has nothing queued; don't wait long on a store that went away.
        cache.close(timeout=5.0)

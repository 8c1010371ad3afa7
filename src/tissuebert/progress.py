"""Logging and progress for long work: status lines on stderr with a tag, rich progress bars
that only appear when stderr is a terminal (so SLURM logs and tests get plain lines)."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
LOGGER_NAME = "tissuebert"
_stderr = Console(stderr=True)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if not name.startswith(LOGGER_NAME) else name)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Log to stderr: rich on a terminal, plain tagged lines otherwise."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    root = logging.getLogger(LOGGER_NAME)
    root.handlers.clear()
    if sys.stderr.isatty():
        handler: logging.Handler = RichHandler(console=_stderr, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[tissuebert %(asctime)s] %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def make_progress() -> Progress:
    """A rich Progress on stderr; transient, and disabled when stderr is not a terminal."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=_stderr, transient=True,
                    disable=not progress_enabled())


HEARTBEAT_S = 30.0  # without a terminal, a progress line at least this often


def duration_text(seconds: float) -> str:
    """A duration as people read it: seconds, minutes, hours or days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class _Lines:
    """Progress as log lines (no terminal: SLURM logs, nohup): done / total, rate and ETA at
    least every HEARTBEAT_S seconds."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.start = self.last = time.time()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.time()
        if now - self.last < HEARTBEAT_S:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            get_logger("progress").info("%s: %d / %d %s (%.0f%%), %.1f %s/s, ETA %s", self.description, self.done,
                                        self.total, self.unit, 100.0 * self.done / self.total, rate, self.unit,
                                        duration_text(eta))
        else:
            get_logger("progress").info("%s: %d %s, %.1f %s/s", self.description, self.done, self.unit, rate, self.unit)


@contextlib.contextmanager
def counter(description: str, total: int | None = None, unit: str = "items") -> Iterator[Callable[[int], None]]:
    """``advance(n)`` for long work: a rich bar on a terminal, a log line every HEARTBEAT_S
    seconds otherwise."""
    if not progress_enabled():
        yield _Lines(description, total, unit).advance
        return
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a terminal, timed progress lines otherwise."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with counter(description, total) as advance:
        for item in items:
            yield item
            advance(1)

"""Logging and progress for long work: status lines on stderr with a tag, rich progress bars
that only appear when stderr is a terminal (so SLURM logs and tests get plain lines)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
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


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a terminal; plain iteration otherwise."""
    if not progress_enabled():
        yield from items
        return
    with make_progress() as progress:
        task = progress.add_task(description, total=total if total is not None else (len(items) if hasattr(items, "__len__") else None))
        for item in items:
            yield item
            progress.advance(task)

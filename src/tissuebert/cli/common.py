"""Argument helpers shared by the subcommands (config, --force, verbosity)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.config import PRESETS
from tissuebert.errors import TissueBertError

PresetOpt = Annotated[str, typer.Option("--preset", help=f"Config preset: {', '.join(PRESETS)}.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML config file (sections data, model, train, eval).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override one key, e.g. --set train.epochs=3 (repeatable).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory.")]


def require_at_least(value: int | float | None, minimum: int | float, flag: str) -> None:
    """Refuse a numeric option below ``minimum`` (None = not given), naming the flag."""
    if value is not None and value < minimum:
        raise TissueBertError(f"{flag} must be >= {minimum}, got {value}")

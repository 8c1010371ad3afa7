"""Subcommands (filled in by the stage that owns them)."""

import typer


def register(app: typer.Typer) -> None:
    pass

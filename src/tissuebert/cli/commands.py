"""Registers every subcommand module with the app (one module per stage)."""

from __future__ import annotations

import importlib

import typer

MODULES = ("cmd_simulate", "cmd_sheet", "cmd_markers", "cmd_prepare", "cmd_train", "cmd_evaluate", "cmd_demo")


def register(app: typer.Typer) -> None:
    for name in MODULES:
        importlib.import_module(f"tissuebert.cli.{name}").register(app)

"""Registers every subcommand module with the app, in the order `tissuebert --help` lists them.

Imported statically, so a missing or broken command module fails at import, not at dispatch."""

from __future__ import annotations

import typer

from tissuebert.cli import (
    cmd_benchmark,
    cmd_calibrate,
    cmd_deconvolve,
    cmd_demo,
    cmd_evaluate,
    cmd_markers,
    cmd_predict,
    cmd_prepare,
    cmd_sheet,
    cmd_simulate,
    cmd_train,
)

MODULES = (cmd_simulate, cmd_sheet, cmd_markers, cmd_prepare, cmd_train, cmd_evaluate, cmd_calibrate, cmd_predict,
           cmd_deconvolve, cmd_benchmark, cmd_demo)


def register(app: typer.Typer) -> None:
    for module in MODULES:
        module.register(app)

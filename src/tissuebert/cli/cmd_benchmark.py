"""`tissuebert benchmark`: every deconvolution method on in-silico mixtures of held-out reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import (
    CheckpointOpt,
    DeviceOpt,
    ForceOpt,
    OutDirOpt,
    PrecisionOpt,
    StoreOpt,
    ThreadsOpt,
    require_at_least,
    set_threads,
    split_methods,
)
from tissuebert.deconvolve.methods import method_names
from tissuebert.errors import TissueBertError


def benchmark(
    checkpoint: CheckpointOpt,
    store: StoreOpt,
    out: OutDirOpt,
    truth: Annotated[Optional[Path], typer.Option("--truth", help="Simulated cohort folder (with truth/) for the oracle; default: found from the store's provenance.")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help=f"Methods to compare (default: all: {', '.join(method_names())}; oracle added on simulated data).")] = None,
    background: Annotated[Optional[list[str]], typer.Option("--background", help="Background tissue(s) of the spike-in series (default: every Blood* tissue).")] = None,
    replicates: Annotated[int, typer.Option("--replicates", help="Replicates per spike-in level.")] = 10,
    n_dirichlet: Annotated[int, typer.Option("--mixtures", help="Random sparse Dirichlet mixtures per depth.")] = 100,
    depth: Annotated[Optional[list[float]], typer.Option("--depth", help="Depths of the sweep, reads per window (repeatable; default 10, 30, 100).")] = None,
    spike_depth: Annotated[float, typer.Option("--spike-depth", help="Depth of the spike-in series.")] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the mixture design and read draws.")] = 0,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """In-silico mixtures of held-out test reads (spike-in series into blood, random sparse mixtures,
    depth sweep); MAE, RMSE, Pearson r, bias, false-positive mass and limit of detection of every
    method; benchmark.json, estimates.tsv, plots and report.html.

    Example: tissuebert benchmark --checkpoint run/checkpoints/best_acc.pt --store store --out bench
    """
    from tissuebert.benchmark import run_benchmark
    from tissuebert.benchmark.design import DEPTHS

    set_threads(threads)
    require_at_least(replicates, 1, "--replicates")
    require_at_least(n_dirichlet, 0, "--mixtures")
    for value in (*(depth or ()), spike_depth):
        if not value > 0:
            raise TissueBertError(f"--depth / --spike-depth must be > 0 reads per window, got {value}")
    result = run_benchmark(checkpoint, store, out, methods=split_methods(method, []) or None, truth_dir=truth,
                           background=background, replicates=replicates, n_dirichlet=n_dirichlet,
                           depths=tuple(depth) if depth else DEPTHS, spike_depth=spike_depth, seed=seed,
                           device=device, precision=precision, force=force)
    key = f"{spike_depth:g}x"
    for name, res in result["methods"].items():
        stats = res["per_depth"].get(key) or next(iter(res["per_depth"].values()))
        typer.echo(f"{name:>15}: MAE {stats['mae']:.4f}  RMSE {stats['rmse']:.4f}  r {stats['pearson_r']:.3f}")
    for note in result.get("notes", []):
        typer.echo(note)
    typer.echo(f"{result['n_mixtures']} mixtures -> {out}/report.html")


def register(app: typer.Typer) -> None:
    app.command()(benchmark)

"""`tissuebert calibrate`: fit a temperature on the validation split and save it with the checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import (
    CheckpointOpt,
    DeviceOpt,
    ForceOpt,
    MaxReadsOpt,
    PrecisionOpt,
    StoreOpt,
    ThreadsOpt,
    require_at_least,
    set_threads,
)


def calibrate(
    checkpoint: CheckpointOpt,
    store: StoreOpt,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Calibrated checkpoint to write (default: NAME.calibrated.pt beside the input).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split to fit the temperature on.")] = "val",
    max_reads_per_sample: MaxReadsOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Fit temperature scaling on the validation split and save it with the checkpoint; predict and
    deconvolve then use it.

    Example: tissuebert calibrate --checkpoint run/checkpoints/best_acc.pt --store store
    """
    from tissuebert.evaluate import calibrate_checkpoint

    set_threads(threads)
    require_at_least(max_reads_per_sample, 1, "--max-reads-per-sample")
    r = calibrate_checkpoint(checkpoint, store, split=split, out=out, force=force,
                             max_reads_per_sample=max_reads_per_sample, device=device,
                             precision=precision)
    typer.echo(f"temperature {r['temperature']:.4f} ({r['n_reads']} {split} reads): NLL {r['nll_before']:.4f} -> "
               f"{r['nll_after']:.4f}, ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f}; wrote {r['checkpoint']}")


def register(app: typer.Typer) -> None:
    app.command()(calibrate)

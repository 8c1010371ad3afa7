"""`tissuebert evaluate`: a checkpoint's per-read and per-sample metrics on a store split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import (
    CheckpointOpt,
    DeviceOpt,
    ForceOpt,
    MaxReadsOpt,
    OutDirOpt,
    PrecisionOpt,
    StoreOpt,
    ThreadsOpt,
    require_at_least,
    set_threads,
)


def evaluate(
    checkpoint: CheckpointOpt,
    store: StoreOpt,
    out: OutDirOpt,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    max_reads_per_sample: MaxReadsOpt = None,
    truth: Annotated[Optional[Path], typer.Option("--truth", help="Simulated cohort folder (with truth/) for the oracle rows; default: found from the store's provenance.")] = None,
    no_logreg: Annotated[bool, typer.Option("--no-logreg", help="Skip the simple rival (read-level logistic regression fitted on the store's train split and scored on the same reads; on by default).")] = False,
    _logreg: Annotated[bool, typer.Option("--logreg", hidden=True, help="The default (kept for old scripts).")] = False,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Per-read accuracy, balanced accuracy, macro F1, per-tissue P/R/F1, confusion matrix, calibration
    (ECE + reliability diagram) and per-sample calls of a checkpoint on a store split.

    Example: tissuebert evaluate --checkpoint run/checkpoints/best_acc.pt --store store --split test --out eval
    """
    from tissuebert.evaluate import evaluate_split

    set_threads(threads)
    require_at_least(max_reads_per_sample, 1, "--max-reads-per-sample")
    m = evaluate_split(checkpoint, store, split, out, force=force, max_reads_per_sample=max_reads_per_sample,
                       device=device, precision=precision, truth_dir=truth, logreg=not no_logreg)
    typer.echo(f"{split}: {m['n_reads']} reads of {m['n_samples']} samples; accuracy {m['accuracy']:.4f}, "
               f"balanced accuracy {m['balanced_accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, "
               f"ECE {m['ece']:.4f}, sample calls {m['sample_accuracy']:.3f} correct -> {out}")
    if "logreg" in m:
        typer.echo(f"logreg (simple rival, {m['logreg']['fit']['n_reads']} training reads) on the same reads: "
                   f"accuracy {m['logreg']['accuracy']:.4f}, balanced accuracy {m['logreg']['balanced_accuracy']:.4f}, "
                   f"macro F1 {m['logreg']['macro_f1']:.4f}")
    if "oracle" in m:
        typer.echo(f"oracle (Bayes-optimal) on the same reads: accuracy {m['oracle']['accuracy']:.4f}, "
                   f"balanced accuracy {m['oracle']['balanced_accuracy']:.4f}, macro F1 {m['oracle']['macro_f1']:.4f}")
    for note in m.get("notes", []):
        typer.echo(note)


def register(app: typer.Typer) -> None:
    app.command()(evaluate)

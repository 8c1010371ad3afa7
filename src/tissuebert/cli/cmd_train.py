"""`tissuebert train` and `tissuebert lr-find`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import ConfigOpt, ForceOpt, OutOpt, PresetOpt, SetOpt, require_at_least
from tissuebert.cli.train_checks import check_tissue_splits, removed_if_failed_start, write_run_summary
from tissuebert.config import load_config

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Prepared store directory (see `tissuebert prepare`).")]
TrainThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (the same as --set train.threads=N); default: the config's, else torch's (one per core).")]


def _with_threads(set_: list[str] | None, threads: int | None) -> list[str]:
    """``--threads N`` is ``--set train.threads=N`` (after any --set, so it wins)."""
    require_at_least(threads, 1, "--threads")
    return [*(set_ or []), *([f"train.threads={threads}"] if threads is not None else [])]
EXIT_STOPPED = 3  # stopped by a signal / stop file and not requeued: resume with --resume auto
# exit 2 (a TissueBertError): bad input, refused resume, locked run folder, or too many skipped steps / a
# non-finite validation loss (the run stopped: it never ends 0 with a broken model)


def train(
    store: StoreOpt,
    out: OutOpt,
    preset: PresetOpt = "tiny",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    threads: TrainThreadsOpt = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="'auto' (continue RUN/checkpoints/last.pt or a newer mid-epoch checkpoint; start fresh if none) or a checkpoint path.")] = None,
    force: ForceOpt = False,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", help="Start a new run from this checkpoint's weights (same tissues, panel and model shape); optimiser, schedule and counters start afresh.")] = None,
    allow_missing_tissues: Annotated[bool, typer.Option("--allow-missing-tissues", help="Train even if a tissue has no training or no validation sample (its class is then never learned or never checked).")] = False,
) -> int:
    """Train TissueBERT on a store; checkpoints, logs and plots go under --out.

    Writes OUT/config.yaml, OUT/summary.json (final validation metrics, chance level, warnings), OUT/checkpoints/{last,best_acc,best_loss}.pt, OUT/logs/{epochs,per_tissue,steps}.csv,
    OUT/tensorboard/ and OUT/plots/confusion_epoch_NNN.{png,csv}. Runs under torchrun for DDP.

    Example: tissuebert train --store store --preset tiny --out run
    """
    from tissuebert.train import run_training

    set_ = _with_threads(set_, threads)
    cfg = load_config(preset, config, set_)
    overrides = [item.split("=", 1)[0].strip() for item in set_ or []]
    if not allow_missing_tissues:
        check_tissue_splits(store)
    with removed_if_failed_start(out):
        metrics = run_training(cfg, store, out, resume=resume, force=force, init_from=init_from, overrides=overrides)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    if metrics.get("stopped"):
        note = "requeued" if metrics.get("requeued") else "continue with --resume auto"
        typer.echo(f"stopped ({metrics['stopped']}); {note}", err=True)
        return 0 if metrics.get("requeued") else EXIT_STOPPED
    if metrics:
        from tissuebert.store.store import Store

        for text in write_run_summary(out, metrics, len(Store.open(store).tissues)):
            typer.echo(f"warning: {text}", err=True)
        typer.echo(f"validation accuracy {metrics['accuracy']:.4f}, balanced accuracy {metrics['balanced_accuracy']:.4f}, "
                   f"macro F1 {metrics['macro_f1']:.4f}, loss {metrics['loss']:.4f}")
    return 0


def lr_find(
    store: StoreOpt,
    out: OutOpt,
    preset: PresetOpt = "tiny",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    threads: TrainThreadsOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=3, help="Optimiser steps of the sweep.")] = 1000,
    start_lr: Annotated[float, typer.Option("--start-lr", help="Learning rate of the first step.")] = 1e-7,
    end_lr: Annotated[float, typer.Option("--end-lr", help="Learning rate of the last step.")] = 1.0,
    force: ForceOpt = False,
) -> int:
    """Learning-rate range test: exponential LR sweep, smoothed loss curve, suggested max LR.

    Writes OUT/lr_find.csv (step, lr, loss, smoothed_loss), OUT/lr_find.png and OUT/lr_find.json; the suggestion
    (LR of steepest descent / 3) is a value for train.max_lr.

    Example: tissuebert lr-find --store store --preset tiny --out lrfind --steps 300
    """
    from tissuebert.train.lr_find import lr_range_test

    set_ = _with_threads(set_, threads)
    cfg = load_config(preset, config, set_)
    summary = lr_range_test(cfg, store, out, steps=steps, start_lr=start_lr, end_lr=end_lr, force=force)
    if math.isnan(summary["suggested_lr"]):
        typer.echo(f"no suggestion: the loss did not fall in {summary['steps_run']} steps (see {out}/lr_find.png)")
        return 0
    typer.echo(f"suggested max LR {summary['suggested_lr']:.3g} (steepest descent at {summary['steepest_lr']:.3g}, "
               f"{summary['steps_run']} steps); use --set train.max_lr={summary['suggested_lr']:.2g}")
    return 0


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("lr-find")(lr_find)

"""Learning-rate range test: raise the LR exponentially step by step and watch the loss.

The suggestion is the LR where the smoothed loss falls fastest per decade of LR, divided by 3
(the steepest point is already close to where training turns unstable). Same sampler, model,
loss, AdamW groups and precision as `train`; nothing is saved but the curve.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import torch

from tissuebert.atomic import atomic_path, atomic_write_text, check_output
from tissuebert.config import Config, dump_config
from tissuebert.constants import LR_FIND, RUN
from tissuebert.data.sampler import TrainSampler
from tissuebert.inference.device import autocast_context, resolve_device
from tissuebert.model.tissuebert import build_model
from tissuebert.progress import get_logger, track
from tissuebert.store.store import Store
from tissuebert.train.optim import build_loss, build_optimizer
from tissuebert.train.setup import freeze_states, prime_counts, prime_states, resolve_fragment_states
from tissuebert.train.state import step_seed

log = get_logger("train.lr_find")

SMOOTHING = 0.98  # EMA of the loss; bias-corrected so the first steps are not pulled to 0
DIVERGE = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
SUGGEST_DIVISOR = 3.0
# the smoothed loss must fall by this fraction of its level after the settling 10% before a slope
# counts as descent: a flat curve's noise (a model learning nothing) has a steepest point too
MIN_RELATIVE_DROP = 0.05
NO_DESCENT = ("the loss did not fall in the sweep (by at least {drop:.0%} of its starting level): no suggestion "
              "(try more --steps, a wider LR range, or check that the store's labels carry signal)")


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, int]:
    """(LR of steepest descent / 3, index of the steepest point) of a smoothed loss curve.

    Returns (nan, -1) when the loss falls nowhere in the sweep, or by less than MIN_RELATIVE_DROP
    of its level at the start: there is no descent to point at.
    """
    if lrs.size < 3:
        raise ValueError("the sweep needs at least 3 points to find a slope")
    # skip the first 10%: the EMA is still settling there
    start = max(1, lrs.size // 10)
    slope = np.gradient(smoothed, np.log10(lrs))  # d loss / d log10(lr)
    steepest = start + int(np.argmin(slope[start:]))
    level = smoothed[start]
    if slope[steepest] >= 0 or level - smoothed[start:].min() < MIN_RELATIVE_DROP * abs(level):
        return float("nan"), -1
    return float(lrs[steepest] / SUGGEST_DIVISOR), steepest


def lr_range_test(config: Config, store: str | Path, out: str | Path, *, steps: int = 1000, start_lr: float = 1e-7,
                  end_lr: float = 1.0, force: bool = False) -> dict:
    """Run the sweep; writes OUT/lr_find.{csv,png,json} and OUT/config.yaml; returns the summary."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    out = Path(out)
    check_output(out, force=force)
    cfg = config.train
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = resolve_device("auto")
    store_ = Store.open(store)
    sampler = TrainSampler(store_, min_cpgs=config.data.min_cpgs, in_memory=config.data.in_memory, seed=cfg.seed,
                           cpg_dropout=config.data.cpg_dropout)
    config, choice = resolve_fragment_states(config, sampler)  # the K a training run would choose
    torch.manual_seed(cfg.seed)
    model = build_model(config.model, len(store_.tissues), store_.panel).to(device)
    prime_counts(model, sampler, cfg.count_source)
    prime_states(model, sampler, cfg.state_source, cfg.state_tissue_prior, config.data.min_cpgs, choice=choice)
    freeze_states(model, cfg.state_source)
    model.train()
    optimizer = build_optimizer(model, cfg)
    loss_fn = build_loss(cfg)
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(steps) / max(steps - 1, 1))  # (steps,) geometric
    rows: list[tuple[int, float, float, float]] = []
    avg, best = 0.0, math.inf
    for step in track(range(steps), "lr-find", total=steps):
        for group in optimizer.param_groups:
            group["lr"] = float(lrs[step])
        torch.manual_seed(step_seed(cfg.seed, step, 0))
        loss = _one_step(model, optimizer, loss_fn, sampler, step, config, device)
        if not math.isfinite(loss):
            log.info("loss became non-finite at lr %.3g: sweep ends", lrs[step])
            break
        avg = SMOOTHING * avg + (1 - SMOOTHING) * loss
        smoothed = avg / (1 - SMOOTHING ** (step + 1))
        rows.append((step, float(lrs[step]), loss, smoothed))
        best = min(best, smoothed)
        if step > steps // 10 and smoothed > DIVERGE * best:
            log.info("loss diverged at lr %.3g: sweep ends", lrs[step])
            break
    return _write(out, config, rows)


def _one_step(model, optimizer, loss_fn, sampler: TrainSampler, step: int, config: Config, device) -> float:
    cfg = config.train
    total = 0.0
    for micro in range(cfg.accum_steps):
        batch = sampler.batch(0, step * cfg.accum_steps + micro, cfg.batch_size)
        dna, meth, labels, window = (torch.from_numpy(a).to(device).long()
                                     for a in (batch.dna, batch.meth, batch.labels, batch.window_idx))
        split = cfg.count_source == "split"
        with autocast_context(device, cfg.precision):
            logits = model(dna, meth, window, leave_out=labels if split and model.counts is not None else None)
        loss = loss_fn(logits.float(), labels)
        if not split:
            model.observe(meth, window, labels)  # the count route (if any) learns as in training
        (loss / cfg.accum_steps).backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / cfg.accum_steps


def _write(out: Path, config: Config, rows: list[tuple[int, float, float, float]]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / RUN.CONFIG)
    with atomic_path(out / LR_FIND.CSV) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "lr", "loss", "smoothed_loss"])
        writer.writerows((s, f"{lr:.6g}", f"{loss:.6g}", f"{sm:.6g}") for s, lr, loss, sm in rows)
    lrs = np.array([r[1] for r in rows])
    smoothed = np.array([r[3] for r in rows])
    suggestion, steepest = suggest_lr(lrs, smoothed) if len(rows) >= 3 else (float("nan"), -1)
    warnings = []
    if steepest < 0:
        warnings.append(NO_DESCENT.format(drop=MIN_RELATIVE_DROP))
        log.warning("%s", warnings[-1])
    # no suggestion is NaN (json writes NaN, which Python's json reads back)
    summary = {"suggested_lr": suggestion, "steepest_lr": float(lrs[steepest]) if steepest >= 0 else float("nan"),
               "min_loss_lr": float(lrs[int(np.argmin(smoothed))]) if rows else float("nan"),
               "steps_run": len(rows), "start_lr": float(lrs[0]) if rows else float("nan"),
               "end_lr": float(lrs[-1]) if rows else float("nan"), "warnings": warnings}
    atomic_write_text(out / LR_FIND.JSON, json.dumps(summary, indent=2) + "\n")
    _plot(out / LR_FIND.PNG, rows, summary)
    return summary


def _plot(path: Path, rows: list[tuple[int, float, float, float]], summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r[1] for r in rows], [r[2] for r in rows], color="0.8", lw=0.8, label="loss")
    ax.plot([r[1] for r in rows], [r[3] for r in rows], color="C0", label="smoothed loss")
    if math.isfinite(summary["suggested_lr"]):
        ax.axvline(summary["steepest_lr"], color="C3", ls=":", label=f"steepest {summary['steepest_lr']:.2g}")
        ax.axvline(summary["suggested_lr"], color="C2", ls="--", label=f"suggested {summary['suggested_lr']:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)

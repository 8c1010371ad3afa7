"""Loss, AdamW with the design's decay groups, and the one-cycle learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

from tissuebert.config import TrainConfig
from tissuebert.errors import ConfigError

MIN_WARMUP_STEPS = 2  # a tiny run still warms up over at least this many optimiser steps
MIN_SCHEDULE_STEPS = 3  # the shortest run whose one-cycle schedule has a warm-up and a decay leg


PANEL_TABLES = ("cpg_emb", "cpg_logit", "states.emission", "states.prior")  # the model's per-panel tables
PANEL_LR_SCALE = 2.0  # train.panel_lr = null: 2 x windows / training reads (see panel_max_lr)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups: weight decay on weight matrices of Linear layers only; the per-panel-CpG
    tables (if any) in a third group of their own, so that they can have their own learning rate.

    Biases, LayerNorm parameters and embeddings are excluded from decay, as in BERT: decaying them
    pulls normalisation gains and token vectors towards zero without regularising anything useful.
    """
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, (nn.Embedding, nn.LayerNorm)):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    modules = dict(model.named_modules())
    panel = {id(modules[name].weight) for name in PANEL_TABLES if name in modules}
    decay, plain, tables = [], [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if id(param) in panel:
            tables.append(param)
        else:
            (plain if id(param) in no_decay or param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    if tables:
        groups.append({"params": tables, "weight_decay": 0.0, "panel": True})
    return groups


def panel_max_lr(cfg: TrainConfig, n_windows: int, total_reads: int) -> float:
    """Peak learning rate of the per-panel-CpG tables: ``train.panel_lr``, or by default
    max(max_lr, 2 x windows / training reads).

    A table row moves only when its CpG is in the batch, by about lr each time under Adam, so
    the learning rate it needs grows with the panel and shrinks with the reads each window gets;
    the read-level logistic regression (inference/logreg.py) measured the same rule on the demo and
    ``small`` stores. The encoder keeps ``train.max_lr``.
    """
    if cfg.panel_lr is not None:
        return float(cfg.panel_lr)
    return float(max(cfg.max_lr, PANEL_LR_SCALE * n_windows / max(total_reads, 1)))


def build_optimizer(model: nn.Module, cfg: TrainConfig, panel_lr: float | None = None) -> torch.optim.AdamW:
    """AdamW over :func:`decay_groups`; the fused kernel (one pass over all parameters) on CPU and CUDA."""
    devices = {p.device.type for p in model.parameters()}
    groups = decay_groups(model, cfg.weight_decay)
    for group in groups:
        peak = (panel_lr or cfg.max_lr) if group.get("panel") else cfg.max_lr
        group["lr"] = peak / cfg.div_factor
        group["max_lr"] = peak
    return torch.optim.AdamW(groups, lr=cfg.max_lr / cfg.div_factor, betas=tuple(cfg.betas), eps=cfg.eps,
                             fused=devices <= {"cpu", "cuda"})


def warmup_fraction(cfg: TrainConfig, total_steps: int) -> float:
    """cfg.warmup_frac, raised so that warm-up lasts at least MIN_WARMUP_STEPS steps."""
    if total_steps <= MIN_WARMUP_STEPS:
        return 0.5
    return max(cfg.warmup_frac, MIN_WARMUP_STEPS / total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycleLR: max_lr/div -> max_lr over the warm-up -> max_lr/div/final_div, both legs cosine.

    With the paper values this is 1.6e-5 -> 4e-4 -> 4e-8. Momentum cycling is off: AdamW's
    betas stay what the config says.
    """
    pct = warmup_fraction(cfg, total_steps)
    warm_end = pct * total_steps - 1  # OneCycleLR's last warm-up step: both legs need at least one step
    if not (0 < warm_end < total_steps - 1):
        raise ConfigError(f"train.epochs x steps per epoch = {total_steps} optimiser step(s) with warm-up "
                          f"{pct:.2f} leave no room for the one-cycle schedule's warm-up and decay",
                          hint=f"give it at least {MIN_SCHEDULE_STEPS} steps (raise train.epochs or "
                               "train.steps_per_epoch) and train.warmup_frac < 1")
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group.get("max_lr", cfg.max_lr) for group in optimizer.param_groups],
        total_steps=total_steps, pct_start=pct,
        anneal_strategy="cos", div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor,
        cycle_momentum=False)


def build_loss(cfg: TrainConfig) -> nn.CrossEntropyLoss:
    return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

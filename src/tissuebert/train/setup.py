"""Everything a training run needs before its first step, gathered in one ``Run``.

``setup_run`` reads top to bottom: resume decision -> config -> determinism -> store checks ->
sampler and validation set -> model, optimiser, schedule, scaler -> restored state -> DDP.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from tissuebert.atomic import check_output
from tissuebert.config import Config, dump_config
from tissuebert.constants import CKPT, RUN
from tissuebert.data.eval_set import EvalReads, build_eval_reads
from tissuebert.data.sampler import TrainSampler
from tissuebert.errors import StoreError
from tissuebert.model.tissuebert import TissueBERT, build_model, count_parameters
from tissuebert.progress import get_logger
from tissuebert.store.store import Store
from tissuebert.train.checkpoint import check_compatible, checkpoint_config, load_checkpoint
from tissuebert.train.dist import DistInfo, barrier
from tissuebert.train.optim import build_loss, build_optimizer, build_scheduler, panel_max_lr
from tissuebert.train.state import (
    Position, check_resume_allowed, config_differences, find_resume, restore_rng,
)

log = get_logger("train")


@dataclass
class Run:
    """The state of one training run (one per rank)."""

    config: Config
    run_dir: Path
    info: DistInfo
    store: Store
    sampler: TrainSampler
    val: EvalReads
    model: torch.nn.Module  # DDP-wrapped when world_size > 1
    raw_model: TissueBERT
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.OneCycleLR
    scaler: torch.amp.GradScaler
    loss_fn: torch.nn.Module
    steps_per_epoch: int
    total_steps: int
    position: Position
    resume_count: int = 0
    best_val_loss: float = float("inf")
    best_val_acc: float = -1.0
    last_val_metrics: dict[str, Any] = field(default_factory=dict)
    resumed_from: Path | None = None

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / RUN.CHECKPOINTS


def configure_torch(config: Config, info: DistInfo) -> None:
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    if config.train.deterministic:
        # cuBLAS needs a fixed workspace for deterministic matmuls; set before the first CUDA call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not config.train.deterministic


def _prepare_run_dir(run_dir: Path, *, fresh: bool, resume: str | None, force: bool, info: DistInfo) -> None:
    """A fresh run refuses a non-empty --out unless --force (or --resume auto found nothing yet)."""
    if not info.is_main or not fresh:
        return
    if resume != "auto":
        check_output(run_dir, force=force)
    if force or resume == "auto":
        # outputs of an older run in the same folder would mix with this one's
        for sub in (RUN.CHECKPOINTS, RUN.LOGS, RUN.PLOTS, RUN.TENSORBOARD):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        (run_dir / RUN.STOP).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def _resolve_resume(config: Config, run_dir: Path, resume: str | None) -> tuple[Config, dict | None, Path | None]:
    path = find_resume(run_dir, resume)
    if path is None:
        if resume == "auto":
            log.info("no checkpoint in %s: starting a new run", run_dir / RUN.CHECKPOINTS)
        return config, None, None
    state = load_checkpoint(path)
    saved = checkpoint_config(state, path)
    diffs = config_differences(config, saved)
    if diffs:
        log.warning("resuming with the checkpoint's config; ignoring differences from the command line: %s",
                    "; ".join(diffs))
    return saved, state, path


def _load_data(config: Config, store_root: str | Path, info: DistInfo) -> tuple[Store, TrainSampler, EvalReads]:
    # rank 0 verifies checksums; the others check structure only (same files, read once is enough)
    store = Store.open(store_root, verify_checksums=info.is_main)
    sampler = TrainSampler(store, split="train", min_cpgs=config.data.min_cpgs, in_memory=config.data.in_memory,
                           seed=config.train.seed, cpg_dropout=config.data.cpg_dropout)
    val = build_eval_reads(store, "val", max_reads_per_sample=config.data.val_reads_per_sample,
                           seed=config.train.seed, min_cpgs=config.data.min_cpgs)
    if val.n_reads == 0:
        raise StoreError("store has no validation reads (split 'val')", path=store.root,
                         hint="mark at least one sample per tissue as val in the sample sheet")
    return store, sampler, val


def setup_run(config: Config, store_root: str | Path, run_dir: str | Path, *, resume: str | None, force: bool,
              info: DistInfo) -> Run:
    run_dir = Path(run_dir)
    config, state, resumed_from = _resolve_resume(config, run_dir, resume)
    resume_count = check_resume_allowed(state, resumed_from, config.train.max_resumes) if state else 0
    _prepare_run_dir(run_dir, fresh=state is None, resume=resume, force=force, info=info)
    barrier(info)
    configure_torch(config, info)

    store, sampler, val = _load_data(config, store_root, info)
    if state is not None:
        check_compatible(state, tissues=store.tissues, panel_hash=store.panel_hash, path=resumed_from)

    torch.manual_seed(config.train.seed)  # identical initial weights on every rank and every rerun
    model = build_model(config.model, len(store.tissues), store.panel).to(info.device)
    cfg = config.train
    steps_per_epoch = cfg.steps_per_epoch or sampler.steps_per_epoch(cfg.batch_size, cfg.accum_steps, info.world_size)
    total_steps = cfg.epochs * steps_per_epoch
    panel_lr = panel_max_lr(cfg, store.panel.n_windows, total_steps * cfg.batch_size * cfg.accum_steps * info.world_size)
    optimizer = build_optimizer(model, cfg, panel_lr)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    scaler = torch.amp.GradScaler(info.device.type, enabled=cfg.precision == "fp16" and info.device.type == "cuda")
    position = Position(seed=cfg.seed, world_size=info.world_size, steps_per_epoch=steps_per_epoch)
    run = Run(config=config, run_dir=run_dir, info=info, store=store, sampler=sampler, val=val, model=model,
              raw_model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, loss_fn=build_loss(cfg),
              steps_per_epoch=steps_per_epoch, total_steps=total_steps, position=position,
              resume_count=resume_count, resumed_from=resumed_from)
    if state is not None:
        _restore(run, state)
    if info.enabled:
        run.model = DistributedDataParallel(model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    if info.is_main:
        dump_config(config, run_dir / RUN.CONFIG)
        log.info("model: %.2f M parameters; %d tissues; %d training files, %d eligible reads; %d val reads",
                 count_parameters(model) / 1e6, len(store.tissues), len(sampler.samples), sampler.n_reads, val.n_reads)
        log.info("schedule: %d epochs x %d steps (batch %d x accum %d x %d rank(s)); device %s, %s; peak lr %.2e "
                 "(per-CpG tables %.2e)", cfg.epochs, steps_per_epoch, cfg.batch_size, cfg.accum_steps, info.world_size,
                 info.device, cfg.precision, cfg.max_lr, panel_lr)
    return run


def _restore(run: Run, state: dict[str, Any]) -> None:
    run.raw_model.load_state_dict(state[CKPT.MODEL])
    run.optimizer.load_state_dict(state[CKPT.OPTIMIZER])
    run.scheduler.load_state_dict(state[CKPT.SCHEDULER])
    if state.get(CKPT.SCALER):
        run.scaler.load_state_dict(state[CKPT.SCALER])
    saved = Position.from_dict(state[CKPT.SAMPLER])
    if saved.steps_per_epoch != run.steps_per_epoch:
        raise StoreError(f"the checkpoint ran {saved.steps_per_epoch} steps per epoch, this store gives "
                         f"{run.steps_per_epoch}", path=run.resumed_from,
                         hint="resume against the same store and world size, or set train.steps_per_epoch")
    if saved.world_size != run.info.world_size:
        log.warning("checkpoint was written by %d rank(s), resuming with %d: batches differ from an "
                    "uninterrupted run", saved.world_size, run.info.world_size)
        saved.world_size = run.info.world_size
    run.position = saved
    run.best_val_loss = float(state.get(CKPT.BEST_LOSS, float("inf")))
    run.best_val_acc = float(state.get(CKPT.BEST_ACC, -1.0))
    run.last_val_metrics = dict(state.get(CKPT.VAL_METRICS) or {})
    restore_rng(state.get(CKPT.RNG))
    log.info("resumed from %s at epoch %d, step %d (global step %d); resume %d of at most %d",
             run.resumed_from, saved.epoch + 1, saved.step, saved.global_step, run.resume_count,
             run.config.train.max_resumes)

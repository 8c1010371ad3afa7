"""Everything a training run needs before its first step, gathered in one ``Run``.

``setup_run`` reads top to bottom: resume decision -> config -> determinism -> store checks ->
sampler and validation set -> model, optimiser, schedule, scaler -> restored state -> DDP.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from tissuebert.atomic import remove_stale_temporaries
from tissuebert.config import Config, dump_config
from tissuebert.constants import CKPT, CKPT_LAST, CKPT_MID_EPOCH, RUN
from tissuebert.data.eval_set import EvalReads, build_eval_reads
from tissuebert.data.sampler import TrainSampler
from tissuebert.dist import DistInfo, barrier
from tissuebert.errors import CheckpointError, OutputExistsError, StoreError
from tissuebert.inference.checkpoint import check_compatible, checkpoint_config, load_checkpoint, save_checkpoint
from tissuebert.model.tissuebert import TissueBERT, build_model, count_parameters
from tissuebert.progress import get_logger
from tissuebert.store.store import Store
from tissuebert.train.atlas_choice import STATE_CANDIDATES, TISSUE_PRIORS, StateChoice, choose_states
from tissuebert.train.optim import build_loss, build_optimizer, build_scheduler, panel_max_lr
from tissuebert.train.state import (
    Position,
    ResumePoint,
    config_differences,
    find_resume,
    load_init_weights,
    record_resume,
    restore_rng,
    resume_config,
)

log = get_logger("train")

# model.fragment_states = auto on a store without validation reads: the U / X / M of UXM
AUTO_FALLBACK_STATES = 3


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
    restarted: bool = False  # --resume auto started again a run that died before its first checkpoint
    init_from: Path | None = None  # train --init-from: the checkpoint the weights came from

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


# what a run folder may hold; --resume auto starts a new run only in a folder that holds nothing else
RUN_ENTRIES = frozenset({RUN.CHECKPOINTS, RUN.LOGS, RUN.PLOTS, RUN.TENSORBOARD, RUN.CONFIG, RUN.STOP, RUN.LOCK,
                         RUN.RESUMES})


def _prepare_run_dir(run_dir: Path, point: ResumePoint, *, resume: str | None, force: bool, info: DistInfo) -> bool:
    """Nothing of a run is deleted or overwritten without --force, whatever --resume finds (rank 0).

    Returns True when --resume auto restarts a run that died before its first checkpoint (its
    logs are then replayed from step 0 like any resume's).
    """
    if not info.is_main:
        return False
    entries = sorted(p.name for p in run_dir.iterdir() if p.name != RUN.LOCK) if run_dir.is_dir() else []
    restarted = False
    if point.state is not None:
        own = point.path.resolve().parent == (run_dir / RUN.CHECKPOINTS).resolve()
        if not own and entries and not force:  # another run's checkpoint into a folder that holds a run
            raise OutputExistsError("output already exists", path=run_dir,
                                    hint="resume into an empty --out, or pass --force to overwrite it")
    elif force:
        # outputs of an older run in the same folder would mix with this one's
        for sub in (RUN.CHECKPOINTS, RUN.LOGS, RUN.PLOTS, RUN.TENSORBOARD):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        (run_dir / RUN.RESUMES).unlink(missing_ok=True)
    elif resume == "auto":
        if point.unreadable:
            raise CheckpointError(
                f"no readable checkpoint in {run_dir / RUN.CHECKPOINTS} "
                f"({'; '.join(f'{p.name}: {why}' for p, why in point.unreadable.items())}); nothing was changed",
                hint="put a good copy under the same name in RUN/checkpoints/ and run again, or pass --force to "
                     "delete this run and start over")
        foreign = [name for name in entries if name not in RUN_ENTRIES]
        if foreign:
            raise OutputExistsError(f"not a tissuebert run folder (holds {', '.join(foreign[:3])}); --resume auto "
                                    "starts a new run only in an empty folder or a run's own", path=run_dir,
                                    hint="choose another --out, or pass --force to overwrite it")
        restarted = (run_dir / RUN.LOGS).is_dir()
        if restarted:
            log.warning("no checkpoint in %s: the run died before its first one; starting it again",
                        run_dir / RUN.CHECKPOINTS)
        else:
            log.info("no checkpoint in %s: starting a new run", run_dir / RUN.CHECKPOINTS)
    elif entries:
        a_run = all(name in RUN_ENTRIES for name in entries)
        raise OutputExistsError("output already exists", path=run_dir,
                                hint="choose another --out, " + ("pass --resume auto to continue it, " if a_run else "")
                                     + "or pass --force to overwrite it")
    if point.state is None:
        (run_dir / RUN.STOP).unlink(missing_ok=True)  # a stale stop request of an earlier run
    run_dir.mkdir(parents=True, exist_ok=True)
    return restarted


def _tidy_checkpoints(run_dir: Path, point: ResumePoint, info: DistInfo) -> None:
    """Rank 0, holding the run's lock: clear what interrupted writes left and mend the checkpoint set."""
    if not info.is_main:
        return
    for folder in (run_dir, run_dir / RUN.CHECKPOINTS, run_dir / RUN.LOGS, run_dir / RUN.PLOTS):
        for tmp in remove_stale_temporaries(folder):
            log.info("removed %s, the temporary file of an interrupted write", tmp)
    if point.state is None:
        return
    ckpt_dir = run_dir / RUN.CHECKPOINTS
    mid, last = ckpt_dir / CKPT_MID_EPOCH, ckpt_dir / CKPT_LAST
    if point.path == last and mid.is_file() and mid not in point.unreadable:
        mid.unlink()  # older than last.pt: a kill came between writing last.pt and removing it
    if (point.path.parent == ckpt_dir and not point.state[CKPT.MID_EPOCH]
            and (not last.is_file() or last in point.unreadable)):
        # last.pt was lost, or its epoch's set was cut short before it: the newest epoch end found is
        # committed again, under every name its epoch end writes (last.pt last), as that epoch end would
        for name in point.state.get(CKPT.EPOCH_SET) or [CKPT_LAST]:
            save_checkpoint(ckpt_dir / name, point.state)
        log.warning("completed the checkpoint set of epoch %d from %s", int(point.state[CKPT.EPOCH]),
                    point.path.name)


def _resolve_resume(config: Config, point: ResumePoint, overrides: Collection[str]) -> Config:
    if point.state is None:
        return config
    saved = resume_config(config, checkpoint_config(point.state, point.path), overrides)
    diffs = config_differences(config, saved)
    if diffs:
        log.warning("resuming with the checkpoint's config; ignoring differences from the command line: %s",
                    "; ".join(diffs))
    return saved


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
              info: DistInfo, init_from: str | Path | None = None, overrides: Collection[str] = ()) -> Run:
    """Rank 0 holds the run folder's lock (train/runlock.py) before this is called.

    ``overrides``: the config keys given with --set; on resume they may change the limits of
    ``state.SETTABLE_ON_RESUME`` (the rest of the checkpoint's config wins).
    """
    run_dir = Path(run_dir)
    if init_from is not None and resume not in (None, "auto"):
        raise CheckpointError("--init-from starts a new run; it cannot be combined with --resume PATH",
                              path=init_from, hint="use one of them")
    point = find_resume(run_dir, resume)
    config, state, resumed_from = _resolve_resume(config, point, overrides), point.state, point.path
    restarted = _prepare_run_dir(run_dir, point, resume=resume, force=force, info=info)
    _tidy_checkpoints(run_dir, point, info)
    barrier(info)
    configure_torch(config, info)

    store, sampler, val = _load_data(config, store_root, info)
    if state is not None:
        check_compatible(state, tissues=store.tissues, panel_hash=store.panel_hash, path=resumed_from)

    choice = None
    if state is None:  # a resumed run's config holds the K chosen when it started
        config, choice = resolve_fragment_states(config, sampler, init_from)
    torch.manual_seed(config.train.seed)  # identical initial weights on every rank and every rerun
    model = build_model(config.model, len(store.tissues), store.panel).to(info.device)
    cfg = config.train
    freeze_states(model, cfg.state_source)  # before the optimiser: fixed tables are in no parameter group
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
              resumed_from=resumed_from, restarted=restarted)
    if state is not None:
        _restore(run, state)
        if init_from is not None:
            log.info("--init-from ignored: %s already holds a checkpoint to continue", run_dir)
    else:
        if init_from is not None:
            run.init_from = load_init_weights(model, init_from, tissues=store.tissues, panel_hash=store.panel_hash)
        prime_counts(model, sampler, cfg.count_source)
        prime_states(model, sampler, cfg.state_source, cfg.state_tissue_prior, config.data.min_cpgs, choice=choice)
    run.resume_count = _count_resume(run_dir, point, restarted, config, info)  # once every check has passed
    if info.enabled:
        # broadcast_buffers off: the panel buffers never change, and the count route's tally is kept
        # identical on every rank by counting every rank's reads (loop._observe), not copied from rank 0
        run.model = DistributedDataParallel(model, device_ids=[info.local_rank] if info.device.type == "cuda" else None,
                                            broadcast_buffers=False)
    if info.is_main:
        dump_config(config, run_dir / RUN.CONFIG)
        log.info("model: %.2f M parameters; %d tissues; %d training files, %d eligible reads; %d val reads",
                 count_parameters(model) / 1e6, len(store.tissues), len(sampler.samples), sampler.n_reads, val.n_reads)
        log.info("schedule: %d epochs x %d steps (batch %d x accum %d x %d rank(s)); device %s, %s; peak lr %.2e "
                 "(per-CpG tables %.2e)", cfg.epochs, steps_per_epoch, cfg.batch_size, cfg.accum_steps, info.world_size,
                 info.device, cfg.precision, cfg.max_lr, panel_lr)
    return run


def prime_counts(model: TissueBERT, sampler: TrainSampler, source: str) -> None:
    """train.count_source = split: the count route starts holding every eligible training read
    (a new run only; a resumed run's tally comes back with its weights). Every rank counts the
    whole split, so the tallies agree without a broadcast."""
    if source != "split" or model.counts is None:
        return
    started = time.perf_counter()
    model.set_tally(torch.from_numpy(sampler.call_tally()))
    log.info("count route: %d training reads counted (%.1f s)", sampler.n_reads, time.perf_counter() - started)


def freeze_states(model: TissueBERT, source: str) -> None:
    """train.state_source = split: the fragment-state head's two tables (per-CpG emissions and
    per-(window, tissue) state shares) hold the EM fit of the whole training split and are not
    trained; the encoder's per-token correction to them is. Trained, the tables drift from the fit
    to what the few reads the loop draws say (val loss above chance by epoch 3 on ``small``:
    docs/training.md), as a gradient-trained count table would."""
    if source != "split" or model.states is None:
        return
    model.states.emission.weight.requires_grad_(False)
    model.states.prior.weight.requires_grad_(False)


def _held_out(sampler: TrainSampler, min_cpgs: int) -> TrainSampler | None:
    """The store's validation reads as a sampler, for choosing the atlas on them; None without
    validation samples (validation samples without an eligible read are the sampler's error)."""
    if not sampler.store.samples("val"):
        return None
    return TrainSampler(sampler.store, split="val", min_cpgs=min_cpgs, in_memory=False)


def _emissions(per_tissue: bool, tissue_prior: float | str) -> tuple[float | None, ...]:
    """The emissions :func:`choose_states` scores: shared only (model.state_emissions = shared), per-tissue
    at the given prior, or (train.state_tissue_prior = auto) shared and per-tissue at each auto prior."""
    if not per_tissue:
        return (None,)
    return (None, *TISSUE_PRIORS) if tissue_prior == "auto" else (float(tissue_prior),)


def resolve_fragment_states(config: Config, sampler: TrainSampler, init_from: str | Path | None = None
                            ) -> tuple[Config, StateChoice | None]:
    """model.fragment_states = auto, before a new run's model is built (K sets the head's size):
    fit the atlas at each K of STATE_CANDIDATES on the training split and keep the K (and
    emissions) that deconvolve pseudo-mixtures of the validation reads best. Returns the config
    with that K, which the run's config.yaml and checkpoints hold (so a resume, --init-from and
    inference build the same model), and the fit kept (for :func:`prime_states`, not refitted).
    With --init-from, the K of that checkpoint (its weights need that shape). Every rank computes
    the same deterministic choice."""
    if config.model.fragment_states != "auto":
        return config, None
    chosen = config.model_copy(deep=True)
    if init_from is not None:
        saved = checkpoint_config(load_checkpoint(Path(init_from)), Path(init_from)).model.fragment_states
        if not saved:
            raise CheckpointError("model.fragment_states = auto, and the --init-from checkpoint has no fragment-state "
                                  "head to take K from", path=init_from,
                                  hint="give the new run the checkpoint's model.* settings (model.fragment_states=0 "
                                       "and train.state_source=learned)")
        chosen.model.fragment_states = int(saved)
        log.info("model.fragment_states = auto: %d states, as the --init-from checkpoint", saved)
        return chosen, None
    held_out = _held_out(sampler, config.data.min_cpgs)
    if held_out is None:
        chosen.model.fragment_states = AUTO_FALLBACK_STATES
        log.warning("model.fragment_states = auto chooses on the validation reads and the store has no validation "
                    "samples: %d states (set model.fragment_states to a number to choose yourself)",
                    AUTO_FALLBACK_STATES)
        return chosen, None
    started = time.perf_counter()
    choice = choose_states(sampler, held_out, STATE_CANDIDATES,
                           emissions=_emissions(config.model.state_emissions == "tissue", config.train.state_tissue_prior))
    chosen.model.fragment_states = choice.n_states
    log.info("model.fragment_states = auto: kept %s, the smallest held-out mixture error of %d fits (%.5f; %.1f s)",
             choice.describe(), len(choice.scores), choice.scores[(choice.n_states, choice.prior)][0],
             time.perf_counter() - started)
    return chosen, choice


def prime_states(model: TissueBERT, sampler: TrainSampler, source: str, tissue_prior: float | str = "auto",
                 min_cpgs: int = 1, *, choice: StateChoice | None = None) -> None:
    """train.state_source = split: the fragment-state head starts from an EM fit of the training
    split (a new run only; every rank fits the same deterministic EM; :func:`freeze_states` keeps it).
    ``choice``: the fit :func:`resolve_fragment_states` kept, used as it is."""
    if source != "split" or model.states is None:
        return
    from tissuebert.data.state_atlas import fit_state_atlas, tissue_tables

    n_states, n_tissues = model.states.n_states, len(sampler.store.tissues)
    if choice is None and model.states.per_tissue and tissue_prior == "auto":
        held_out = _held_out(sampler, min_cpgs)
        if held_out is None:
            log.warning("train.state_tissue_prior = auto chooses on the validation reads and the store has none: "
                        "the fragment-state atlas keeps shared emissions (set train.state_tissue_prior to a "
                        "number of pseudo-calls, e.g. 100, for per-tissue ones)")
            tissue_prior = None
        else:
            choice = choose_states(sampler, held_out, (n_states,))
            log.info("fragment-state atlas: kept %s (smallest held-out mixture error)", choice.describe())
    if choice is not None:
        if choice.n_states != n_states:
            raise ValueError(f"the atlas chosen has {choice.n_states} states, the model's head {n_states}")
        theta, pi = choice.theta, choice.pi
    elif model.states.per_tissue and tissue_prior is not None:
        theta, pi = fit_state_atlas(sampler, n_states, tissue_prior=float(tissue_prior))
    else:
        theta, pi = fit_state_atlas(sampler, n_states)
    if model.states.per_tissue:
        theta = tissue_tables(theta, n_tissues)  # a shared fit fills every tissue's columns
    model.set_states(theta, pi)


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
    if run.info.rank != 0:
        # a mid-epoch checkpoint holds the read counts of all ranks; rank 0 carries them on alone
        run.position.epoch_sums["correct"] = run.position.epoch_sums["seen"] = 0.0
    restore_rng(state.get(CKPT.RNG))
    log.info("resumed from %s at epoch %d, step %d (global step %d)", run.resumed_from, saved.epoch + 1, saved.step,
             saved.global_step)


def _count_resume(run_dir: Path, point: ResumePoint, restarted: bool, config: Config, info: DistInfo) -> int:
    """Rank 0 records a resume (or a restart) in RUN/resumes.json; a finished run is not resumed."""
    if not info.is_main or not (restarted or point.state is not None):
        return 0
    if point.state is not None and int(point.state[CKPT.EPOCH]) >= config.train.epochs:
        return int(point.state.get(CKPT.RESUME_COUNT, 0))
    step = int(point.state[CKPT.GLOBAL_STEP]) if point.state is not None else 0
    count = record_resume(run_dir, step, point.path, config.train.max_resumes)
    log.info("resume %d of the run (train.max_resumes = %d in a row without progress)", count,
             config.train.max_resumes)
    return count

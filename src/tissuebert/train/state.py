"""What a training checkpoint holds beyond the weights: position, RNG streams, resume logic.

The sampler position is (epoch, step): the epoch being run and the optimiser steps already
done in it. Batches are a pure function of (seed, epoch, step, rank) and dropout is re-seeded
from (seed, global step, rank) before every step, so position + weights + optimiser +
scheduler state is all an exact resume needs; the global RNG states are saved as well so that
anything else drawing from them continues too.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tissuebert.atomic import atomic_write_text
from tissuebert.config import Config, config_to_dict
from tissuebert.constants import CKPT, CKPT_BEST_ACC, CKPT_BEST_LOSS, CKPT_LAST, CKPT_MID_EPOCH, RUN
from tissuebert.errors import CheckpointError
from tissuebert.inference.checkpoint import check_compatible, load_checkpoint
from tissuebert.progress import get_logger

CKPT_EPOCH_GLOB = "epoch_[0-9][0-9][0-9][0-9].pt"  # constants.CKPT_EPOCH_FMT's names

log = get_logger("train.state")


@dataclass
class Position:
    """Where the sampler stands, plus the running sums of the epoch in progress."""

    epoch: int = 0  # 0-based epoch being run (== epochs completed when step == 0)
    step: int = 0  # optimiser steps already done in this epoch
    seed: int = 0
    world_size: int = 1
    steps_per_epoch: int = 1
    epoch_sums: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "correct": 0.0, "seen": 0.0,
                                                                  "skipped": 0.0, "seconds": 0.0})
    # the step guard's memory, carried across epochs and resumes
    skipped_total: int = 0  # steps skipped since the run began (non-finite or exploding)
    skipped_in_a_row: int = 0
    loss_avg: float = 0.0  # running averages (EMA) of the accepted steps' loss and pre-clip gradient norm
    grad_norm_avg: float = 0.0

    @property
    def global_step(self) -> int:
        return self.epoch * self.steps_per_epoch + self.step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Position":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def step_seed(seed: int, global_step: int, rank: int) -> int:
    """Seed of the torch RNG (dropout) for one optimiser step on one rank."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, global_step, rank]).generate_state(1, np.uint64)[0] >> 1)


def capture_rng() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class ResumePoint:
    """What ``--resume`` found: the checkpoint to continue (path and state, or None) and the unreadable ones."""

    path: Path | None = None
    state: dict[str, Any] | None = None
    unreadable: dict[Path, str] = field(default_factory=dict)


def _order(path: Path, state: dict[str, Any]) -> tuple:
    """Newest first: global step, then epochs completed (an epoch end beats a stop at its last step), then
    last.pt before the other copies of the same state."""
    kind = 0 if path.name == CKPT_LAST else 2 if path.name == CKPT_MID_EPOCH else 1
    return int(state[CKPT.GLOBAL_STEP]), int(state[CKPT.EPOCH]), -kind


def find_resume(run_dir: Path, resume: str | None) -> ResumePoint:
    """The checkpoint to resume.

    ``auto``: the newer of last.pt and mid_epoch.pt; when last.pt is missing or unreadable, the
    newest readable of mid_epoch.pt, epoch_NNNN.pt, best_loss.pt and best_acc.pt (each holds a
    complete training state). Which file was taken and why is logged. An explicit path must be
    readable.
    """
    if resume is None:
        return ResumePoint()
    if resume != "auto":
        path = Path(resume)
        if not path.is_file():
            raise CheckpointError("checkpoint to resume from not found", path=path,
                                  hint="pass --resume auto or a file from RUN/checkpoints/")
        return ResumePoint(path, load_checkpoint(path))
    ckpt_dir = run_dir / RUN.CHECKPOINTS
    point = ResumePoint()

    def consider(path: Path) -> None:
        if not path.is_file():
            return
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            point.unreadable[path] = str(exc).removeprefix(f"{path}: ")
            return
        lacking = [k for k in (CKPT.OPTIMIZER, CKPT.SCHEDULER, CKPT.SAMPLER) if k not in state]
        if lacking:
            point.unreadable[path] = f"not a training checkpoint (lacks {', '.join(lacking)})"
            return
        if point.state is None or _order(path, state) > _order(point.path, point.state):
            point.path, point.state = path, state  # keep one state in memory at a time

    consider(ckpt_dir / CKPT_LAST)
    consider(ckpt_dir / CKPT_MID_EPOCH)
    # the end-of-epoch set writes last.pt after the others: while it is readable, nothing else is newer
    # than the epoch it records except files of an interrupted set write, which replaying rewrites
    last = ckpt_dir / CKPT_LAST
    if not last.is_file() or last in point.unreadable:
        for path in sorted(ckpt_dir.glob(CKPT_EPOCH_GLOB), reverse=True) + [ckpt_dir / CKPT_BEST_LOSS,
                                                                             ckpt_dir / CKPT_BEST_ACC]:
            consider(path)
    for path, why in point.unreadable.items():
        log.warning("cannot resume from %s: %s", path, why)
    if point.path is not None and (point.unreadable or point.path.name not in (CKPT_LAST, CKPT_MID_EPOCH)):
        log.warning("resuming from %s (epoch %d, global step %d), the newest readable checkpoint", point.path,
                    int(point.state[CKPT.EPOCH]), int(point.state[CKPT.GLOBAL_STEP]))
    return point


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoint files a run folder holds (last, mid-epoch, best, every-N-epochs)."""
    ckpt_dir = run_dir / RUN.CHECKPOINTS
    names = [ckpt_dir / n for n in (CKPT_LAST, CKPT_MID_EPOCH, CKPT_BEST_LOSS, CKPT_BEST_ACC)]
    return [p for p in names if p.is_file()] + sorted(ckpt_dir.glob(CKPT_EPOCH_GLOB))


def record_resume(run_dir: Path, global_step: int, source: Path | None, max_resumes: int) -> int:
    """Append this resume to RUN/resumes.json; returns the run's resume count.

    Refuses when ``max_resumes`` resumes in a row already started from this global step: the
    job keeps failing before it gets further (a graceful stop always gets further, so a long run
    that needs many job slots is never refused).
    """
    path = run_dir / RUN.RESUMES
    entries: list[dict[str, Any]] = []
    if path.is_file():
        try:
            entries = list(json.loads(path.read_text()))
        except (ValueError, TypeError):
            log.warning("%s is unreadable; counting resumes afresh", path)
    stuck = 0
    for entry in reversed(entries):
        if int(entry.get("global_step", -1)) != global_step:
            break
        stuck += 1
    if stuck >= max_resumes:
        raise CheckpointError(
            f"this run was resumed {stuck} times in a row from global step {global_step} and never got further "
            f"(train.max_resumes = {max_resumes}); refusing to resume again", path=path,
            hint="inspect logs/epochs.csv (skipped_steps, epoch_s) and the job logs for why it keeps failing; then "
                 f"resume with --resume auto --set train.max_resumes={max_resumes + 5}, or start a new run from "
                 "these weights with --init-from CHECKPOINT --out NEW_RUN")
    entries.append({"resume": len(entries) + 1, "global_step": global_step,
                    "checkpoint": None if source is None else str(source),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    atomic_write_text(path, json.dumps(entries, indent=1) + "\n")
    return len(entries)


# limits an operator may change when resuming, with --set: they decide when to stop, not what is computed
SETTABLE_ON_RESUME = ("train.max_resumes", "train.max_nonfinite", "train.max_skipped_frac", "train.spike_factor")


def resume_config(given: Config, saved: Config, overrides: Collection[str] = ()) -> Config:
    """The checkpoint's config, with the limits of SETTABLE_ON_RESUME that ``overrides`` (the keys given
    with --set) name taken from the command line."""
    for name in SETTABLE_ON_RESUME:
        key = name.split(".")[1]
        new, old = getattr(given.train, key), getattr(saved.train, key)
        if name in overrides and new != old:
            log.info("%s set from %s to %s for this resume", name, old, new)
            setattr(saved.train, key, new)
    return saved


def load_init_weights(model: torch.nn.Module, path: str | Path, *, tissues: list[str], panel_hash: str) -> Path:
    """``train --init-from``: copy a checkpoint's weights into a new run's model (nothing else)."""
    path = Path(path)
    state = load_checkpoint(path)
    check_compatible(state, tissues=tissues, panel_hash=panel_hash, path=path)
    try:
        model.load_state_dict(state[CKPT.MODEL])
    except RuntimeError as exc:
        lines = str(exc).splitlines()
        first = lines[1].strip() if len(lines) > 1 else lines[0]
        raise CheckpointError(f"its weights do not fit this run's model: {first}", path=path,
                              hint="give the new run the checkpoint's model.* settings") from None
    log.info("initialised the weights from %s (epoch %d, global step %d); optimiser, schedule and counters "
             "start afresh", path, int(state[CKPT.EPOCH]), int(state[CKPT.GLOBAL_STEP]))
    return path


# keys whose 'auto' a run resolves when it starts and saves resolved: 'auto' given on resume is no difference
RESOLVED_AT_START = frozenset({"model.fragment_states"})


def config_differences(given: Config, saved: Config) -> list[str]:
    """Keys whose values differ between two configs, as 'section.key: saved -> given'."""
    a, b = config_to_dict(saved), config_to_dict(given)
    out = []
    for section, body in a.items():
        if not isinstance(body, dict):
            continue
        for key, value in body.items():
            if f"{section}.{key}" in RESOLVED_AT_START and b.get(section, {}).get(key) == "auto":
                continue
            if b.get(section, {}).get(key) != value:
                out.append(f"{section}.{key}: {value} -> {b.get(section, {}).get(key)}")
    return out

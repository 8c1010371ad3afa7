"""What a training checkpoint holds beyond the weights: position, RNG streams, resume logic.

The sampler position is (epoch, step): the epoch being run and the optimiser steps already
done in it. Batches are a pure function of (seed, epoch, step, rank) and dropout is re-seeded
from (seed, global step, rank) before every step, so position + weights + optimiser +
scheduler state is all an exact resume needs; the global RNG states are saved as well so that
anything else drawing from them continues too.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tissuebert.config import Config, config_to_dict
from tissuebert.constants import CKPT, CKPT_LAST, CKPT_MID_EPOCH, RUN
from tissuebert.errors import CheckpointError
from tissuebert.progress import get_logger
from tissuebert.train.checkpoint import load_checkpoint

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


def find_resume(run_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint to resume: ``auto`` = the newer of last.pt and mid_epoch.pt (None if neither)."""
    if resume is None:
        return None
    if resume != "auto":
        path = Path(resume)
        if not path.is_file():
            raise CheckpointError("checkpoint to resume from not found", path=path,
                                  hint="pass --resume auto or a file from RUN/checkpoints/")
        return path
    ckpt_dir = run_dir / RUN.CHECKPOINTS
    candidates = [p for p in (ckpt_dir / CKPT_LAST, ckpt_dir / CKPT_MID_EPOCH) if p.is_file()]
    if not candidates:
        return None
    # the mid-epoch file is only newer if it holds more steps (an epoch end removes it, but a
    # crash between the two writes could leave a stale one)
    steps = {p: int(load_checkpoint(p)[CKPT.GLOBAL_STEP]) for p in candidates}
    return max(candidates, key=lambda p: (steps[p], p.name == CKPT_MID_EPOCH))


def check_resume_allowed(state: dict[str, Any], path: Path, max_resumes: int) -> int:
    """The new resume count; refuses once a run has been resumed ``max_resumes`` times."""
    count = int(state.get(CKPT.RESUME_COUNT, 0))
    if count >= max_resumes:
        raise CheckpointError(
            f"this run was already resumed {count} times (train.max_resumes = {max_resumes}); refusing to resume again",
            path=path, hint="inspect logs/epochs.csv (skipped_steps, epoch_s) and the SLURM logs for why it keeps "
                            "stopping; raise the job's time limit, or start a new run from this checkpoint's weights")
    return count + 1


def config_differences(given: Config, saved: Config) -> list[str]:
    """Keys whose values differ between two configs, as 'section.key: saved -> given'."""
    a, b = config_to_dict(saved), config_to_dict(given)
    out = []
    for section, body in a.items():
        if not isinstance(body, dict):
            continue
        for key, value in body.items():
            if b.get(section, {}).get(key) != value:
                out.append(f"{section}.{key}: {value} -> {b.get(section, {}).get(key)}")
    return out

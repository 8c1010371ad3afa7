"""Training: the loop, checkpoints, metrics and batched inference.

``run_training`` is imported lazily so that ``tissuebert.train.checkpoint`` (used by evaluate,
predict and deconvolve) does not pull in the whole loop.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_training"]


def __getattr__(name: str) -> Any:
    if name == "run_training":
        from tissuebert.train.loop import run_training

        return run_training
    raise AttributeError(f"module 'tissuebert.train' has no attribute {name!r}")

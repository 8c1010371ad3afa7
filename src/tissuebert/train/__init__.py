"""Training: the loop, its run folder, resumption and the learning-rate range test.

Checkpoints, batched inference and the logistic-regression rival live in ``tissuebert.inference``
and classification metrics in ``tissuebert.metrics``: evaluate, predict and deconvolve use them
and import nothing from here. ``run_training`` is imported lazily so that importing a submodule
(``tissuebert.train.state``, say) does not pull in the whole loop.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_training"]


def __getattr__(name: str) -> Any:
    if name == "run_training":
        from tissuebert.train.loop import run_training

        return run_training
    raise AttributeError(f"module 'tissuebert.train' has no attribute {name!r}")

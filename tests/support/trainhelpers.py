"""Shared constants and helpers of the training tests."""

from __future__ import annotations

N_WINDOWS = 20

# A 1-layer, 32-wide model: same code paths as the presets, ~10x faster than tiny on one core.
FAST = ["model.n_layers=1", "model.hidden=32", "model.n_heads=2", "model.ffn=64", "model.head_hidden=32",
        "train.batch_size=32", "train.threads=1", "data.val_reads_per_sample=200", "eval.batch_size=256"]


# the tiny preset's fragment-state head off: for tests of the other routes
NO_STATES = ["model.fragment_states=0", "model.state_emissions=shared", "train.state_source=learned"]


def sets(*items: str) -> list[str]:
    """['--set', a, '--set', b, ...] for the CLI."""
    out: list[str] = []
    for item in items:
        out += ["--set", item]
    return out

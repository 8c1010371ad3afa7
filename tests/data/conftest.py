"""Stores shared by the sampler's test files."""

from __future__ import annotations

import pytest

from tissuebert.testing.synthetic import build_marker_store


@pytest.fixture(scope="module")
def unbalanced(tmp_path_factory):
    """Tissue "a" has 3 training files, "b" one: a file-level draw must still give 50/50."""
    root = tmp_path_factory.mktemp("data") / "unbalanced"
    return build_marker_store(root, tissues=("a", "b"), n_windows=12, reads_per_sample=400,
                              splits={"train": (3, 1), "val": 1}, marker_beta=0.2, background_beta=0.8, seed=5)

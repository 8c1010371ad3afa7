"""Tiny stores and a fast model shape for the training tests.

The store is the issue's check case: two tissues, every window a marker at which tissue
"meth" is fully methylated and tissue "unmeth" is not, so a read's tissue is fully determined
by its calls and a working pipeline must learn it to > 95% accuracy within a few hundred steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.trainhelpers import N_WINDOWS
from tissuebert.testing.synthetic import build_marker_store


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine's cores are shared
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def marker_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stores") / "marker"
    beta = np.stack([np.ones(N_WINDOWS), np.zeros(N_WINDOWS)])  # (T, W): "meth" methylated everywhere
    build_marker_store(root, tissues=("meth", "unmeth"), n_windows=N_WINDOWS, reads_per_sample=600, beta=beta, seed=3)
    return root


@pytest.fixture(scope="session")
def other_store(tmp_path_factory) -> Path:
    """Another panel and tissue list: checkpoints of marker_store must be refused on it."""
    root = tmp_path_factory.mktemp("stores") / "other"
    build_marker_store(root, tissues=("meth", "unmeth", "liver"), n_windows=12, reads_per_sample=200, seed=9)
    return root

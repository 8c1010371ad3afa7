"""Shared fixtures: the real public data folder, small simulated cohorts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.ci import on_ci
from tissuebert.constants import ENV_SHARED_DATA

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    env = os.environ.get(ENV_SHARED_DATA)
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO / ".." / "shared" / "data"]
    for cand in candidates:
        if cand.is_dir() and (cand / "README.md").is_file():
            return cand.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $TISSUEBERT_SHARED_DATA). On CI a missing folder is a failure, not a skip."""
    path = shared_data_dir()
    if path is None:
        msg = f"real test data not found (set {ENV_SHARED_DATA} or place it at ../shared/data)"
        if on_ci():  # CI=1 or CI=true
            pytest.fail(msg)
        pytest.skip(msg)
    return path

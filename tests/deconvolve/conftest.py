"""Fixtures of the deconvolve tests: the tiny store and checkpoints of tests/evaluate/tinystore.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from tinystore import TinyCohort, tiny_cohort  # noqa: E402


@pytest.fixture(scope="session")
def tiny() -> TinyCohort:
    return tiny_cohort()

"""Simulated cohorts for the marker tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tissuebert.simulate import simulate_cohort


@pytest.fixture(scope="session")
def demo_cohort(tmp_path_factory) -> Path:
    """The demo preset (8 tissues, 60 regions, one block per window), no BAMs: seconds."""
    return simulate_cohort(tmp_path_factory.mktemp("mk") / "demo", preset="demo", seed=3, write_bam=False)

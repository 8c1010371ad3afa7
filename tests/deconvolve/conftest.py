"""Fixtures of the deconvolve tests: the tiny store and checkpoints of tests/support/tinystore.py."""

from __future__ import annotations

import pytest

from tests.support.tinystore import TinyCohort, tiny_cohort


@pytest.fixture(scope="session")
def tiny() -> TinyCohort:
    return tiny_cohort()

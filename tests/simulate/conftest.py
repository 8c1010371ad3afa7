"""Small simulated cohorts shared by the simulator tests (built once per session)."""

from __future__ import annotations

import pytest

from tissuebert.simulate import simulate_cohort

# two blood subtypes, two pancreas cell types and a brain cell type: the hierarchy in miniature
TISSUES = ["Blood-T", "Blood-B", "Pancreas-Acinar", "Pancreas-Beta", "Neuron"]


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory):
    """5 tissues x 3 samples, 40 regions, depth 15-30, with BAMs (a few seconds)."""
    out = tmp_path_factory.mktemp("sim") / "cohort"
    return simulate_cohort(out, preset="small", seed=7, tissue_names=TISSUES, samples_per_tissue=3,
                           regions=40, depth_min=15, depth_max=30)


@pytest.fixture(scope="session")
def structured_cohort(tmp_path_factory):
    """The `structured` preset (8 tissues, 3 subtypes, subtype_mix and ASM regions) shrunk to
    40 regions, 3 samples per tissue, depth 10-20 (a few seconds)."""
    out = tmp_path_factory.mktemp("sim") / "structured"
    return simulate_cohort(out, preset="structured", seed=7, samples_per_tissue=3, regions=40,
                           depth_min=10, depth_max=20)

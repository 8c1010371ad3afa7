"""A small simulated cohort (4 tissues, 2 of them blood), its store and an untrained model.

The model is left untrained on purpose: these tests check the benchmark's and deconvolve's
plumbing through the oracle and the reference baselines, whose values are known; how well a
trained model deconvolves is checked on the tiny store (tests/deconvolve) and by the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.support import tinystore
from tissuebert.inference.checkpoint import save_checkpoint
from tissuebert.model.tissuebert import build_model
from tissuebert.prepare import prepare_store
from tissuebert.simulate import simulate_cohort
from tissuebert.store.store import Store

SIM_TISSUES = ["Blood-Granul", "Blood-T", "Liver-Hep", "Lung-Ep-Alveo"]


@dataclass
class SimCohort:
    cohort: Path
    store: Store
    checkpoint: Path


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> SimCohort:
    root = tmp_path_factory.mktemp("sim")
    cohort = simulate_cohort(root / "cohort", preset="small", seed=3, tissue_names=SIM_TISSUES, regions=40,
                             write_bam=False, samples_per_tissue=3, depth_min=15, depth_max=25,
                             donors=100000)  # many donors: no donor spans two splits (prepare refuses that)
    store_dir = prepare_store(cohort / "samples.tsv", cohort / "genome.fa", cohort / "regions.bed", root / "store",
                              cpg_index=cohort / "CpG.bed.gz")
    store = Store.open(store_dir)
    torch.manual_seed(0)
    config = tinystore.tiny_config()
    model = build_model(config.model, len(store.tissues), store.panel).eval()
    ckpt = root / "model.pt"
    save_checkpoint(ckpt, tinystore.checkpoint_state(model, config, store, 0))
    return SimCohort(cohort, store, ckpt)

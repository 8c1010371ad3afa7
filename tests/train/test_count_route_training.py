"""The count route in training. With train.count_source = stream the checkpoint's tally is exactly
the calls of the reads the run drew (one process, and torchrun with 2 ranks, where every rank
counts every rank's reads); with split (the default) it is the whole training split's.

The expected tally is recounted from the sampler's draws with the logistic regression's feature
function (data/features.py), not with the model's own (window, token) -> CpG mapping.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, RUN
from tissuebert.data.features import cpg_call_features
from tissuebert.data.sampler import TrainSampler, batch_rng
from tissuebert.inference.checkpoint import load_checkpoint
from tissuebert.store.store import Store

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`

COUNTS = ["model.cpg_counts=true", "data.cpg_dropout=0.0", "train.deterministic=true"]
STREAM = ["train.count_source=stream"]  # the tally grows with the drawn reads


def recount(store_root, *, seed: int, epochs: int, micro_per_epoch: int, batch_size: int, ranks: int) -> np.ndarray:
    store = Store.open(store_root)
    sampler = TrainSampler(store, split="train", seed=seed)
    panel = store.panel
    tally = np.zeros((2 * int(panel.cpg_ptr[-1]) + 1, len(store.tissues)))
    for epoch in range(epochs):
        for step in range(micro_per_epoch):
            for rank in range(ranks):
                file_pos, window_idx, row = sampler.draw_indices(batch_rng(seed, epoch, step, rank), batch_size)
                feats, valid = cpg_call_features(panel, window_idx, sampler.gather_calls(file_pos, row))
                labels = np.broadcast_to(sampler.file_tissue[file_pos][:, None], feats.shape)
                np.add.at(tally, (feats[valid], labels[valid]), 1)
    return tally


def test_the_tally_holds_every_call_the_run_trained_on(marker_store, tmp_path):
    run = tmp_path / "run"
    args = sets(*FAST, *COUNTS, *STREAM, "train.epochs=2", "train.steps_per_epoch=6")
    assert main(["train", "--store", str(marker_store), "--out", str(run), "--preset", "tiny", *args]) == 0
    state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
    tally = state[CKPT.MODEL]["counts.tally"].numpy()
    expected = recount(marker_store, seed=42, epochs=2, micro_per_epoch=6, batch_size=32, ranks=1)
    assert expected.sum() > 2 * 6 * 32  # reads carry several calls each
    np.testing.assert_array_equal(tally, expected)
    # the marker store's tissues: "meth" reads are methylated at every CpG, "unmeth" reads at none
    meth, unmeth = (Store.open(marker_store).tissues.index(t) for t in ("meth", "unmeth"))
    assert tally[0:-1:2, meth].sum() == 0 and tally[1::2, unmeth].sum() == 0  # U rows, M rows


def test_under_torchrun_every_rank_counts_every_ranks_reads(marker_store, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tissuebert", "train", "--store", str(marker_store), "--out", str(run),
           *sets(*FAST, *COUNTS, *STREAM, "train.epochs=1", "train.steps_per_epoch=4", "train.accum_steps=2")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tally = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")[CKPT.MODEL]["counts.tally"].numpy()
    # 4 optimiser steps x 2 micro-batches, on each of 2 ranks
    expected = recount(marker_store, seed=42, epochs=1, micro_per_epoch=8, batch_size=32, ranks=2)
    np.testing.assert_array_equal(tally, expected)


def _split_tally(store_root) -> np.ndarray:
    """Every training read with >= 1 call, counted straight from the store's files."""
    store = Store.open(store_root)
    panel = store.panel
    tally = np.zeros((2 * int(panel.cpg_ptr[-1]) + 1, len(store.tissues)))
    for rec in store.samples("train"):
        reads = store.reads(rec)
        feats, valid = cpg_call_features(panel, np.asarray(reads.window_idx), np.asarray(reads.calls))
        np.add.at(tally, (feats[valid], np.full(feats.shape, rec.tissue_id)[valid]), 1)
    return tally


def test_count_source_split_counts_the_whole_training_split_before_step_0(marker_store, tmp_path):
    """train.count_source = split: the tally is the split's every call from the first step on, and
    training adds nothing to it (each read's own calls are left out of its evidence instead)."""
    expected = _split_tally(marker_store)
    assert expected.sum() > 5_000  # every training read's calls, several per read
    run = tmp_path / "split"
    args = sets(*FAST, *COUNTS, "train.count_source=split", "train.epochs=2", "train.steps_per_epoch=5")
    assert main(["train", "--store", str(marker_store), "--out", str(run), "--preset", "tiny", *args]) == 0
    for name in ("best_loss.pt", "last.pt"):
        tally = load_checkpoint(run / RUN.CHECKPOINTS / name)[CKPT.MODEL]["counts.tally"].numpy()
        np.testing.assert_array_equal(tally, expected, err_msg=name)
    # stream (the default) after the same steps holds only the drawn reads: far fewer
    stream = tmp_path / "stream"
    args = sets(*FAST, *COUNTS, *STREAM, "train.epochs=2", "train.steps_per_epoch=5")
    assert main(["train", "--store", str(marker_store), "--out", str(stream), "--preset", "tiny", *args]) == 0
    drawn = load_checkpoint(stream / RUN.CHECKPOINTS / "last.pt")[CKPT.MODEL]["counts.tally"].numpy()
    assert drawn.sum() < expected.sum() / 3

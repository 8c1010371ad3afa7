"""fit_logreg on the tiny store: it learns to the Bayes ceiling, draws the transformer's own
batches, and saves / refuses like a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support import tinystore
from tissuebert.data.eval_set import build_eval_reads
from tissuebert.data.sampler import TrainSampler
from tissuebert.errors import CheckpointError
from tissuebert.inference import logreg
from tissuebert.store.sample import unpack_calls


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tinystore.build_store(tmp_path_factory.mktemp("logreg") / "store")


def _balanced_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[labels == t] == t) for t in np.unique(labels)]))


def test_logreg_learns_to_the_bayes_ceiling(store):
    torch.set_num_threads(1)
    fit = logreg.fit_logreg(store)  # default budget: 3 passes over 3,600 training reads
    assert fit.settings["n_reads"] == 64 * -(-3 * 3600 // 64)
    assert fit.class_prior.tolist() == pytest.approx([1 / 3] * 3)
    reads = build_eval_reads(store, "test", max_reads_per_sample=None, seed=0)
    pred = fit.logits(store.panel, reads.window_idx, reads.calls).argmax(axis=1)
    oracle = tinystore.oracle_loglik(reads.window_idx, unpack_calls(reads.calls, 6)).argmax(axis=1)
    bal, bal_oracle = _balanced_accuracy(pred, reads.labels), _balanced_accuracy(oracle, reads.labels)
    # chance is 1/3 and the exact likelihoods reach ~0.59 on these 1,800 reads. The classes are
    # linearly separable in (window, CpG, call) features up to the fragment-state mixture, so the
    # fit should match the oracle; 0.03 is ~2.5 sd of a 1,800-read accuracy (the two classifiers
    # share the reads, so their difference is tighter still)
    assert bal_oracle > 0.55
    assert abs(bal - bal_oracle) < 0.03
    # a window's unmethylated calls point to the tissue it marks: W[U] - W[M] is largest there
    weight = fit.module.weight.weight.detach().numpy()  # (2 * CpGs, T)
    first_cpg = store.panel.cpg_ptr[:-1]
    u_minus_m = weight[2 * first_cpg] - weight[2 * first_cpg + 1]  # (W, T)
    assert np.array_equal(u_minus_m.argmax(axis=1), np.arange(tinystore.N_WINDOWS) % 3)


def test_fit_draws_the_training_loops_micro_batches(store, monkeypatch):
    seen = []
    real = logreg.cpg_call_features

    def spy(panel, window_idx, packed):
        seen.append((window_idx.copy(), np.asarray(packed).copy()))
        return real(panel, window_idx, packed)

    monkeypatch.setattr(logreg, "cpg_call_features", spy)
    logreg.fit_logreg(store, n_reads=64 * 60, seed=3)
    sampler = TrainSampler(store, seed=3)
    per_epoch = sampler.steps_per_epoch(64, 1, 1)  # 3,600 reads / 64 = 56 micro-batches an epoch
    assert per_epoch == 56 and len(seen) == 60 + 1  # + one call for the temperature's held-back reads
    for k in (0, 55, 56, 59):  # across the epoch boundary: epoch 1, step 0 after epoch 0, step 55
        batch = sampler.batch(k // per_epoch, k % per_epoch, 64)
        expected_calls = sampler.gather_calls(batch.file_pos, batch.row)
        assert np.array_equal(seen[k][0], batch.window_idx)
        assert np.array_equal(seen[k][1], expected_calls)


def test_state_round_trip_and_panel_check(store, tmp_path):
    fit = logreg.fit_logreg(store, n_reads=640, lr=0.05)
    reads = build_eval_reads(store, "val", max_reads_per_sample=50, seed=0)
    path = tmp_path / "logreg.pt"
    torch.save(fit.state_dict(), path)
    again = logreg.LogRegFit.from_state(torch.load(path, weights_only=True))
    assert again.tissues == tinystore.TISSUES and again.panel_hash == store.panel_hash
    np.testing.assert_array_equal(again.logits(store.panel, reads.window_idx, reads.calls),
                                  fit.logits(store.panel, reads.window_idx, reads.calls))
    other = tinystore.make_panel(seed=9)  # other DNA: another panel hash
    with pytest.raises(CheckpointError, match="panel"):
        fit.logits(other, reads.window_idx, reads.calls)
    assert fit.settings["lr"] == 0.05 and fit.settings["n_reads"] == 640


def test_default_learning_rate_and_budget():
    assert logreg.auto_lr(1717, 192_000) == pytest.approx(2 / (3000 * (1 - (1 - 1 / 1717) ** 64)))  # ~0.018
    assert logreg.auto_lr(10, 10**9) == logreg.LR_RANGE[0] and logreg.auto_lr(10**6, 64) == logreg.LR_RANGE[1]
    assert logreg.default_reads(1000) == 3000
    assert logreg.default_reads(10**8) == logreg.DEFAULT_MAX_READS

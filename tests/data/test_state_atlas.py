"""The fragment-state atlas (data/state_atlas.py): EM on the training split, checked against a
plain per-read Python EM, against a store whose states are known, and as the model's start."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support.atlas import calls_from_files, head_by_hand, head_output
from tissuebert.config import load_config
from tissuebert.data.features import cpg_call_features
from tissuebert.data.sampler import TrainSampler
from tissuebert.data.state_atlas import fit_state_atlas, split_reads
from tissuebert.model.tissuebert import build_model
from tissuebert.store.sample import unpack_calls
from tissuebert.testing.synthetic import build_marker_store


def _python_em(store, n_states: int, iterations: int):
    """EM with dicts and loops over the store's training reads (their calls read straight from the files)."""
    panel, reads = store.panel, calls_from_files(store)
    n_cpgs, n_t = int(panel.cpg_ptr[-1]), len(store.tissues)
    theta = {(g, k): 0.05 + 0.9 * k / (n_states - 1) for g in range(n_cpgs) for k in range(n_states)}
    pi = {(w, t, k): 1.0 / n_states for w in range(panel.n_windows) for t in range(n_t) for k in range(n_states)}
    for _ in range(iterations):
        share = {key: 0.0 for key in pi}
        meth = {key: 0.0 for key in theta}
        called = {key: 0.0 for key in theta}
        for w, t, calls in reads:
            joint = [math.log(pi[w, t, k]) + sum(math.log(theta[g, k] if m else 1 - theta[g, k]) for g, m in calls)
                     for k in range(n_states)]
            top = max(joint)
            z = sum(math.exp(j - top) for j in joint)
            for k in range(n_states):
                r = math.exp(joint[k] - top) / z
                share[w, t, k] += r
                for g, m in calls:
                    called[g, k] += r
                    meth[g, k] += r * m
        for w in range(panel.n_windows):
            for t in range(n_t):
                total = sum(share[w, t, k] + 1.0 for k in range(n_states))
                for k in range(n_states):
                    pi[w, t, k] = (share[w, t, k] + 1.0) / total
        theta = {key: min(max((meth[key] + 0.5) / (called[key] + 1.0), 1e-4), 1 - 1e-4) for key in theta}
    return theta, pi


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    beta = np.array([[0.9, 0.2, 0.5, 0.1], [0.1, 0.8, 0.5, 0.9], [0.5, 0.5, 0.1, 0.6]])  # (T, W)
    return build_marker_store(tmp_path_factory.mktemp("atlas") / "s", tissues=("a", "b", "c"), n_windows=4,
                              reads_per_sample=60, beta=beta, seed=4)


@pytest.mark.parametrize("iterations", [1, 3])
def test_em_equals_a_plain_per_read_em(mixed_store, iterations):
    theta, pi = fit_state_atlas(TrainSampler(mixed_store), 3, iterations=iterations)
    ref_theta, ref_pi = _python_em(mixed_store, 3, iterations)
    assert theta.shape == (int(mixed_store.panel.cpg_ptr[-1]), 3) and pi.shape == (4, 3, 3)
    weight = split_reads(TrainSampler(mixed_store))[-1]  # identical reads are fitted as one weighted row
    assert weight.max() > 1 and weight.size < weight.sum()
    for (g, k), value in ref_theta.items():
        assert theta[g, k] == pytest.approx(value, abs=1e-9)
    for (w, t, k), value in ref_pi.items():
        assert pi[w, t, k] == pytest.approx(value, abs=1e-9)


def test_em_recovers_two_clean_states(tmp_path):
    """Tissue "meth" methylates every CpG, "unmeth" none: two states, one per tissue."""
    beta = np.stack([np.ones(6), np.zeros(6)])
    store = build_marker_store(tmp_path / "s", tissues=("meth", "unmeth"), n_windows=6, reads_per_sample=2000,
                               beta=beta, seed=1)
    theta, pi = fit_state_atlas(TrainSampler(store), 2, iterations=20)
    calls = np.zeros(theta.shape[0])
    for rec in store.samples("train"):
        r = store.reads(rec)
        feature, valid = cpg_call_features(store.panel, np.asarray(r.window_idx), np.asarray(r.calls))
        np.add.at(calls, feature[valid] // 2, 1)
    seen = calls >= 60  # a state's CpG called c times sits 0.5 / (c + 1) off 0 or 1 (the half-call prior)
    assert seen.sum() > 20
    assert np.all(theta[seen, 0] < 0.05) and np.all(theta[seen, 1] > 0.95)  # state 0 U, state 1 M
    assert np.all(pi[:, 0, 1] > 0.95) and np.all(pi[:, 1, 0] > 0.95)


def test_the_model_starts_from_the_fit(mixed_store):
    theta, pi = fit_state_atlas(TrainSampler(mixed_store), 3, iterations=2)
    cfg = load_config("tiny", overrides=["model.fragment_states=3", "model.state_emissions=shared",
                                         "train.state_source=split"])
    model = build_model(cfg.model, 3, mixed_store.panel)
    model.set_states(theta, pi)
    with pytest.raises(ValueError, match="theta of shape"):
        model.set_states(theta[:-1], pi)
    # the head's output for one read: log sum_k pi[w, t, k] prod_j p(call_j | k), by hand
    panel = mixed_store.panel
    reads = mixed_store.reads(mixed_store.samples("train")[0])
    w = int(np.asarray(reads.window_idx)[0])
    codes = unpack_calls(np.asarray(reads.calls)[:1], panel.max_cpgs)[0]
    expected = head_by_hand(panel, w, codes, np.log(pi[w]), lambda g, t, k: theta[g, k])
    got = head_output(model, panel, w, codes, cfg.model.hidden)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_state_source_split_needs_the_head():
    with pytest.raises(Exception, match="model.fragment_states"):
        load_config("tiny", overrides=["model.fragment_states=0"])


@pytest.mark.slow  # end to end: a short training run
def test_training_keeps_the_fitted_tables_and_trains_the_correction(mixed_store, tmp_path):
    """train.state_source = split: after training, the checkpoint's emission and prior tables are
    the EM fit itself (log theta, log(1 - theta), log pi, recomputed here from a fresh fit), while
    the encoder's per-token correction, zero at the start, has moved."""
    from tests.support.trainhelpers import FAST, sets
    from tissuebert.cli.app import main
    from tissuebert.constants import CKPT, RUN
    from tissuebert.inference.checkpoint import load_checkpoint

    run = tmp_path / "run"
    args = sets(*FAST, "model.fragment_states=3", "model.state_emissions=shared", "train.state_source=split",
                "train.epochs=2", "train.steps_per_epoch=5")
    assert main(["train", "--store", str(mixed_store.root), "--out", str(run), "--preset", "tiny", *args]) == 0
    weights = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")[CKPT.MODEL]
    theta, pi = fit_state_atlas(TrainSampler(mixed_store), 3)
    emission = weights["states.emission.weight"].double().numpy()
    np.testing.assert_allclose(emission[0:-1:2], np.log1p(-theta), rtol=1e-6, atol=1e-6)  # U calls
    np.testing.assert_allclose(emission[1:-1:2], np.log(theta), rtol=1e-6, atol=1e-6)  # M calls
    assert np.all(emission[-1] == 0)  # the padding row
    prior = weights["states.prior.weight"].double().numpy().reshape(pi.shape)
    np.testing.assert_allclose(prior, np.log(pi), rtol=1e-6, atol=1e-6)
    assert float(weights["states.token.weight"].abs().max()) > 1e-4  # trained away from its zero start


@pytest.mark.slow  # end to end: a short training run
def test_training_with_auto_emissions_keeps_the_chosen_fit(mixed_store, tmp_path):
    """train.state_tissue_prior = auto (the tiny default): the checkpoint's emission table is the
    fit `choose_state_atlas` keeps on the store's validation reads, tissue by tissue."""
    from tests.support.trainhelpers import FAST, sets
    from tissuebert.cli.app import main
    from tissuebert.constants import CKPT, RUN
    from tissuebert.inference.checkpoint import load_checkpoint
    from tissuebert.train.atlas_choice import choose_state_atlas

    run = tmp_path / "run"
    args = sets(*FAST, "model.fragment_states=3", "model.state_emissions=tissue", "train.state_tissue_prior=auto",
                "train.state_source=split", "train.epochs=1", "train.steps_per_epoch=3")
    assert main(["train", "--store", str(mixed_store.root), "--out", str(run), "--preset", "tiny", *args]) == 0
    weights = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")[CKPT.MODEL]
    theta, pi, chosen, _ = choose_state_atlas(TrainSampler(mixed_store), TrainSampler(mixed_store, split="val"), 3)
    if theta.ndim == 2:
        theta = np.repeat(theta[:, None, :], 3, axis=1)
    emission = weights["states.emission.weight"].double().numpy()  # (features, T x K), column t K + k
    assert emission.shape == (2 * theta.shape[0] + 1, 9)
    np.testing.assert_allclose(emission[1:-1:2], np.log(theta).reshape(theta.shape[0], 9), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(emission[0:-1:2], np.log1p(-theta).reshape(theta.shape[0], 9), rtol=1e-6, atol=1e-6)
    prior = weights["states.prior.weight"].double().numpy().reshape(pi.shape)
    np.testing.assert_allclose(prior, np.log(pi), rtol=1e-6, atol=1e-6)

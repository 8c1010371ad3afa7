"""Per-tissue emissions of the fragment-state atlas (model.state_emissions = tissue): the EM fit
against a plain per-read Python EM, its shared limit, the held-out choice between shared and
per-tissue tables, and the model's head against the likelihood written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support.atlas import calls_from_files, head_by_hand, head_output
from tissuebert.config import load_config
from tissuebert.data.sampler import TrainSampler
from tissuebert.data.state_atlas import atlas_loglik, atlas_tissue_loglik, fit_state_atlas, split_reads
from tissuebert.model.tissuebert import build_model
from tissuebert.store.sample import unpack_calls
from tissuebert.testing.synthetic import build_marker_store
from tissuebert.train.atlas_choice import choose_state_atlas, mixture_error


def _python_em(store, n_states: int, iterations: int, a: float):
    """Per-tissue EM with dicts and loops: theta[g, t, k] = (m[g,t,k] + a s[g,k]) / (n[g,t,k] + a),
    s[g, k] = (m[g,k] + 0.5) / (n[g,k] + 1) pooled over the tissues."""
    panel, reads = store.panel, calls_from_files(store)
    n_cpgs, n_t = int(panel.cpg_ptr[-1]), len(store.tissues)
    theta = {(g, t, k): 0.05 + 0.9 * k / (n_states - 1) for g in range(n_cpgs) for t in range(n_t)
             for k in range(n_states)}
    pi = {(w, t, k): 1.0 / n_states for w in range(panel.n_windows) for t in range(n_t) for k in range(n_states)}
    for _ in range(iterations):
        share = {key: 0.0 for key in pi}
        meth = {key: 0.0 for key in theta}
        called = {key: 0.0 for key in theta}
        for w, t, calls in reads:
            joint = [math.log(pi[w, t, k]) + sum(math.log(theta[g, t, k] if m else 1 - theta[g, t, k])
                                                 for g, m in calls) for k in range(n_states)]
            top = max(joint)
            z = sum(math.exp(j - top) for j in joint)
            for k in range(n_states):
                r = math.exp(joint[k] - top) / z
                share[w, t, k] += r
                for g, m in calls:
                    called[g, t, k] += r
                    meth[g, t, k] += r * m
        for w in range(panel.n_windows):
            for t in range(n_t):
                total = sum(share[w, t, k] + 1.0 for k in range(n_states))
                for k in range(n_states):
                    pi[w, t, k] = (share[w, t, k] + 1.0) / total
        new = {}
        for g in range(n_cpgs):
            for k in range(n_states):
                s = (sum(meth[g, t, k] for t in range(n_t)) + 0.5) / (sum(called[g, t, k] for t in range(n_t)) + 1.0)
                for t in range(n_t):
                    new[g, t, k] = min(max((meth[g, t, k] + a * s) / (called[g, t, k] + a), 1e-4), 1 - 1e-4)
        theta = new
    return theta, pi


@pytest.fixture(scope="module")
def graded_store(tmp_path_factory):
    """Three tissues whose reads methylate every CpG independently at 0.2, 0.5 and 0.8: two states
    shared by the tissues cannot make the middle one (a mix of a low and a high state is not
    independent calls at 0.5); each tissue's own two states can."""
    beta = np.repeat(np.array([[0.2], [0.5], [0.8]]), 5, axis=1)
    return build_marker_store(tmp_path_factory.mktemp("graded") / "s", tissues=("low", "mid", "high"),
                              n_windows=5, reads_per_sample=300, beta=beta, seed=7,
                              splits={"train": 2, "val": 2, "test": 1})


@pytest.mark.parametrize("a", [0.5, 20.0])
def test_per_tissue_em_equals_a_plain_per_read_em(graded_store, a):
    theta, pi = fit_state_atlas(TrainSampler(graded_store), 2, iterations=2, tissue_prior=a)
    ref_theta, ref_pi = _python_em(graded_store, 2, 2, a)
    assert theta.shape == (int(graded_store.panel.cpg_ptr[-1]), 3, 2) and pi.shape == (5, 3, 2)
    for (g, t, k), value in ref_theta.items():
        assert theta[g, t, k] == pytest.approx(value, abs=1e-9)
    for (w, t, k), value in ref_pi.items():
        assert pi[w, t, k] == pytest.approx(value, abs=1e-9)


def test_an_infinite_prior_is_the_shared_fit(graded_store):
    sampler = TrainSampler(graded_store)
    shared_theta, shared_pi = fit_state_atlas(sampler, 2, iterations=5)
    theta, pi = fit_state_atlas(sampler, 2, iterations=5, tissue_prior=1e12)
    for t in range(3):
        np.testing.assert_allclose(theta[:, t], shared_theta, atol=1e-8)
    np.testing.assert_allclose(pi, shared_pi, atol=1e-8)


def test_held_out_mixtures_choose_per_tissue_emissions_where_they_are_needed(graded_store):
    train, val = TrainSampler(graded_store), TrainSampler(graded_store, split="val")
    theta, pi, chosen, scores = choose_state_atlas(train, val, 2, iterations=30)
    assert set(scores) == {None, 100.0}
    assert chosen is not None and theta.ndim == 3
    errors = {a: err for a, (err, _) in scores.items()}
    assert errors[chosen] == min(errors.values()) and errors[chosen] < 0.7 * errors[None]
    # the per-read score beside it is the held-out likelihood, recomputed read by read
    total = 0.0
    reads = calls_from_files(graded_store, "val")
    for w, t, calls in reads:
        terms = [math.log(pi[w, t, k]) + sum(math.log(theta[g, t, k] if m else 1 - theta[g, t, k]) for g, m in calls)
                 for k in range(2)]
        total += np.logaddexp.reduce(terms)
    assert scores[chosen][1] == pytest.approx(total / len(reads), abs=1e-9)
    assert atlas_loglik(theta, pi, split_reads(val)) == pytest.approx(scores[chosen][1], abs=1e-12)


def test_mixture_error_is_small_for_the_true_likelihood_and_large_without_one(graded_store):
    """The store's own generative likelihood (independent calls at 0.2 / 0.5 / 0.8) recovers
    held-out mixtures at infinite depth up to the val reads' sampling noise; a likelihood that
    says nothing leaves EM at the uniform start, |1/3 - p| on average."""
    reads = split_reads(TrainSampler(graded_store, split="val"))
    _, _, meth, valid, _ = reads
    beta = np.array([0.2, 0.5, 0.8])
    m = (meth & valid).sum(1)[:, None]
    u = (~meth & valid).sum(1)[:, None]
    true = m * np.log(beta)[None] + u * np.log1p(-beta)[None]
    good = mixture_error(true, reads, 3)
    flat = mixture_error(np.zeros_like(true), reads, 3)
    assert good < 0.04 and flat > 0.15
    # per-tissue atlas likelihoods of the same reads, tissue by tissue, match the read-level formula
    theta, pi = fit_state_atlas(TrainSampler(graded_store), 2, iterations=3, tissue_prior=30.0)
    loglik = atlas_tissue_loglik(theta, pi, reads)
    cell, cpg = reads[0], reads[1]
    for i in (0, len(cell) // 2, len(cell) - 1):
        for t in range(3):
            terms = [math.log(pi[cell[i] // 3, t, k]) + sum(
                math.log(theta[cpg[i, j], t, k] if meth[i, j] else 1 - theta[cpg[i, j], t, k])
                for j in range(cpg.shape[1]) if valid[i, j]) for k in range(2)]
            assert loglik[i, t] == pytest.approx(np.logaddexp.reduce(terms), abs=1e-9)


def test_the_head_with_per_tissue_tables_is_the_atlas_likelihood(graded_store):
    theta, pi = fit_state_atlas(TrainSampler(graded_store), 2, iterations=3, tissue_prior=10.0)
    cfg = load_config("tiny", overrides=["model.fragment_states=2", "model.state_emissions=tissue",
                                         "train.state_source=split"])
    model = build_model(cfg.model, 3, graded_store.panel)
    with pytest.raises(ValueError, match="theta of shape"):
        model.set_states(theta[:, 0], pi)  # shared tables into a per-tissue head
    model.set_states(theta, pi)
    panel = graded_store.panel
    rec = graded_store.samples("train")[1]
    reads = graded_store.reads(rec)
    codes_all = unpack_calls(np.asarray(reads.calls)[:4], panel.max_cpgs)
    for i in range(4):
        w = int(np.asarray(reads.window_idx)[i])
        expected = head_by_hand(panel, w, codes_all[i], np.log(pi[w]), lambda g, t, k: theta[g, t, k])
        got = head_output(model, panel, w, codes_all[i], cfg.model.hidden)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_per_tissue_settings_are_checked():
    with pytest.raises(Exception, match="model.state_emissions = tissue needs the fragment-state head"):
        load_config("tiny", overrides=["model.fragment_states=0", "train.state_source=learned",
                                       "model.state_emissions=tissue"])
    with pytest.raises(Exception, match="train.state_tissue_prior must be 'auto' or a number"):
        load_config("tiny", overrides=["train.state_tissue_prior=0"])
    assert load_config("tiny", overrides=["train.state_tissue_prior=30"]).train.state_tissue_prior == 30.0
    with pytest.raises(ValueError, match="per-tissue emission prior must be > 0"):
        fit_state_atlas(None, 2, tissue_prior=-1.0)


def test_a_fit_continues_exactly_from_its_start(graded_store):
    """Five iterations equal three, then two more from where they ended; a shared start is every
    tissue's start when the continuation has per-tissue emissions."""
    sampler = TrainSampler(graded_store)
    reads = split_reads(sampler)
    for a in (None, 20.0):
        whole = fit_state_atlas(sampler, 2, iterations=5, tissue_prior=a, reads=reads)
        part = fit_state_atlas(sampler, 2, iterations=3, tissue_prior=a, reads=reads)
        rest = fit_state_atlas(sampler, 2, iterations=2, tissue_prior=a, reads=reads, start=part)
        np.testing.assert_allclose(rest[0], whole[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(rest[1], whole[1], rtol=0, atol=1e-12)
    shared = fit_state_atlas(sampler, 2, iterations=3, reads=reads)
    one = fit_state_atlas(sampler, 2, iterations=1, tissue_prior=20.0, reads=reads, start=shared)
    by_hand = fit_state_atlas(sampler, 2, iterations=1, tissue_prior=20.0, reads=reads,
                              start=(np.repeat(shared[0][:, None, :], 3, axis=1), shared[1]))
    np.testing.assert_array_equal(one[0], by_hand[0])
    with pytest.raises(ValueError, match="start theta"):
        fit_state_atlas(sampler, 2, iterations=1, reads=reads, start=one)


def test_auto_without_validation_reads_keeps_shared_emissions(tmp_path, caplog):
    """`train` runs the choice on the validation split; a store without one gets the shared fit in
    every tissue's columns, and a warning that says how to ask for per-tissue emissions."""
    from tissuebert.train.setup import prime_states

    beta = np.repeat(np.array([[0.2], [0.5], [0.8]]), 5, axis=1)
    store = build_marker_store(tmp_path / "s", tissues=("low", "mid", "high"), n_windows=5, reads_per_sample=100,
                               beta=beta, seed=3, splits={"train": 1})
    cfg = load_config("tiny", overrides=["model.fragment_states=2", "model.state_emissions=tissue"])
    model = build_model(cfg.model, 3, store.panel)
    sampler = TrainSampler(store)
    with caplog.at_level("WARNING"):
        prime_states(model, sampler, "split", "auto")
    assert "keeps shared emissions" in caplog.text and "train.state_tissue_prior" in caplog.text
    theta, pi = fit_state_atlas(sampler, 2)
    emission = model.states.emission.weight.detach().double().numpy()  # (features, T x K)
    np.testing.assert_allclose(emission[1:-1:2], np.log(np.tile(theta, (1, 3))), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.states.prior.weight.detach().double().numpy().reshape(pi.shape), np.log(pi),
                               rtol=1e-6, atol=1e-6)

"""EM mixture deconvolution: exactness, agreement with a generic optimiser, bootstrap coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from tissuebert.deconvolve import bootstrap_proportions, em_proportions, likelihoods_from_logits
from tissuebert.deconvolve.em import mixture_loglik


def categorical_model(rng: np.random.Generator, n_tissues: int, n_patterns: int, concentration: float = 0.3):
    """p(pattern | tissue): each tissue's read patterns follow its own categorical distribution."""
    return rng.dirichlet(np.full(n_patterns, concentration), size=n_tissues)  # (T, K)


def test_em_exact_on_expected_counts_of_a_large_mixture():
    # The limit of an infinitely large mixture: every pattern weighted by its exact mixture
    # probability. The MLE is then the true proportion vector itself, so EM must return it to
    # its convergence tolerance, not to a sampling error.
    rng = np.random.default_rng(0)
    probs = categorical_model(rng, 6, 64)
    truth = np.array([0.5, 0.2, 0.15, 0.1, 0.04, 0.01])
    weights = 1e7 * (truth @ probs)  # (K,) expected read count of each pattern
    est = em_proportions(np.log(probs.T), weights=weights, tol=1e-10, max_iter=100000)
    np.testing.assert_allclose(est, truth, atol=1e-6)
    assert est.sum() == pytest.approx(1.0, abs=1e-12)


def test_em_with_close_tissues_still_converges_to_the_truth():
    # Two nearly identical tissues (like blood subtypes) make plain EM crawl; the accelerated
    # iteration must still reach the exact answer within the iteration budget.
    rng = np.random.default_rng(1)
    base = rng.dirichlet(np.full(40, 0.5))
    probs = np.stack([base, 0.97 * base + 0.03 * rng.dirichlet(np.full(40, 0.5)), rng.dirichlet(np.full(40, 0.5))])
    truth = np.array([0.3, 0.6, 0.1])
    est = em_proportions(np.log(probs.T), weights=truth @ probs, tol=1e-12, max_iter=20000)
    np.testing.assert_allclose(est, truth, atol=1e-6)


def test_em_is_invariant_to_per_read_constants_and_matches_a_generic_optimiser():
    rng = np.random.default_rng(2)
    n_reads, n_tissues = 3000, 4
    loglik = rng.normal(size=(n_reads, n_tissues)) * 2
    shifted = loglik + rng.normal(size=(n_reads, 1)) * 50  # per-read constants must not matter
    est = em_proportions(loglik, tol=1e-12)
    np.testing.assert_allclose(em_proportions(shifted, tol=1e-12), est, atol=1e-9)

    # the same maximum found by a softmax-parametrised quasi-Newton search
    def neg(theta):
        pi = np.exp(theta - theta.max()); pi /= pi.sum()
        return -mixture_loglik(loglik, pi)
    res = minimize(neg, np.zeros(n_tissues), method="BFGS", options={"gtol": 1e-9})
    pi_ref = np.exp(res.x - res.x.max()); pi_ref /= pi_ref.sum()
    np.testing.assert_allclose(est, pi_ref, atol=1e-4)
    assert mixture_loglik(loglik, est) >= mixture_loglik(loglik, pi_ref) - 1e-8


def test_weights_equal_repeated_reads():
    rng = np.random.default_rng(3)
    loglik = rng.normal(size=(50, 3))
    counts = rng.integers(1, 6, size=50)
    expanded = np.repeat(loglik, counts, axis=0)
    np.testing.assert_allclose(em_proportions(loglik, weights=counts, tol=1e-12),
                               em_proportions(expanded, tol=1e-12), atol=1e-9)


def test_likelihoods_from_logits_divides_out_the_training_prior():
    # A classifier trained with prior q outputs posteriors q_t p(x|t) / Z. Build such logits from
    # known likelihoods and a skewed prior: dividing the prior out must give back log p(x|t) up to a
    # per-read constant, and EM on it must match EM on the true likelihoods.
    rng = np.random.default_rng(4)
    probs = categorical_model(rng, 3, 20)
    prior = np.array([0.6, 0.3, 0.1])
    logits = np.log(probs.T * prior) + 7.0  # (K, T); softmax of it is the posterior under `prior`
    ll = likelihoods_from_logits(logits, prior)
    diff = ll - np.log(probs.T)
    np.testing.assert_allclose(diff - diff[:, :1], 0.0, atol=1e-10)
    truth = np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(em_proportions(ll, weights=truth @ probs, tol=1e-12), truth, atol=1e-6)
    # without dividing the prior out, the estimate is biased towards the frequent training class
    biased = em_proportions(np.log(probs.T * prior), weights=truth @ probs, tol=1e-12)
    assert biased[0] > truth[0] + 0.05


def test_bootstrap_intervals_cover_the_truth():
    # 100 mixtures of 4 tissues, 2,000 reads each, drawn from a known categorical likelihood model.
    # A 95% percentile interval should cover ~95% of components; the issue asks for >= 90%, which
    # also absorbs the binomial noise of 400 components (sd ~1.1 points) and the percentile
    # method's small-sample bias.
    rng = np.random.default_rng(5)
    n_tissues, n_patterns, n_reads = 4, 24, 2000
    probs = categorical_model(rng, n_tissues, n_patterns, concentration=0.5)
    covered, total = 0, 0
    for _ in range(100):
        truth = rng.dirichlet(np.ones(n_tissues))
        tissue = rng.choice(n_tissues, size=n_reads, p=truth)
        pattern = (rng.random(n_reads)[:, None] > np.cumsum(probs[tissue], axis=1)).sum(axis=1)
        counts = np.bincount(np.minimum(pattern, n_patterns - 1), minlength=n_patterns)
        loglik = np.log(probs.T)
        est = em_proportions(loglik, weights=counts)
        low, high, reps = bootstrap_proportions(loglik, weights=counts, n_boot=200, seed=int(rng.integers(1 << 30)),
                                                estimate=est)
        assert reps.shape == (200, n_tissues)
        covered += int(np.sum((low <= truth) & (truth <= high)))
        total += n_tissues
    coverage = covered / total
    print(f"bootstrap 95% interval coverage: {coverage:.3f} over {total} components")
    assert coverage >= 0.90


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="weights"):
        em_proportions(np.zeros((3, 2)), weights=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        em_proportions(np.full((2, 2), -np.inf))
    with pytest.raises(ValueError, match="class_prior"):
        likelihoods_from_logits(np.zeros((2, 3)), np.array([0.5, 0.5]))

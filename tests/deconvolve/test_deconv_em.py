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
        pi = np.exp(theta - theta.max())
        pi /= pi.sum()
        return -mixture_loglik(loglik, pi)
    res = minimize(neg, np.zeros(n_tissues), method="BFGS", options={"gtol": 1e-9})
    pi_ref = np.exp(res.x - res.x.max())
    pi_ref /= pi_ref.sum()
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


def _draw_counts(rng, probs, truth, n_reads):
    """Pattern counts of ``n_reads`` reads drawn from the mixture ``truth`` of the categorical model."""
    n_patterns = probs.shape[1]
    tissue = rng.choice(probs.shape[0], size=n_reads, p=truth)
    pattern = (rng.random(n_reads)[:, None] > np.cumsum(probs[tissue], axis=1)).sum(axis=1)
    return np.bincount(np.minimum(pattern, n_patterns - 1), minlength=n_patterns)


def test_bootstrap_coverage_is_near_the_nominal_level():
    # 150 mixtures of 4 tissues, 2,000 reads each, drawn from a known categorical likelihood model:
    # 600 components. A 95% percentile interval must cover between 92% and 98% of them. The band is
    # two-sided: too narrow intervals (a 90% level: 0.887 here) and too wide ones (resampling the
    # unique patterns instead of the reads: ~1.0) both fail. Its half-width, 3 points, is ~3.4 binomial
    # standard deviations at n = 600 (sd = sqrt(0.95 * 0.05 / 600) = 0.009); the percentile method's
    # small-sample undercoverage puts the correct code at 0.938 with this seed.
    rng = np.random.default_rng(5)
    n_tissues, n_patterns = 4, 24
    probs = categorical_model(rng, n_tissues, n_patterns, concentration=0.5)
    loglik = np.log(probs.T)
    covered, total = 0, 0
    for _ in range(150):
        truth = rng.dirichlet(np.ones(n_tissues))
        counts = _draw_counts(rng, probs, truth, 2000)
        est = em_proportions(loglik, weights=counts)
        low, high, reps = bootstrap_proportions(loglik, weights=counts, n_boot=200, seed=int(rng.integers(1 << 30)),
                                                estimate=est)
        assert reps.shape == (200, n_tissues)
        covered += int(np.sum((low <= truth) & (truth <= high)))
        total += n_tissues
    coverage = covered / total
    print(f"bootstrap 95% interval coverage: {coverage:.3f} over {total} components")
    assert 0.92 <= coverage <= 0.98


def test_bootstrap_width_is_the_same_for_collapsed_and_expanded_reads():
    # Collapsing identical reads into (pattern, count) rows must not change what is resampled: the
    # N reads. Bootstrapping the expanded reads one by one is the independent reference. The widths
    # of two bootstraps of 400 replicates differ by sampling noise only (a few percent: the sd of a
    # 2.5% quantile of 400 draws is ~6% of the interval's width); resampling the 24 unique rows
    # instead of the 3,000 reads widens the intervals about 8-fold.
    rng = np.random.default_rng(6)
    probs = categorical_model(rng, 3, 24, concentration=0.5)
    truth = np.array([0.5, 0.3, 0.2])
    counts = _draw_counts(rng, probs, truth, 3000)
    loglik = np.log(probs.T)
    expanded = np.repeat(loglik, counts, axis=0)  # (3000, T): one row per read
    assert expanded.shape[0] == 3000 and np.count_nonzero(counts) <= 24
    low_c, high_c, _ = bootstrap_proportions(loglik, weights=counts, n_boot=400, seed=1)
    low_e, high_e, _ = bootstrap_proportions(expanded, n_boot=400, seed=2)
    width_c, width_e = high_c - low_c, high_e - low_e
    # the independent scale: a proportion's standard error from n = 3,000 reads is ~0.01-0.02
    assert np.all((width_e > 0.02) & (width_e < 0.15)), width_e
    np.testing.assert_allclose(width_c, width_e, rtol=0.2)
    centre_c, centre_e = (high_c + low_c) / 2, (high_e + low_e) / 2
    np.testing.assert_allclose(centre_c, centre_e, atol=0.01)


def test_squarem_acceleration_is_on():
    # Two nearly identical tissues: plain EM (written out here) needs ~10,500 iterations to get within
    # 1e-6 of the truth and is still 1e-3 away after 200; the SQUAREM-accelerated EM must get there
    # within 200 map evaluations. Switching the acceleration off only makes EM slower, so only an
    # iteration budget can see it.
    rng = np.random.default_rng(1)
    base = rng.dirichlet(np.full(40, 0.5))
    probs = np.stack([base, 0.97 * base + 0.03 * rng.dirichlet(np.full(40, 0.5)), rng.dirichlet(np.full(40, 0.5))])
    truth = np.array([0.3, 0.6, 0.1])
    weights = truth @ probs
    lik = probs.T  # (K, T)
    plain = np.full(3, 1 / 3)
    for _ in range(200):
        plain = plain * ((weights / (lik @ plain)) @ lik) / weights.sum()
    assert np.max(np.abs(plain - truth)) > 1e-3  # the budget is too small for plain EM
    est = em_proportions(np.log(lik), weights=weights, tol=1e-12, max_iter=200)
    np.testing.assert_allclose(est, truth, atol=1e-6)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="weights"):
        em_proportions(np.zeros((3, 2)), weights=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        em_proportions(np.full((2, 2), -np.inf))
    with pytest.raises(ValueError, match="class_prior"):
        likelihoods_from_logits(np.zeros((2, 3)), np.array([0.5, 0.5]))


def _close_tissues():
    """The crawling problem of the two tests above: (K, T) pattern likelihoods, weights, truth."""
    rng = np.random.default_rng(1)
    base = rng.dirichlet(np.full(40, 0.5))
    probs = np.stack([base, 0.97 * base + 0.03 * rng.dirichlet(np.full(40, 0.5)), rng.dirichlet(np.full(40, 0.5))])
    truth = np.array([0.3, 0.6, 0.1])
    return probs.T, truth @ probs, truth


def test_max_iter_bounds_the_work():
    # one accelerated round (2 EM steps + the stabilising step = 3 map evaluations) passes max_iter=2:
    # EM must stop there, far from the optimum it reaches without the cap
    lik, weights, truth = _close_tissues()
    full = em_proportions(np.log(lik), weights=weights, tol=1e-12, max_iter=20000)
    capped = em_proportions(np.log(lik), weights=weights, tol=1e-12, max_iter=2)
    np.testing.assert_allclose(full, truth, atol=1e-6)
    assert np.max(np.abs(capped - truth)) > 1e-3
    assert mixture_loglik(np.log(lik), capped, weights=weights) < mixture_loglik(np.log(lik), full, weights=weights)


def test_reads_processed_in_chunks_give_the_same_answer(monkeypatch):
    # more than 2^18 reads are processed chunk by chunk; shrink the chunk so 50 reads make 7 chunks
    # (the last one short) and compare with one pass
    from tissuebert.deconvolve import em

    rng = np.random.default_rng(5)
    loglik = np.log(rng.dirichlet(np.ones(4), size=50))
    w = rng.integers(1, 4, size=50).astype(np.float64)
    one_pass = em.em_proportions(loglik, weights=w, tol=1e-12)
    ll = em.mixture_loglik(loglik, one_pass, weights=w)
    scaled = em.scaled_likelihoods(loglik)
    monkeypatch.setattr(em, "_CHUNK", 8)
    np.testing.assert_array_equal(em.scaled_likelihoods(loglik), scaled)
    np.testing.assert_allclose(em.em_proportions(loglik, weights=w, tol=1e-12), one_pass, atol=1e-9)
    assert em.mixture_loglik(loglik, one_pass, weights=w) == pytest.approx(ll, rel=1e-12)


def test_loglik_that_is_not_a_matrix_is_refused():
    for bad in (np.zeros(5), np.zeros((2, 3, 4))):
        with pytest.raises(ValueError, match=r"loglik must be \(R, T\)"):
            em_proportions(bad)


def test_weights_of_another_length_are_refused():
    with pytest.raises(ValueError, match=r"weights must be \(3,\), got \(2,\)"):
        em_proportions(np.zeros((3, 2)), weights=np.ones(2))


def test_without_an_estimate_the_interval_is_the_plain_percentiles():
    rng = np.random.default_rng(9)
    loglik = rng.normal(size=(300, 3))
    low, high, reps = bootstrap_proportions(loglik, n_boot=30, seed=0, ci_level=0.9)
    np.testing.assert_allclose(low, np.quantile(reps, 0.05, axis=0))
    np.testing.assert_allclose(high, np.quantile(reps, 0.95, axis=0))
    assert np.all(high - low > 0.01)  # a real spread, so the two bounds are not the same number

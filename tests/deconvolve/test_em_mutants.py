"""deconvolve/em.py cases the mutation run (issue 17) showed untested: inputs at the edges of what EM
accepts (no tissue column, one tissue, a read no tissue explains, reads of weight 0), the scaled
likelihoods and l(pi) against closed forms, how max_iter and tol count map evaluations, what one SQUAREM
round computes (against a plain re-implementation of the EM map and of the SqS3 step), and
bootstrap_proportions' defaults.

Mutants each test kills (src/tissuebert/deconvolve/em.py, lines as of this file's commit; each applied
by hand, the test run and failing, then reverted):

- test_a_loglik_without_tissue_columns_is_refused: 38 NumberReplacer (`shape[1] < 1` -> `shape[0]`),
  38 `< 1` -> `< 0`, -> `is 1`.
- test_a_read_without_a_finite_loglik_is_refused: 40 NumberReplacer (`max(axis=1)` -> `axis=0`).
- test_scaled_likelihoods_are_each_row_over_its_maximum: 45 `block - block.max` -> `+`,
  45 NumberReplacer (`axis=1` -> `axis=0`).
- test_one_tissue_takes_the_whole_mixture: 71 `pi * acc / self.total` -> `%`; 72 `new / new.sum()` -> `%`;
  38 `shape[1] < 1` -> `<= 1`, -> `< 2`.
- test_a_tissue_no_read_supports_gets_zero_and_reads_of_weight_zero_cost_nothing: 54 AddNot
  (`if not not keep.all()`), 53 `weights > 0` -> `>= 0`, 71 `/ self.total` -> `%`.
- test_mixture_loglik_is_the_weighted_log_mixture_density: 64 NumberReplacer (`loglik = 0.0` -> `1.0`,
  `-1.0`).
- test_max_iter_counts_map_evaluations: 86 NumberReplacer (`n_iter = 0` -> `1`), 87 `n_iter < max_iter`
  -> `<=`, 90 NumberReplacer (`n_iter += 2` -> `3`), 103 NumberReplacer (`n_iter += 1` -> `2`).
- test_a_round_with_a_short_sqs3_step_is_three_plain_em_steps: 98 USub -> UAdd (`min(..., -1.0)` ->
  `+1.0`), 98 NumberReplacer (`-1.0` -> `-2.0`, `-0.0`).
- test_a_round_is_the_sqs3_extrapolation_then_one_em_step: 101 NumberReplacer (`2 * alpha` -> `3`, `1`),
  101 `alpha * alpha * v` -> `alpha * alpha / v`, 98 NumberReplacer (`-1.0` -> `-2.0`).
- test_bootstrap_defaults_are_200_replicates_of_seed_0_at_tol_1e6_and_a_95_interval: 153 NumberReplacer
  (`seed: int = 0` -> `1`; `tol = 1e-6` -> `1.000001`; `ci_level = 0.95` -> `1.95`), 152 NumberReplacer
  (`n_boot = 200` -> `201`).
- test_a_start_of_zeros_is_the_uniform_start: 81 `1.0 / pi.size` -> `1.0 | pi.size` (a TypeError on the
  only path that reaches it).
- test_a_move_of_exactly_tol_has_converged: 93 `np.max(np.abs(r)) <= tol` -> `<`.
- test_a_round_that_ends_within_tol_of_its_start_stops_there: 107 `candidate - pi` -> `candidate * pi`,
  -> `candidate // pi`, and `<= tol` -> `is tol` (the round's own convergence check, which no earlier
  test reached: in 400 random problems it never fired, so a start on the boundary was searched for).

Killed after the whole-module run (issue 17; 44 of its 79 survivors, confirmed by a second whole run;
lines of em.py as of this file's commit, each applied by hand with the tests failing):

- test_small_problems_are_converted_to_float64_once_and_large_ones_chunk_by_chunk: 57, every mutant of
  `lik.size <= _CHUNK * 16` (the comparison made `<`, `==`, `!=`, `>`, `>=`, `is`, `is not`, negated; the
  product made `+ - / // % ** << >> & | ^`, `* 15`, `* 17`: 21) and `_CHUNK = 1 + 18` / `1 | 18` /
  `1 ^ 18` / `1 * 18`.
- test_one_step_over_a_large_matrix_holds_one_float64_chunk_at_a_time: 29, `_CHUNK = 1 << 18` -> `2 << 18`,
  `1 << 19`, `1 << 17` (the peak is two or half a chunk).
- test_the_likelihood_never_drops_from_one_round_to_the_next: 106, `isfinite(ll_ext) and ll_ext >= ll0`
  -> `or`, `>=` -> `!=` / `is not` (a worse extrapolation kept).
- test_at_the_default_tol_em_stops_on_a_round_whose_first_step_barely_moved: 94, `<= tol` -> `== tol`;
  128, `tol = 1e-8` -> `-0.99999999`.
- test_weights_longer_than_the_reads_are_refused: 118, `w.shape != (n_reads,)` -> `<`.
- test_weights_that_sum_to_zero_are_refused: 122, `w.sum() <= 0` -> `< 0`, `<= -1`.
- test_a_single_read_goes_to_the_tissue_that_explains_it_best: 138, `n_reads == 0` -> `== 1`.
- test_weights_and_options_are_keyword_only: 127, 147, 153, `*,` -> `/,`.
- test_max_iter_defaults_to_1000_map_evaluations: 127, 154, `max_iter = 1000` -> `999`, `1001`.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from tissuebert.deconvolve import em
from tissuebert.deconvolve.em import bootstrap_proportions, em_proportions, mixture_loglik, scaled_likelihoods


def plain_em_step(pi: np.ndarray, lik: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The EM map written out: pi_t <- pi_t sum_r w_r L[r, t] / (sum_t' pi_t' L[r, t']) / sum w."""
    new = pi * ((weights / (lik @ pi)) @ lik) / weights.sum()
    return new / new.sum()


def sqs3_round(start: np.ndarray, lik: np.ndarray, weights: np.ndarray) -> tuple:
    """One SQUAREM round written out: the two plain EM steps pi1 and pi2, the first move r, the SqS3
    step length alpha = min(-|r| / |v|, -1) (v = pi2 - 2 pi1 + pi) and the extrapolation
    pi - 2 alpha r + alpha^2 v, kept at least 1/1000 of pi and renormalised."""
    pi1 = plain_em_step(start, lik, weights)
    pi2 = plain_em_step(pi1, lik, weights)
    r, v = pi1 - start, pi2 - 2 * pi1 + start
    alpha = min(-np.linalg.norm(r) / np.linalg.norm(v), -1.0)
    jump = np.maximum(start - 2 * alpha * r + alpha**2 * v, start * 1e-3)
    return pi1, pi2, r, alpha, jump / jump.sum()


def count_map_evaluations(monkeypatch) -> list:
    """Spy on the EM map: one list entry per evaluation (the cost that max_iter and tol govern)."""
    calls = []
    step = em._Mixture.step
    monkeypatch.setattr(em._Mixture, "step", lambda self, pi: calls.append(1) or step(self, pi))
    return calls


def close_tissues() -> tuple[np.ndarray, np.ndarray]:
    """Two nearly identical tissues and a third: (K, T) pattern likelihoods and expected counts."""
    rng = np.random.default_rng(1)
    base = rng.dirichlet(np.full(40, 0.5))
    probs = np.stack([base, 0.97 * base + 0.03 * rng.dirichlet(np.full(40, 0.5)), rng.dirichlet(np.full(40, 0.5))])
    return probs.T, np.array([0.3, 0.6, 0.1]) @ probs


# Each read explained by one tissue only (the other's likelihood is 0): read r's source is known, so
# the MLE is each tissue's share of the weight, reached by the first EM step from any interior start.
ONE_SOURCE = np.array([[0.0, -np.inf], [-np.inf, 0.0]])


def test_a_loglik_without_tissue_columns_is_refused():
    with pytest.raises(ValueError, match=r"loglik must be \(R, T\), got shape \(3, 0\)"):
        em_proportions(np.zeros((3, 0)))


def test_a_read_without_a_finite_loglik_is_refused():
    # every tissue column has a finite entry, but read 1 has none: it must be refused, not turn into NaN
    loglik = np.array([[0.0, -1.0], [-np.inf, -np.inf], [-2.0, 0.0]])
    with pytest.raises(ValueError, match="finite log-likelihood"):
        em_proportions(loglik)


def test_scaled_likelihoods_are_each_row_over_its_maximum():
    # L / max_t L per row, worked out by hand: row 0 is (2, 8, 4) / 8; row 1 is exp(-1000 - (-1000)) ...
    loglik = np.log(np.array([[2.0, 8.0, 4.0], [1.0, 1.0, 1.0]]))
    loglik[1] = [-1000.0, -1001.0, -1003.0]  # exp() of these underflows: only the scaled values are finite
    out = scaled_likelihoods(loglik)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.25, 1.0, 0.5], [1.0, np.exp(-1.0), np.exp(-3.0)]], rtol=1e-6)


def test_one_tissue_takes_the_whole_mixture():
    # a one-tissue reference is a valid (degenerate) input: the whole mixture is that tissue
    loglik = np.log(np.array([[0.2], [0.5], [0.01], [0.9]]))
    est = em_proportions(loglik, weights=np.array([3.0, 1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(est, [1.0])


def test_a_tissue_no_read_supports_gets_zero_and_reads_of_weight_zero_cost_nothing():
    np.testing.assert_allclose(em_proportions(ONE_SOURCE, weights=np.array([3.0, 1.0])), [0.75, 0.25], atol=1e-15)
    # read 1 (tissue 1's only read) drawn 0 times, as in a bootstrap replicate: tissue 1 gets exactly 0,
    # and the read of weight 0, which only tissue 1 explains, must not turn the fit into 0/0 = NaN
    np.testing.assert_array_equal(em_proportions(ONE_SOURCE, weights=np.array([3.0, 0.0])), [1.0, 0.0])


def test_mixture_loglik_is_the_weighted_log_mixture_density():
    # l(pi) = sum_r w_r log(sum_t pi_t L[r, t]) less the per-read constants log max_t L[r, t] that the
    # scaling drops; reads of weight 0 add nothing
    rng = np.random.default_rng(11)
    loglik = rng.normal(size=(6, 3)) * 3
    weights = np.array([2.0, 0.0, 1.0, 3.0, 1.0, 0.5])
    pi = np.array([0.2, 0.5, 0.3])
    expected = float(weights @ (logsumexp(loglik + np.log(pi), axis=1) - loglik.max(axis=1)))
    assert mixture_loglik(loglik, pi, weights=weights) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert mixture_loglik(loglik, pi) == pytest.approx(float(np.sum(
        logsumexp(loglik + np.log(pi), axis=1) - loglik.max(axis=1))), rel=1e-6, abs=1e-6)


def test_max_iter_counts_map_evaluations(monkeypatch):
    # A round is two EM steps and, when the two moved differently, one stabilising step after the
    # extrapolation: 3 map evaluations. max_iter is checked before each round, so on a problem that
    # does not converge in a few rounds, max_iter = 1..3 allows one round (3 evaluations), 4..6 two (6),
    # and 0 none (the start, uniform, comes back).
    lik, weights = close_tissues()
    calls = count_map_evaluations(monkeypatch)
    for max_iter, evaluations in [(0, 0), (1, 3), (2, 3), (3, 3), (4, 6), (6, 6), (7, 9)]:
        calls.clear()
        est = em_proportions(np.log(lik), weights=weights, tol=1e-12, max_iter=max_iter)
        assert len(calls) == evaluations, max_iter
    assert em_proportions(np.log(lik), weights=weights, max_iter=0).tolist() == pytest.approx([1 / 3] * 3, abs=1e-15)
    assert est.sum() == pytest.approx(1.0)


def test_a_round_with_a_short_sqs3_step_is_three_plain_em_steps():
    # SqS3's step length is alpha = -|r| / |v| (r = pi1 - pi, v = pi2 - 2 pi1 + pi), never shorter than
    # alpha = -1, which extrapolates to pi - 2(-1) r + v = pi2: the round is then three plain EM steps.
    # Started near the boundary, EM's second step here moves much more than its first (|v| > |r|).
    lik = np.array([[0.9, 0.1], [0.1, 0.9]])
    weights = np.array([90.0, 10.0])
    start = np.array([0.01, 0.99])
    pi1 = plain_em_step(start, lik, weights)
    pi2 = plain_em_step(pi1, lik, weights)
    r, v = pi1 - start, pi2 - 2 * pi1 + start
    assert np.linalg.norm(r) / np.linalg.norm(v) < 0.8  # the premise: SqS3 would step shorter than -1
    expected = plain_em_step(pi2, lik, weights)
    est = em_proportions(None, lik=lik, weights=weights, init=start, max_iter=1, tol=1e-12)
    np.testing.assert_allclose(est, expected, atol=1e-12)


def test_a_round_is_the_sqs3_extrapolation_then_one_em_step():
    # Varadhan & Roland's SqS3: alpha = -|r| / |v| (here < -1: plain EM crawls), the extrapolation
    # pi - 2 alpha r + alpha^2 v, kept at least 1/1000 of pi and renormalised, then one EM step. The
    # extrapolated point's likelihood is above the start's, so the round keeps it.
    lik, weights = close_tissues()
    _, pi2, _, alpha, jump = sqs3_round(np.full(3, 1 / 3), lik, weights)
    assert alpha < -1.5  # the premise: a step well past plain EM's alpha = -1 (here -1.69)
    expected = plain_em_step(jump, lik, weights)
    est = em_proportions(None, lik=lik, weights=weights, max_iter=1, tol=1e-12)
    np.testing.assert_allclose(est, expected, atol=1e-12)
    assert np.max(np.abs(est - pi2)) > 1e-4  # and not where two plain steps and one more would be


def test_bootstrap_defaults_are_200_replicates_of_seed_0_at_tol_1e6_and_a_95_interval():
    # bootstrap_proportions' documented defaults: n_boot=200, seed=0, ci_level=0.95, tol=1e-6. The first
    # replicates are redrawn by hand: N = sum(w) reads drawn again from a generator seeded 0 (a
    # multinomial over the rows), each refitted by EM from the uniform start (no estimate given).
    rng = np.random.default_rng(12)
    loglik = rng.normal(size=(40, 3))
    weights = rng.integers(1, 5, size=40).astype(np.float64)
    low, high, reps = bootstrap_proportions(loglik, weights=weights)
    assert reps.shape == (200, 3)
    draws = np.random.default_rng(0)
    for b in range(3):
        counts = draws.multinomial(int(weights.sum()), weights / weights.sum()).astype(np.float64)
        np.testing.assert_allclose(reps[b], em_proportions(loglik, weights=counts, tol=1e-6), atol=1e-12)
    np.testing.assert_allclose(low, np.quantile(reps, 0.025, axis=0))
    np.testing.assert_allclose(high, np.quantile(reps, 0.975, axis=0))


def test_a_start_of_zeros_is_the_uniform_start():
    # an `init` with nothing positive carries no information: EM starts from uniform (1/T each)
    est = em_proportions(ONE_SOURCE, weights=np.array([3.0, 1.0]), init=np.zeros(2))
    np.testing.assert_allclose(est, [0.75, 0.25], atol=1e-15)


def test_a_move_of_exactly_tol_has_converged(monkeypatch):
    # "stops when no proportion moves by more than tol": from uniform, the first EM step on ONE_SOURCE
    # with weights (3, 1) moves each proportion by exactly 0.25 (to 0.75, 0.25; all binary fractions),
    # so with tol = 0.25 EM stops after the round's two plain steps, before any extrapolation
    calls = count_map_evaluations(monkeypatch)
    est = em_proportions(ONE_SOURCE, weights=np.array([3.0, 1.0]), tol=0.25)
    np.testing.assert_array_equal(est, [0.75, 0.25])
    assert len(calls) == 2


def test_a_round_that_ends_within_tol_of_its_start_stops_there(monkeypatch):
    # Started at the boundary of a fourth tissue, the first plain step moves a proportion by 0.183 but
    # the round's stabilised point ends only 0.123 from the start (SqS3 with alpha = -1.07, computed
    # below as in the test above). With tol = 0.15 the round has converged: EM returns that point after
    # its 3 map evaluations, not after another round.
    lik = np.array([[0.9994, 1.0, 0.0262, 0.0002], [0.00001, 0.0, 0.9716, 0.0043], [0.0006, 0.0, 0.0022, 0.9956]])
    weights = np.array([17.0, 17.0, 4.0])
    init = np.array([0.3156, 0.3295, 0.3549, 0.0])
    start = np.maximum(init, 1e-6)  # EM lifts a zero start off the boundary, which it could never leave
    start /= start.sum()
    _, _, r, _, jump = sqs3_round(start, lik, weights)
    assert weights @ np.log(lik @ jump) >= weights @ np.log(lik @ start)  # the round keeps its extrapolation
    expected = plain_em_step(jump, lik, weights)
    assert np.max(np.abs(r)) > 0.15 >= np.max(np.abs(expected - start))  # the premise, 0.183 and 0.123
    calls = count_map_evaluations(monkeypatch)
    est = em_proportions(None, lik=lik, weights=weights, init=init, tol=0.15)
    np.testing.assert_allclose(est, expected, atol=1e-12)
    assert len(calls) == 3


# ---- the whole-module run's survivors (2026-12-01; see the module docstring's second list) ----


def test_small_problems_are_converted_to_float64_once_and_large_ones_chunk_by_chunk():
    # "bounds the float64 temporaries": a likelihood matrix of up to 16 chunks of 2^18 rows' worth of
    # entries (2^22) is copied to float64 once; a larger one stays the caller's float32 array (no copy)
    # and each step converts one chunk at a time. The boundary is checked on both sides.
    for rows, tissues, copied in [(10, 3, True), (1 << 20, 4, True), (1 << 20, 4, False), (1, 5, True)]:
        if not copied:
            rows += 1  # 2^22 + 4 entries: one row past the boundary
        lik = np.ones((rows, tissues), dtype=np.float32)
        mix = em._Mixture(lik, np.ones(rows))
        assert (mix.lik.dtype == np.float64) is copied, (rows, tissues)
        assert (mix.lik is lik) is not copied


def test_one_step_over_a_large_matrix_holds_one_float64_chunk_at_a_time():
    # 2^20 reads x 8 tissues (float32, 32 MB, above the copy threshold): a step converts 2^18 rows at a
    # time, so its largest temporary is one 16 MB float64 chunk; its peak must lie between one chunk
    # and two (a chunk twice as large, or the whole matrix at once, would be 32 MB or more).
    import tracemalloc

    rows, tissues = 1 << 20, 8
    lik = np.random.default_rng(0).random((rows, tissues), dtype=np.float32) + 0.1
    mix = em._Mixture(lik, np.ones(rows))
    chunk_bytes = (1 << 18) * tissues * 8
    tracemalloc.start()
    try:
        mix.step(np.full(tissues, 1 / tissues))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chunk_bytes <= peak < 2 * chunk_bytes, peak / chunk_bytes


def test_the_likelihood_never_drops_from_one_round_to_the_next(monkeypatch):
    # "every accepted step is checked to not lower l(pi)": on close tissues SQUAREM's extrapolation often
    # overshoots (15 of this run's rounds land below their start); those rounds fall back to the plain
    # steps, so l(pi) at the start of each round never decreases.
    lik, weights = close_tissues()
    lls = []
    step = em._Mixture.step
    monkeypatch.setattr(em._Mixture, "step", lambda self, pi: (out := step(self, pi), lls.append(out[1]))[0])
    est = em_proportions(np.log(lik), weights=weights)
    starts, extrapolated = lls[0::3], lls[2::3]
    assert sum(e < s for s, e in zip(starts, extrapolated)) >= 5  # the premise: overshoots happen
    assert all(b >= a - 1e-12 for a, b in zip(starts, starts[1:]))
    np.testing.assert_allclose(est, [0.3, 0.6, 0.1], atol=1e-5)


def test_at_the_default_tol_em_stops_on_a_round_whose_first_step_barely_moved(monkeypatch):
    # the default tol (1e-8) is reached: on close tissues EM stops after 71 map evaluations, 23 full
    # rounds (3 each) and a last round whose first plain step moved no proportion by more than tol, so
    # it returns without extrapolating (2). Checked against a plain re-implementation of the loop.
    lik, weights = close_tissues()
    calls = count_map_evaluations(monkeypatch)
    est = em_proportions(np.log(lik), weights=weights)
    scaled = scaled_likelihoods(np.log(lik)).astype(np.float64)  # what EM works on

    def ll(p):
        return weights @ np.log(scaled @ p)

    n, pi = 0, np.full(3, 1 / 3)
    while True:
        pi1, pi2, r, _, jump = sqs3_round(pi, scaled, weights)
        n += 2
        if np.max(np.abs(r)) <= 1e-8:
            result = pi1
            break
        n += 1
        candidate = plain_em_step(jump, scaled, weights) if ll(jump) >= ll(pi) else pi2
        if np.max(np.abs(candidate - pi)) <= 1e-8:
            result = candidate
            break
        pi = candidate
    assert len(calls) == n and n % 3 == 2 and n < 100, n
    np.testing.assert_allclose(est, result, atol=1e-9)


def test_weights_longer_than_the_reads_are_refused():
    with pytest.raises(ValueError, match=r"weights must be \(3,\), got \(4,\)"):
        em_proportions(np.zeros((3, 2)), weights=np.ones(4))


def test_weights_that_sum_to_zero_are_refused():
    with pytest.raises(ValueError, match="weights sum to zero"):
        em_proportions(np.zeros((3, 2)), weights=np.zeros(3))


def test_a_single_read_goes_to_the_tissue_that_explains_it_best():
    # one read is a valid sample: the likelihood pi . L is largest with all mass on L's largest entry
    est = em_proportions(np.log(np.array([[0.1, 0.7, 0.2]])), tol=1e-12, max_iter=10_000)
    assert est.argmax() == 1 and est[1] > 0.999


def test_weights_and_options_are_keyword_only():
    # a positional second argument would be ambiguous (weights? proportions? n_boot?): refused
    loglik, w = np.zeros((3, 2)), np.ones(3)
    with pytest.raises(TypeError):
        em_proportions(loglik, w)
    with pytest.raises(TypeError):
        mixture_loglik(loglik, np.full(2, 0.5), w)
    with pytest.raises(TypeError):
        bootstrap_proportions(loglik, w)



def test_max_iter_defaults_to_1000_map_evaluations():
    # the documented cap (docs/deconvolution.md): em_proportions and the bootstrap's refits. Counting
    # evaluations cannot tell 999 from 1000 reliably (a round that reaches an exact fixed point takes 2,
    # not 3), so the defaults are read from the signatures
    import inspect

    for fn in (em_proportions, bootstrap_proportions):
        assert inspect.signature(fn).parameters["max_iter"].default == 1000, fn.__name__

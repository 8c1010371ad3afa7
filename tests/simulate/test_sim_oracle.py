"""The oracle is the simulator's exact likelihood: a proper distribution, equal to the
frequencies the simulator produces, and a good classifier and deconvolver."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from tests.support.simtools import oracle_mixture, pat_to_arrays, read_pat
from tissuebert.constants import WINDOW_BP
from tissuebert.simulate import load_truth, oracle_loglik, oracle_posterior
from tissuebert.simulate.reads import CALL_M, CALL_NONE, ReadSimulator


def _window_cpgs(truth, region, w=0):
    """1-based indices of the CpGs whose C is at base 0..147 of window w of a region."""
    start = truth.reg_start[region] + w * WINDOW_BP
    sel = (truth.cpg_chrom == truth.reg_chrom[region]) & (truth.cpg_pos >= start) & (truth.cpg_pos < start + 148)
    return np.flatnonzero(sel) + 1


def _block_cpgs(truth, block):
    return np.flatnonzero(truth.cpg_block == block) + 1


def test_likelihood_sums_to_one_over_all_patterns(small_cohort):
    """Exact enumeration: over all 2^K call patterns of a window's K CpGs (two or more blocks),
    sum p = 1 for every tissue; also for a set mixing block and background CpGs."""
    truth = load_truth(small_cohort)
    region = next(r for r in range(len(truth.reg_name)) if 4 <= _window_cpgs(truth, r).size <= 10
                  and np.unique(truth.cpg_block[_window_cpgs(truth, r) - 1]).size >= 2)
    cpgs = _window_cpgs(truth, region)
    for index_set in (cpgs, np.r_[cpgs[:3], np.flatnonzero(truth.cpg_block < 0)[:2] + 1]):
        patterns = np.array(list(itertools.product([0, 1], repeat=index_set.size)), dtype=np.uint8)
        index = np.broadcast_to(index_set, patterns.shape)
        total = np.exp(oracle_loglik(truth, index, patterns)).sum(axis=0)
        np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)
    # padding and no-calls contribute nothing
    one = oracle_loglik(truth, np.array([[cpgs[0], 0, cpgs[1]]]), np.array([[1, 1, 2]], dtype=np.uint8))
    ref = oracle_loglik(truth, np.array([[cpgs[0]]]), np.array([[1]], dtype=np.uint8))
    np.testing.assert_allclose(one, ref)


def _p_call(truth, j, state, call):
    """P(call | state) of CpG j (0-based), written out from the model's definition."""
    err, nc = truth.seq_error, truth.nonconversion
    q = truth.q[j, state]
    reads_c = q * (1 - err) + (1 - q) * (nc * (1 - err) + (1 - nc) * err / 3)
    p_m = reads_c / (1 - 2 * err / 3)
    return p_m if call == 1 else 1 - p_m


def test_likelihood_by_brute_force_over_states(small_cohort):
    """A read with 2 calls in each of two blocks: sum over the 3 x 3 block states of
    pi * pi * prod p(call | state), written out independently of the vectorised oracle."""
    truth = load_truth(small_cohort)
    blocks = next((b, b + 1) for b in range(truth.n_blocks - 1) if truth.blk_region[b] == truth.blk_region[b + 1]
                  and _block_cpgs(truth, b).size >= 2 and _block_cpgs(truth, b + 1).size >= 2)
    cpgs = np.r_[_block_cpgs(truth, blocks[0])[:2], _block_cpgs(truth, blocks[1])[:2]]
    calls = np.array([1, 0, 0, 0], dtype=np.uint8)
    got = oracle_loglik(truth, cpgs[None, :], calls[None, :])[0]
    for tid in range(len(truth.tissues)):
        total = 0.0
        for s0, s1 in itertools.product(range(3), repeat=2):
            prob = truth.pi[blocks[0], tid, s0] * truth.pi[blocks[1], tid, s1]
            for k, (j, call) in enumerate(zip(cpgs - 1, calls)):
                prob *= _p_call(truth, j, s0 if k < 2 else s1, call)
            total += prob
        assert got[tid] == pytest.approx(np.log(total), rel=1e-12)


def test_simulated_pattern_frequencies_match_the_oracle(small_cohort):
    """Reads that call all 4 CpGs of a set spanning two blocks: their pattern counts fit the
    oracle's probabilities (chi-square, 15 d.o.f.; the threshold 37.7 is the 0.999 quantile)."""
    truth = load_truth(small_cohort)
    b = next(b for b in range(truth.n_blocks - 1) if truth.blk_region[b] == truth.blk_region[b + 1]
             and truth.blk_type[b] != "background" and _block_cpgs(truth, b).size >= 2
             and _block_cpgs(truth, b + 1).size >= 2)
    cpgs = np.r_[_block_cpgs(truth, b)[-2:], _block_cpgs(truth, b + 1)[:2]]
    region = int(truth.blk_region[b])
    tid = truth.tissues.index("Neuron")
    sim = ReadSimulator(truth, sources=truth.pi[None, :, tid, :], weights=np.ones(1), depth=4000,
                        frag_mode=167, frag_max=400, rng=np.random.default_rng(3), only_regions=[region])
    counts: Counter = Counter()
    for ch in sim.chunks():
        for f in range(ch.n):
            idx = ch.cov_first[f] + np.arange(ch.ptr[f + 1] - ch.ptr[f]) + 1
            calls = ch.calls[ch.ptr[f]:ch.ptr[f + 1]]
            pos = np.searchsorted(idx, cpgs)
            if pos[-1] < idx.size and np.array_equal(idx[pos], cpgs) and np.all(calls[pos] != CALL_NONE):
                counts[tuple((calls[pos] == CALL_M).astype(int))] += 1
    patterns = np.array(list(itertools.product([0, 1], repeat=4)), dtype=np.uint8)
    probs = np.exp(oracle_loglik(truth, np.broadcast_to(cpgs, patterns.shape), patterns)[:, tid])
    n = sum(counts.values())
    assert n > 3000
    observed = np.array([counts[tuple(p)] for p in patterns.tolist()])
    expected = n * probs
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 37.7, (chi2, observed, expected.round(1))


def test_oracle_classifies_reads_and_recovers_mixture_proportions(small_cohort, tmp_path):
    """A 3-tissue mixture at depth 200: EM with the true likelihoods recovers the proportions
    within 0.04 each. Over 8 seeds on this 40-region panel the estimates' SD was <= 0.008 and
    the mean error <= 0.006 (the MLE of a zero proportion sits on the boundary), so 0.04 is
    ~5 SD; a likelihood off by the channel or the block structure biases the split of the
    sibling tissues (Blood-T/B, pancreas) by more than that."""
    truth, idx, calls, loglik, props, expected = oracle_mixture(
        small_cohort, {"Blood-T": 0.6, "Pancreas-Beta": 0.3, "Neuron": 0.1}, depth=200, seed=11,
        out_path=tmp_path / "mix.pat.gz")
    assert np.abs(props - expected).max() < 0.04, dict(zip(truth.tissues, props.round(3)))
    post = oracle_posterior(loglik)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    # a pure sample: most reads fall on blocks that do not tell its tissue apart, so per read
    # the Bayes classifier is only a few times better than chance (1/5); ties are broken at random
    idx, calls = pat_to_arrays(read_pat(small_cohort / "pat" / "Neuron_01.pat.gz"))
    post = oracle_posterior(oracle_loglik(truth, idx, calls))
    neuron = truth.tissues.index("Neuron")
    assert post.mean(axis=0).argmax() == neuron
    jitter = np.random.default_rng(0).random(post.shape) * 1e-9
    assert np.mean((post + jitter).argmax(axis=1) == neuron) > 1.5 / len(truth.tissues)

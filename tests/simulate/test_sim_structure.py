"""Latent fragment structure (cell subtypes, allele-specific methylation): the truth is what
the config says, the reads follow it, and the oracle is still the exact likelihood."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

import numpy as np
import pytest

from tests.support.simtools import oracle_mixture, pat_to_arrays, read_pat
from tissuebert.errors import ConfigError
from tissuebert.simulate import load_truth, oracle_loglik
from tissuebert.simulate.cohort import _build_truth
from tissuebert.simulate.params import resolve
from tissuebert.simulate.reads import CALL_M, CALL_NONE, ReadSimulator
from tissuebert.simulate.structure import SUBTYPE_MIX, SUBTYPE_MIX_U, latent_structure


def _p_call(truth, j, state, call):
    """P(call | state) of CpG j (0-based), written out from the model's definition."""
    err, nc = truth.seq_error, truth.nonconversion
    q = truth.q[j, state]
    reads_c = q * (1 - err) + (1 - q) * (nc * (1 - err) + (1 - nc) * err / 3)
    p_m = reads_c / (1 - 2 * err / 3)
    return p_m if call == 1 else 1 - p_m


def _block_cpgs(truth, block):
    return np.flatnonzero(truth.cpg_block == block) + 1


def _flat(truth):
    """The same truth with the latent classes dropped: blocks independent given the tissue."""
    return dataclasses.replace(truth, subtype_weight=None, latent_pi=None, region_asm=None)


def _region_blocks(truth, region, min_cpgs=2):
    return [b for b in np.flatnonzero(truth.blk_region == region) if _block_cpgs(truth, b).size >= min_cpgs]


def test_truth_holds_the_configured_structure(structured_cohort):
    """Subtype/allele profiles average back to the tissue profile exactly; with contrast 1 the
    split is the most polarised one (at most one subtype per block and tissue strictly between
    fully U and fully M); ASM regions (10% of 40 = 4) split every block as min(1, 2u) / max(0, 2u - 1);
    subtype_mix regions (50% = 20) have one U share in [0.35, 0.65] shared by every tissue."""
    truth = load_truth(structured_cohort)
    n_blocks, n_tissues, n_sub, n_alleles, _ = truth.latent_pi.shape
    assert (n_sub, n_alleles) == (3, 2) and truth.subtype_weight.shape == (n_tissues, 3)
    np.testing.assert_allclose(truth.subtype_weight.sum(axis=1), 1.0)
    weights, class_pi = truth.latent()
    np.testing.assert_allclose(np.einsum("tl,btls->bts", weights, class_pi), truth.pi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(class_pi.sum(axis=-1), 1.0, atol=1e-12)
    # allele 0 of non-ASM regions is the subtype itself; undo the allele split to get subtype U shares
    u_lat = truth.latent_pi[..., 0] / (truth.latent_pi[..., 0] + truth.latent_pi[..., 2])  # (B, T, K, A)
    asm_blk = truth.region_asm[truth.blk_region]
    assert truth.region_asm.sum() == 4
    np.testing.assert_allclose(u_lat[~asm_blk, ..., 0], u_lat[~asm_blk, ..., 1])
    u_sub = u_lat.mean(axis=-1)  # (min(1, 2u) + max(0, 2u - 1)) / 2 = u
    np.testing.assert_allclose(u_lat[asm_blk, ..., 0], np.minimum(1, 2 * u_sub[asm_blk]), atol=1e-12)
    np.testing.assert_allclose(u_lat[asm_blk, ..., 1], np.maximum(0, 2 * u_sub[asm_blk] - 1), atol=1e-12)
    strictly_between = ((u_sub > 1e-9) & (u_sub < 1 - 1e-9)).sum(axis=-1)  # (B, T)
    assert strictly_between.max() == 1
    mix = np.array([t == SUBTYPE_MIX for t in truth.blk_type])
    assert np.unique(truth.blk_region[mix]).size == 20
    labels = [line.split("\t")[4] for line in (structured_cohort / "regions.bed").read_text().splitlines()]
    assert [label.endswith("|asm") for label in labels] == truth.region_asm.tolist()
    u_tissue = truth.pi[..., 0] / (truth.pi[..., 0] + truth.pi[..., 2])
    assert np.ptp(u_tissue[mix], axis=1).max() < 1e-12
    assert SUBTYPE_MIX_U[0] <= u_tissue[mix].min() and u_tissue[mix].max() <= SUBTYPE_MIX_U[1]


def test_structure_comes_from_its_own_stream():
    """Same seed with and without subtypes/ASM: the same genome, panel, CpG levels and tissue
    profiles (the structure draws only from the 4th seed stream); contrast 0 gives subtypes
    equal to their tissue."""
    cfg_on = resolve("structured", regions=30)
    cfg_off = resolve("structured", regions=30, subtypes=1, asm_fraction=0.0)
    streams = np.random.SeedSequence(3).spawn(4)
    on, genome_on = _build_truth(cfg_on, np.random.default_rng(streams[0]), None, None, np.random.default_rng(streams[3]))
    off, genome_off = _build_truth(cfg_off, np.random.default_rng(streams[0]), None, None, np.random.default_rng(streams[3]))
    assert on.has_latent and not off.has_latent
    assert all(np.array_equal(a, b) for a, b in zip(genome_on.seqs, genome_off.seqs))
    np.testing.assert_array_equal(on.pi, off.pi)
    np.testing.assert_array_equal(on.q, off.q)
    _, flat_pi, _ = latent_structure(on.pi, on.blk_region, len(on.reg_name), subtypes=3, contrast=0.0,
                                     asm_fraction=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(flat_pi[:, :, :, 0], np.repeat(on.pi[:, :, None], 3, axis=2), atol=1e-12)


def test_structure_fields_are_validated():
    with pytest.raises(ConfigError, match="subtypes"):
        resolve("demo", subtypes=0)
    with pytest.raises(ConfigError, match="asm_fraction"):
        resolve("demo", asm_fraction=1.5)
    assert resolve("demo").subtypes == 1 and resolve("demo").asm_fraction == 0 and resolve("demo").subtype_regions == 0


def _brute_force_loglik(truth, cpgs, calls, tid):
    """log p(calls | tissue) by enumerating every latent class (subtype, allele) and every
    combination of block states explicitly: sum over (k, a, s_1..s_n) of
    w[t, k] / A * prod_b latent_pi[b, t, k, a, s_b] * prod_j p(call_j | s_block(j))."""
    blocks = sorted({int(truth.cpg_block[j - 1]) for j in cpgs if truth.cpg_block[j - 1] >= 0})
    _, _, n_sub, n_alleles, _ = truth.latent_pi.shape
    total = 0.0
    for k, a in itertools.product(range(n_sub), range(n_alleles)):
        for states in itertools.product(range(3), repeat=len(blocks)):
            prob = truth.subtype_weight[tid, k] / n_alleles
            for b, s in zip(blocks, states):
                prob *= truth.latent_pi[b, tid, k, a, s]
            for j, call in zip(cpgs - 1, calls):
                block = truth.cpg_block[j]
                state = states[blocks.index(block)] if block >= 0 else 0  # background: q equal in all states
                prob *= _p_call(truth, j, state, call)
            total += prob
    return np.log(total)


@pytest.mark.parametrize("kind", ["asm", "subtype_mix"])
def test_oracle_equals_brute_force_enumeration(structured_cohort, kind):
    """Three blocks of one region (ASM: 3 subtypes x 2 alleles x 27 state combinations), two
    calls each, plus a background CpG: the vectorised oracle equals the explicit sum for every
    tissue to 1e-12 relative; and the flat (independent-block) likelihood does not."""
    truth = load_truth(structured_cohort)
    regions = np.flatnonzero(truth.region_asm) if kind == "asm" else \
        np.unique(truth.blk_region[[t == SUBTYPE_MIX for t in truth.blk_type]])
    region = next(r for r in regions if len(_region_blocks(truth, r)) >= 3)
    blocks = _region_blocks(truth, region)[:3]
    background = np.flatnonzero(truth.cpg_block < 0)[0] + 1
    cpgs = np.r_[[_block_cpgs(truth, b)[:2] for b in blocks]].ravel()
    cpgs = np.r_[cpgs, background]
    rng = np.random.default_rng(0)
    for calls in (np.array([0, 0, 1, 1, 0, 0, 1]), rng.integers(0, 2, cpgs.size)):
        got = oracle_loglik(truth, cpgs[None, :], calls[None, :].astype(np.uint8))[0]
        want = [_brute_force_loglik(truth, cpgs, calls, tid) for tid in range(len(truth.tissues))]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        flat = oracle_loglik(_flat(truth), cpgs[None, :], calls[None, :].astype(np.uint8))[0]
        assert np.abs(flat - got).max() > 0.05


def test_likelihood_sums_to_one_with_latent_classes(structured_cohort):
    """Over all 2^K call patterns of the CpGs of an ASM region's first blocks, sum p = 1 for every tissue."""
    truth = load_truth(structured_cohort)
    region = next(r for r in np.flatnonzero(truth.region_asm) if len(_region_blocks(truth, r, 1)) >= 3)
    cpgs = np.concatenate([_block_cpgs(truth, b) for b in _region_blocks(truth, region, 1)])[:10]
    patterns = np.array(list(itertools.product([0, 1], repeat=cpgs.size)), dtype=np.uint8)
    total = np.exp(oracle_loglik(truth, np.broadcast_to(cpgs, patterns.shape), patterns)).sum(axis=0)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)


def _fragments_calling(chunks, cpgs):
    """(calls at ``cpgs`` (n, len) 0/1, latent class (n,)) of the fragments that call all of them."""
    rows, latent = [], []
    for ch in chunks:
        for f in range(ch.n):
            idx = ch.cov_first[f] + np.arange(ch.ptr[f + 1] - ch.ptr[f]) + 1
            calls = ch.calls[ch.ptr[f]:ch.ptr[f + 1]]
            pos = np.searchsorted(idx, cpgs)
            if pos[-1] < idx.size and np.array_equal(idx[pos], cpgs) and np.all(calls[pos] != CALL_NONE):
                rows.append((calls[pos] == CALL_M).astype(int))
                latent.append(ch.latent[f])
    return np.array(rows), np.array(latent)


def _pure_latent_reads(truth, tid, region, depth, seed):
    weights, class_pi = truth.latent()
    sim = ReadSimulator(truth, sources=class_pi[None, :, tid], weights=np.ones(1), latent_weights=weights[None, tid],
                        depth=depth, frag_mode=167, frag_max=400, rng=np.random.default_rng(seed),
                        only_regions=[region])
    return list(sim.chunks())


def _predicted_correlation(truth, p_obs, tid, cpgs_a, cpgs_b):
    """Model correlation of the methylated fractions of two blocks' CpGs on one fragment, from
    the truth's parameters: classes c with weight w_c; given c the blocks are independent, given
    a state the CpGs are (``p_obs`` (C, 3): P(call M | state))."""
    weights, class_pi = truth.latent()

    def moments(cpgs):
        b = int(truth.cpg_block[cpgs[0] - 1])
        p = p_obs[cpgs - 1]  # (n, 3)
        mean_s = p.mean(axis=0)  # E[fraction | state]
        sq_s = mean_s ** 2 + (p * (1 - p)).sum(axis=0) / len(cpgs) ** 2  # E[fraction^2 | state]
        return class_pi[b, tid] @ mean_s, class_pi[b, tid] @ sq_s  # (L,) each

    (ma, sa), (mb, sb) = moments(cpgs_a), moments(cpgs_b)
    w = weights[tid]
    mean_a, mean_b = w @ ma, w @ mb
    cov = w @ (ma * mb) - mean_a * mean_b
    return cov / np.sqrt((w @ sa - mean_a ** 2) * (w @ sb - mean_b ** 2))


@pytest.mark.parametrize("kind", ["asm", "subtype_mix"])
def test_cross_block_correlation_matches_the_structure(structured_cohort, kind):
    """Within fragments, the methylated fractions of two blocks of one region correlate as the
    latent structure predicts (chosen: the pair and tissue with the largest predicted |corr|;
    without structure it would be 0). ~2,000-4,000 fragments call every CpG of both blocks,
    so the correlation's SE is <= (1 - r^2) / sqrt(2000) < 0.023; 0.08 is > 3.5 SE. The
    observed latent classes also follow the subtype x allele weights (chi-square, 0.999 quantile)."""
    truth = load_truth(structured_cohort)
    regions = np.flatnonzero(truth.region_asm) if kind == "asm" else \
        np.unique(truth.blk_region[[t == SUBTYPE_MIX for t in truth.blk_type]])
    p_obs = truth.observed_meth_prob()
    best = None
    for region in regions:
        blocks = _region_blocks(truth, region)
        for a, b in itertools.combinations(blocks, 2):
            cpgs_a, cpgs_b = _block_cpgs(truth, a), _block_cpgs(truth, b)
            if cpgs_b[-1] - cpgs_a[0] > 6:  # keep both blocks within one fragment most of the time
                continue
            for tid in range(len(truth.tissues)):
                r = _predicted_correlation(truth, p_obs, tid, cpgs_a, cpgs_b)
                if best is None or abs(r) > abs(best[0]):
                    best = (r, region, tid, cpgs_a, cpgs_b)
    predicted, region, tid, cpgs_a, cpgs_b = best
    assert abs(predicted) > 0.4
    chunks = _pure_latent_reads(truth, tid, region, depth=3000, seed=5)
    rows, latent = _fragments_calling(chunks, np.r_[cpgs_a, cpgs_b])
    assert len(rows) > 2000
    frac_a, frac_b = rows[:, :cpgs_a.size].mean(axis=1), rows[:, cpgs_a.size:].mean(axis=1)
    observed = np.corrcoef(frac_a, frac_b)[0, 1]
    assert abs(observed - predicted) < 0.08, (observed, predicted)
    weights, _ = truth.latent()
    all_latent = np.concatenate([ch.latent for ch in chunks])
    counts = np.bincount(all_latent, minlength=weights.shape[1])
    expected = counts.sum() * weights[tid]
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 20.5, (counts, expected.round(1))  # 5 d.o.f.: 0.999 quantile 20.5


def test_pattern_frequencies_match_the_latent_oracle_not_the_flat_one(structured_cohort):
    """Reads calling 4 CpGs across two blocks of a subtype_mix region: their pattern counts fit
    the oracle (chi-square, 15 d.o.f., 0.999 quantile 37.7) and reject the independent-block
    likelihood with the same tissue profile (chi-square > 200)."""
    truth = load_truth(structured_cohort)
    mix_regions = np.unique(truth.blk_region[[t == SUBTYPE_MIX for t in truth.blk_type]])
    # the last 2 CpGs of a block and the first 2 of the next, within 4 CpG indices of each other
    candidates = ((r, np.r_[_block_cpgs(truth, a)[-2:], _block_cpgs(truth, b)[:2]])
                  for r in mix_regions for a, b in itertools.pairwise(_region_blocks(truth, r)))
    region, cpgs = next((r, c) for r, c in candidates if c[-1] - c[0] <= 4)
    patterns = np.array(list(itertools.product([0, 1], repeat=4)), dtype=np.uint8)
    index = np.broadcast_to(cpgs, patterns.shape)
    # the tissue whose latent and flat pattern probabilities differ most
    gap = np.abs(np.exp(oracle_loglik(truth, index, patterns)) - np.exp(oracle_loglik(_flat(truth), index, patterns)))
    tid = int(gap.sum(axis=0).argmax())
    chunks = _pure_latent_reads(truth, tid, region, depth=3000, seed=9)
    rows, _ = _fragments_calling(chunks, cpgs)
    counts = Counter(map(tuple, rows.tolist()))
    n = len(rows)
    assert n > 2000
    observed = np.array([counts[tuple(p)] for p in patterns.tolist()])

    def chi2(t):
        expected = n * np.exp(oracle_loglik(t, index, patterns)[:, tid])
        return float(((observed - expected) ** 2 / expected).sum())

    assert chi2(truth) < 37.7
    assert chi2(_flat(truth)) > 200


def test_mixture_reads_carry_the_latent_structure(structured_cohort, tmp_path):
    """A 3-tissue mixture at depth 100: EM with the exact likelihoods recovers the proportions
    within 0.05 each, and the reads are more likely under the latent model than under the same
    profiles with independent blocks (mean log-likelihood per read higher by > 0.02 nats; a
    mixture drawn without subtypes/alleles would favour the flat model)."""
    truth, idx, calls, loglik, props, expected = oracle_mixture(
        structured_cohort, {"Blood-T": 0.5, "Liver-Hep": 0.3, "Neuron": 0.2}, depth=100, seed=4,
        out_path=tmp_path / "mix.pat.gz")
    assert np.abs(props - expected).max() < 0.05, dict(zip(truth.tissues, props.round(3)))

    def mean_mix_loglik(ll):
        return float(np.mean(np.log(np.exp(ll) @ expected)))

    assert mean_mix_loglik(loglik) - mean_mix_loglik(oracle_loglik(_flat(truth), idx, calls)) > 0.02


def test_truth_files_round_trip_and_old_files_load(structured_cohort, small_cohort):
    """The structured truth reloads its latent arrays; a truth written without structure has
    none of the new keys (as every truth file written before them) and loads as one class."""
    truth = load_truth(structured_cohort)
    assert truth.has_latent and truth.region_asm.dtype == bool
    with np.load(structured_cohort / "truth" / "model.npz") as z:
        np.testing.assert_array_equal(z["latent_pi"], truth.latent_pi)
    with np.load(small_cohort / "truth" / "model.npz") as z:
        assert not {"subtype_weight", "latent_pi", "region_asm"} & set(z.files)
    old = load_truth(small_cohort)
    assert not old.has_latent
    weights, class_pi = old.latent()
    assert weights.shape == (len(old.tissues), 1) and np.array_equal(class_pi[:, :, 0], old.pi)


def test_cohort_samples_carry_the_latent_structure(structured_cohort):
    """Each tissue's first sample (own cells with sampled subtype weights and levels, plus blood
    contamination): its reads are more likely under the latent model than under the same
    profiles with independent blocks, by > 0.05 nats per read on average (measured 0.10-0.21
    over ~1,000-1,800 reads; reads drawn without the latent classes would make it <= 0 in
    expectation, since the flat model would then be the true one)."""
    truth = load_truth(structured_cohort)
    for path in sorted((structured_cohort / "pat").glob("*_01.pat.gz")):
        tid = truth.tissues.index(path.name.rsplit("_", 1)[0])
        idx, calls = pat_to_arrays(read_pat(path))
        gain = oracle_loglik(truth, idx, calls)[:, tid] - oracle_loglik(_flat(truth), idx, calls)[:, tid]
        assert gain.mean() > 0.05, (path.name, gain.mean())

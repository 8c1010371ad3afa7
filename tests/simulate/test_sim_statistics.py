"""Statistical checks of the generative model (fixed seeds; each tolerance says why)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.simtools import pat_to_arrays, read_pat
from tissuebert.simulate import load_truth
from tissuebert.simulate.cohort import design_samples
from tissuebert.simulate.markers import assign_states
from tissuebert.simulate.params import resolve
from tissuebert.simulate.reads import CALL_M, CALL_NONE, ReadSimulator
from tissuebert.simulate.tissues import DEFAULT_TISSUES, is_blood


def _pure_reads(truth, tissue, depth, seed):
    """All fragments of one tissue's pure profile, concatenated over chunks."""
    tid = truth.tissues.index(tissue)
    sim = ReadSimulator(truth, sources=truth.pi[None, :, tid, :], weights=np.ones(1), depth=depth,
                        frag_mode=167, frag_max=400, rng=np.random.default_rng(seed))
    return list(sim.chunks()), sim


def _block_table(chunks, truth):
    """Per (fragment, block): the block, its called CpG indices (0-based) and calls (1 M / 0 U)."""
    out = []
    for ch in chunks:
        for f in range(ch.n):
            calls = ch.calls[ch.ptr[f]:ch.ptr[f + 1]]
            idx = ch.cov_first[f] + np.arange(calls.size)
            block = truth.cpg_block[idx]
            for b in np.unique(block[(calls != CALL_NONE) & (block >= 0)]):
                keep = (block == b) & (calls != CALL_NONE)
                out.append((int(b), idx[keep], (calls[keep] == CALL_M).astype(float)))
    return out


@pytest.mark.parametrize("tissue", ["Blood-T", "Pancreas-Beta"])
def test_marker_methylation_matches_truth(small_cohort, tissue):
    """Per block, the mean over fragments of (methylated fraction - its expectation under the
    truth) is within 4.5 standard errors of 0. The SE is taken over fragments, because the CpGs
    of one fragment are correlated; with ~200 blocks a correct simulator exceeds 4.5 SE with
    probability ~1e-3, while a wrong state probability or channel shifts whole blocks."""
    truth = load_truth(small_cohort)
    chunks, sim = _pure_reads(truth, tissue, depth=150, seed=1)
    tid = truth.tissues.index(tissue)
    by_block: dict[int, list[float]] = {}
    for block, idx, meth in _block_table(chunks, truth):
        expected = float(truth.pi[block, tid] @ sim.p_obs_m[idx].mean(axis=0))
        by_block.setdefault(block, []).append(meth.mean() - expected)
    z = [np.mean(r) / (np.std(r, ddof=1) / np.sqrt(len(r))) for r in by_block.values() if len(r) > 30]
    assert len(z) > 0.9 * truth.n_blocks
    assert np.max(np.abs(z)) < 4.5
    # and markers are what their type says: this tissue's U-markers are mostly unmethylated
    frac_m = {}
    for block, _, meth in _block_table(chunks, truth):
        frac_m.setdefault(block, []).append(meth.mean())
    own_u = [np.mean(frac_m[b]) for b in frac_m if truth.blk_type[b] == "tissue_u" and truth.blk_target[b] == tissue]
    other_u = [np.mean(frac_m[b]) for b in frac_m if truth.blk_type[b] == "tissue_u" and truth.blk_target[b] != tissue]
    assert own_u and np.mean(own_u) < 0.5 < np.mean(other_u)


def test_reads_are_co_methylated(small_cohort):
    """Two CpGs of one read in one block agree more often than independent CpGs with the same
    marginals would, by as much as the model predicts. Agreement is averaged over ~10^4
    pairs, so 0.015 is > 4 SE; the observed excess over independence is ~0.1."""
    truth = load_truth(small_cohort)
    chunks, sim = _pure_reads(truth, "Pancreas-Acinar", depth=60, seed=2)
    tid = truth.tissues.index("Pancreas-Acinar")
    obs, indep, model = [], [], []
    for block, idx, meth in _block_table(chunks, truth):
        if idx.size < 2:
            continue
        a, b = 0, idx.size - 1  # first and last CpG of the read in the block: the farthest apart
        p = sim.p_obs_m[idx[[a, b]]]  # (2, 3) P(M | state)
        pi = truth.pi[block, tid]
        marg = pi @ p.T
        obs.append(float(meth[a] == meth[b]))
        indep.append(marg[0] * marg[1] + (1 - marg[0]) * (1 - marg[1]))
        model.append(float(pi @ (p[0] * p[1] + (1 - p[0]) * (1 - p[1]))))
    obs, indep, model = map(np.mean, (obs, indep, model))
    assert obs - indep > 0.05
    assert abs(obs - model) < 0.015


def test_atlas_preset_balance_and_splits():
    """765 samples as the design: blood ~27%, splits 455/135/175 (each within 2%), every
    tissue in every split, depths inside 10-500x, solid samples 1-5% blood."""
    cfg = resolve("atlas")
    designs = design_samples(cfg, cfg.tissue_list(), np.random.default_rng(0))
    assert len(designs) == 765
    blood = np.mean([is_blood(d.tissue) for d in designs])
    assert 0.25 <= blood <= 0.29
    counts = {s: sum(d.split == s for d in designs) for s in ("train", "val", "test")}
    for split, target in (("train", 455), ("val", 135), ("test", 175)):
        assert abs(counts[split] - target) <= 0.02 * 765, counts
    assert {(d.tissue, d.split) for d in designs} == {(t, s) for t in DEFAULT_TISSUES for s in counts}
    depths = np.array([d.depth for d in designs])
    assert depths.min() >= 10 and depths.max() <= 500 and np.median(depths) > 40
    contam = np.array([d.contamination for d in designs if not is_blood(d.tissue)])
    assert contam.min() >= 0.01 and contam.max() <= 0.05
    assert all(d.contamination == 0 for d in designs if is_blood(d.tissue))
    split_of_donor: dict[str, set] = {}
    for d in designs:
        split_of_donor.setdefault(d.donor, set()).add(d.split)
    assert all(len(splits) == 1 for splits in split_of_donor.values()) and len(split_of_donor) > 100


def test_related_tissues_are_closer_in_the_truth():
    """Mean |difference in U-state probability| over blocks: blood subtypes and pancreas cell
    types are each closer to each other than to any organ of another lineage."""
    cfg = resolve("small")
    tissues = cfg.tissue_list()
    pi, _, _ = assign_states(cfg, np.random.default_rng(0), tissues, 2000)
    u = pi[:, :, 0]

    def dist(a, b):
        return np.abs(u[:, tissues.index(a)] - u[:, tissues.index(b)]).mean()

    assert dist("Blood-T", "Blood-B") < 0.7 * dist("Blood-T", "Pancreas-Acinar")
    assert dist("Pancreas-Acinar", "Pancreas-Beta") < 0.7 * dist("Pancreas-Acinar", "Neuron")
    assert dist("Blood-T", "Blood-NK") < dist("Blood-T", "Blood-Granul") < dist("Blood-T", "Liver-Hep")


def test_related_tissues_are_closer_in_the_reads(small_cohort):
    """The same ordering measured from the simulated .pat files (methylation of each
    tissue's samples pooled, per block), i.e. after sample variation, contamination and read noise."""
    truth = load_truth(small_cohort)
    block_of = truth.cpg_block
    profile = {}
    for tissue in truth.tissues:
        meth = np.zeros(truth.n_blocks)
        total = np.zeros(truth.n_blocks)
        for path in sorted((small_cohort / "pat").glob(f"{tissue}_*.pat.gz")):
            idx, calls = pat_to_arrays(read_pat(path))
            used = (idx > 0) & (calls < 2)
            reg = block_of[idx[used] - 1]
            ok = reg >= 0
            np.add.at(meth, reg[ok], calls[used][ok])
            np.add.at(total, reg[ok], 1)
        with np.errstate(invalid="ignore"):
            profile[tissue] = meth / total

    def dist(a, b):
        return np.nanmean(np.abs(profile[a] - profile[b]))  # blocks without CpGs are NaN

    assert dist("Blood-T", "Blood-B") < dist("Blood-T", "Pancreas-Acinar")
    assert dist("Blood-T", "Blood-B") < dist("Blood-B", "Neuron")
    assert dist("Pancreas-Acinar", "Pancreas-Beta") < dist("Pancreas-Beta", "Neuron")

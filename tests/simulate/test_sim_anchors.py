"""Real anchors: regions placed on real hg38 sequence, marker levels from real atlas tables."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from tissuebert.simulate import load_truth, simulate_cohort
from tissuebert.simulate.atlas_table import beta_to_u, read_atlas_table
from tissuebert.simulate.reads import CALL_M, CALL_NONE, ReadSimulator

pytestmark = pytest.mark.shared_data
SEGMENT_FA = "kipoiseq/hg38_chr22_32000000_32300000.fa"
SEGMENT_CPG = "derived/hg38_chr22_32000001-32300000.CpG.bed"
SEGMENT_START = 32_000_000  # 0-based genome position of the segment's first base
UXM_TABLE = "UXM_deconv/supplemental/Atlas.U25.l4.hg38.tsv"
NANOMIX_TABLE = "nanomix/39Bisulfite.tsv"


def test_reference_cpg_index_matches_wgbs_tools_hg38(shared_data, tmp_path):
    out = simulate_cohort(tmp_path / "ref", preset="demo", seed=3, reference=shared_data / SEGMENT_FA,
                          tissues=3, regions=30, samples_per_tissue=3, depth_min=5, depth_max=6, write_bam=False)
    with gzip.open(out / "CpG.bed.gz", "rt") as fh:
        ours = [line.split() for line in fh]
    with open(shared_data / SEGMENT_CPG) as fh:
        real = [line.split() for line in fh]
    assert len(ours) == len(real) == 3359
    offset = int(real[0][2]) - 1  # the segment's first CpG is number 27,517,128 of hg38
    for (chrom, loc, idx), (rchrom, rloc, ridx) in zip(ours, real):
        assert chrom == rchrom == "chr22"
        assert int(loc) + SEGMENT_START == int(rloc)
        assert int(idx) + offset == int(ridx)
    # regions sit on CpG-rich windows of the real sequence, apart by more than two fragments
    truth = load_truth(out)
    assert len(truth.reg_name) == 30
    starts = np.sort(truth.reg_start)
    ends = truth.reg_end[np.argsort(truth.reg_start)]
    assert np.all(starts[1:] - ends[:-1] >= 800)
    n_in_first_window = [np.sum((truth.cpg_pos >= s) & (truth.cpg_pos < s + 148)) for s in truth.reg_start]
    assert min(n_in_first_window) >= 3


def _u_fraction(truth, tissue_id, seed):
    """UXM's statistic per block: share of fragments with >= 4 calls whose methylated fraction
    is below 0.251, from fragments of the pure tissue profile."""
    sim = ReadSimulator(truth, sources=truth.pi[None, :, tissue_id, :], weights=np.ones(1), depth=300,
                        frag_mode=167, frag_max=400, rng=np.random.default_rng(seed))
    n_u = np.zeros(truth.n_blocks)
    n_all = np.zeros(truth.n_blocks)
    for ch in sim.chunks():
        for f in range(ch.n):
            calls = ch.calls[ch.ptr[f]:ch.ptr[f + 1]]
            block = truth.cpg_block[ch.cov_first[f] + np.arange(calls.size)]
            use = (calls != CALL_NONE) & (block >= 0)
            if use.sum() >= 4:
                b = block[use][0]
                n_all[b] += 1
                n_u[b] += np.mean(calls[use] == CALL_M) < 0.251
    return n_u, n_all


def test_uxm_atlas_u_fractions_are_reproduced(shared_data, tmp_path):
    """Each block's simulated U-fraction is within 4 binomial SE + 0.05 x the table value of the
    table: U-state fragments with >= 4 CpGs fall above UXM's 0.251 threshold with probability
    <= ~4% (per-CpG methylation <= 0.08 plus errors), a bias bounded by 0.05 x the U share."""
    tissues = ["Blood-T", "Liver-Hep", "Neuron", "Pancreas-Beta"]
    out = simulate_cohort(tmp_path / "uxm", preset="demo", seed=4, atlas=shared_data / UXM_TABLE,
                          tissue_names=tissues, regions=25, samples_per_tissue=3, depth_min=5, depth_max=6,
                          write_bam=False)
    truth = load_truth(out)
    rows, names, kind = read_atlas_table(shared_data / UXM_TABLE)
    assert kind == "uxm"
    by_name = {r["name"]: r for r in rows}
    # targets of the chosen tissues come first, regions have the table's CpG count, and the
    # truth holds the table's numbers
    assert sum(t in tissues for t in truth.blk_target) == 25
    n_cpgs = np.bincount(truth.cpg_block[truth.cpg_block >= 0], minlength=truth.n_blocks)
    assert n_cpgs.tolist() == [int(by_name[n]["endCpG"]) - int(by_name[n]["startCpG"]) for n in truth.reg_name]
    for b, name in enumerate(truth.reg_name):
        table = by_name[name]["values"][[names.index(t) for t in truth.tissues]]
        np.testing.assert_allclose(truth.pi[b, :, 0], np.nan_to_num(table, nan=np.nanmedian(table)))
    for tid, tissue in enumerate(truth.tissues):
        n_u, n_all = _u_fraction(truth, tid, seed=tid)
        assert n_all.min() > 100
        sim_u = n_u / n_all
        table_u = truth.pi[:, tid, 0]
        se = np.sqrt(np.maximum(table_u * (1 - table_u), 0.01) / n_all)
        assert np.all(np.abs(sim_u - table_u) <= 4 * se + 0.05 * table_u), tissue


def test_nanomix_betas_are_reproduced(shared_data, tmp_path):
    """Mean methylation per region equals the table's beta within 0.05 where the beta lies in
    the model's range [0.045, 0.915] (outside it the U share is clipped); 0.05 covers the
    spread of the per-CpG methylation probabilities around their mean (~0.02 for ~10 CpGs),
    the error channel (<= 0.01) and sampling (SE < 0.01 at depth 200)."""
    tissues = ["Blood-B", "Colon-Ep", "Liver-Hep"]
    out = simulate_cohort(tmp_path / "nano", preset="demo", seed=5, atlas=shared_data / NANOMIX_TABLE,
                          tissue_names=tissues, regions=60, samples_per_tissue=3, depth_min=5, depth_max=6,
                          write_bam=False)
    truth = load_truth(out)
    rows, names, kind = read_atlas_table(shared_data / NANOMIX_TABLE)
    assert kind == "beta"
    by_name = {f"{r['chr']}:{r['start']}-{r['end']}": r["values"] for r in rows}
    for tid, tissue in enumerate(truth.tissues):
        betas = np.array([by_name[n][names.index(tissue)] for n in truth.reg_name])
        np.testing.assert_allclose(truth.pi[:, tid, 0], beta_to_u(betas))
        sim = ReadSimulator(truth, sources=truth.pi[None, :, tid, :], weights=np.ones(1), depth=200,
                            frag_mode=167, frag_max=400, rng=np.random.default_rng(tid))
        meth = np.zeros(truth.n_blocks)
        total = np.zeros(truth.n_blocks)
        for ch in sim.chunks():
            block = truth.cpg_block[np.repeat(ch.cov_first - ch.ptr[:-1], np.diff(ch.ptr)) + np.arange(ch.ptr[-1])]
            use = (ch.calls != CALL_NONE) & (block >= 0)
            np.add.at(meth, block[use], ch.calls[use] == CALL_M)
            np.add.at(total, block[use], 1)
        inside = (betas > 0.045) & (betas < 0.915)
        assert inside.sum() >= 5
        assert np.abs(meth / total - betas)[inside].max() < 0.05, tissue

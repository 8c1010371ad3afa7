"""Pseudo-reads from per-CpG counts (bedMethyl, .cov, .beta).

A window whose CpGs have (methylated m_j, covering n_j) counts gets max_j n_j pseudo-reads; CpG
j's column holds m_j methylated and n_j - m_j unmethylated calls at random rows (the rest 'no
call'), so the per-CpG counts of the stored reads equal the table exactly. Nothing links calls
of one row: pseudo-reads carry no co-methylation, and the store flags them as such.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.constants import METH_M, METH_NONE, METH_U
from tissuebert.errors import InputFormatError
from tissuebert.io.counts import iter_count_table, read_beta
from tissuebert.io.fasta import naming_hint
from tissuebert.prepare.project import PanelIndex, Projector


def _panel_counts(path: Path, fmt: str, index: PanelIndex) -> tuple[np.ndarray, np.ndarray, dict]:
    """(methylated, total) per panel CpG entry (``panel.cpg_index`` order)."""
    panel = index.panel
    meth = np.zeros(panel.cpg_index.shape[0], np.int64)
    total = np.zeros_like(meth)
    if fmt == "beta":
        meth[:], total[:] = read_beta(path, panel.cpg_index)
        return meth, total, {"cpgs_matched": int((total > 0).sum())}
    # per distinct panel CpG of each chromosome
    uniq_m = {c: np.zeros(index.cpg_pos[c].shape[0], np.int64) for c in panel.chroms}
    uniq_t = {c: np.zeros(index.cpg_pos[c].shape[0], np.int64) for c in panel.chroms}
    regions = {c: [(int(s), int(e)) for s, e, _, _ in index.clusters(c)] for c in panel.chroms}
    n_rows = n_matched = 0
    chroms_seen: set[str] = set()
    for chrom, pos, strand, m, t in iter_count_table(path, fmt, regions):
        n_rows += pos.shape[0]
        chroms_seen.add(chrom)
        if chrom not in uniq_m:
            continue
        cpos = index.cpg_pos[chrom]
        # a '+' call sits at the C, a '-' call at the G; an unstranded one at either (C tried first)
        counted = np.zeros(pos.shape[0], dtype=bool)
        for shift, allowed in ((0, strand != "-"), (1, strand != "+")):
            c_pos = pos - shift
            k = np.searchsorted(cpos, c_pos)
            hit = allowed & ~counted & (k < cpos.shape[0]) & (cpos[np.minimum(k, cpos.shape[0] - 1)] == c_pos)
            np.add.at(uniq_m[chrom], k[hit], m[hit])
            np.add.at(uniq_t[chrom], k[hit], t[hit])
            counted |= hit
        n_matched += int(counted.sum())
    if chroms_seen and not chroms_seen & set(panel.chroms):
        example = sorted(chroms_seen)[0]
        raise InputFormatError(f"no CpG of the file is on a chromosome of the panel (file has {example!r}, ...)",
                               path=path, hint=naming_hint(example, panel.chroms, "the panel"))
    cpg_chrom = np.repeat(panel.win_chrom, panel.n_cpgs)
    cpg_pos = np.repeat(panel.win_start, panel.n_cpgs) + panel.cpg_offset
    for cid, chrom in enumerate(panel.chroms):
        sel = cpg_chrom == cid
        k = np.searchsorted(index.cpg_pos[chrom], cpg_pos[sel])
        meth[sel], total[sel] = uniq_m[chrom][k], uniq_t[chrom][k]
    return meth, total, {"lines": n_rows, "calls_matched": n_matched}


def read_counts(path: Path, fmt: str, index: PanelIndex, proj: Projector, *, seed: int,
                max_reads_per_window: int | None) -> dict:
    panel = index.panel
    meth, total, stats = _panel_counts(path, fmt, index)
    width = index.width
    for w in range(panel.n_windows):
        lo, hi = int(panel.cpg_ptr[w]), int(panel.cpg_ptr[w + 1])
        if hi == lo or total[lo:hi].max() == 0:
            continue
        rng = np.random.default_rng([seed, w])  # per window: the result does not depend on order
        n_reads = int(total[lo:hi].max())
        if max_reads_per_window is not None:
            n_reads = min(n_reads, max_reads_per_window)
        calls = np.full((n_reads, width), METH_NONE, dtype=np.uint8)
        for j in range(hi - lo):
            m, t = int(meth[lo + j]), int(total[lo + j])
            if t > n_reads:  # keep a uniform subset of this CpG's calls
                m, t = int(rng.hypergeometric(m, t - m, n_reads)), n_reads
            column = np.full(n_reads, METH_NONE, dtype=np.uint8)
            column[:m], column[m:t] = METH_M, METH_U
            calls[:, j] = rng.permutation(column)
        proj.add_rows(np.full(n_reads, w, np.uint32), calls, np.ones(n_reads, np.int64))
    stats["cpgs_covered"] = int((total > 0).sum())
    return stats

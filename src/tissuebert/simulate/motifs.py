"""Lineage transcription-factor motifs in tissue-specific blocks.

Tissue-specific unmethylated regions are enriched for the binding motifs of the lineage's
transcription factors (HNF4A/FOXA in liver, GATA in blood, ...). Each tissue and lineage group
gets a fixed 10-bp motif, planted once in every block whose marker targets it, so a model can
tie sequence to tissue as it can on real DNA instead of memorising every window.
"""

from __future__ import annotations

import zlib

import numpy as np

from tissuebert.simulate.tissues import groups_of

MOTIF_BP = 10
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_C, _G = ord("C"), ord("G")


def motif_for(name: str) -> str:
    """A fixed CpG-free motif per name (seeded by the name, so it is the same in every cohort).

    It neither starts with G nor ends with C, so planting it next to any base creates no CpG.
    """
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    while True:
        motif = _BASES[rng.integers(0, 4, size=MOTIF_BP)].tobytes().decode()
        if "CG" not in motif and motif[0] != "G" and motif[-1] != "C":
            return motif


def motifs_of(tissues: list[str]) -> dict[str, str]:
    names = list(tissues) + [g.name for g in groups_of(tissues)]
    return {name: motif_for(name) for name in names}


def plant_motifs(seqs: list[np.ndarray], blk_chrom: np.ndarray, blk_start: np.ndarray, blk_end: np.ndarray,
                 targets: list[str], motifs: dict[str, str], rng: np.random.Generator) -> int:
    """Write the target's motif into each block whose target has one, on bases that are not part
    of a CpG (so CpG positions and counts do not change). Returns the number of blocks planted."""
    planted = 0
    for b, target in enumerate(targets):
        motif = motifs.get(target)
        if motif is None:
            continue
        seq = seqs[int(blk_chrom[b])]
        lo, hi = int(blk_start[b]), int(blk_end[b])
        seg = seq[lo:hi]
        in_cpg = np.zeros(seg.size, dtype=bool)
        cg = np.flatnonzero((seg[:-1] == _C) & (seg[1:] == _G))
        in_cpg[cg] = True
        in_cpg[cg + 1] = True
        # a start is free when the next MOTIF_BP bases hold no CpG base (and stay in the block)
        bad = np.concatenate([[0], np.cumsum(in_cpg)])
        starts = np.flatnonzero(bad[MOTIF_BP:] - bad[:-MOTIF_BP] == 0)
        if starts.size == 0:
            continue
        at = lo + int(rng.choice(starts))
        seq[at:at + MOTIF_BP] = np.frombuffer(motif.encode(), dtype=np.uint8)
        planted += 1
    return planted

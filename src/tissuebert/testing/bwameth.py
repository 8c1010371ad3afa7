"""bwa-meth calls without a FASTA: CpGs located from the reads' MD-rebuilt references.

bwa-meth aligns in-silico converted reads to a converted genome (C->T for YD:f reads, G->A for
YD:r reads) and writes MD against *that* genome, so one read's MD-rebuilt reference cannot tell
an unmethylated CpG's C from a T (f) or its G from an A (r). Each read still narrows every base
it covers to a set: an f read's C means C, its T means C or T, a mismatch's T means C or T; an
r read mirrors this with G and A. The consensus base is the one the most reads allow; top and
bottom strand reads together pin down every CpG. Calls are then made at those CpGs exactly as
with a FASTA (C/T at the C of f reads, G/A at the G of r reads).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.io.bam import bisulfite_calls, open_bam, rebuild_reference

_BASES = "ACGT"
_ANY_C = {"C": "C", "T": "CT"}  # f read (or its MD base) -> bases of the genome it allows
_ANY_G = {"G": "G", "A": "AG"}


def _allowed(base: str, bottom: bool) -> str:
    table = _ANY_G if bottom else _ANY_C
    return table.get(base, base if base in _BASES else "")


def consensus_reference(path: str | Path, chrom: str, start: int, end: int, *, keep=None) -> str:
    """Bisulfite-aware consensus of the MD-rebuilt references of the reads over [start, end).

    ``keep(read) -> bool`` filters alignments. Bases no read covers, or where two bases tie,
    are 'N'.
    """
    votes = np.zeros((end - start, 4), dtype=np.int64)
    with open_bam(path) as bam:
        for read in bam.fetch(chrom, start, end):
            if read.is_unmapped or (keep is not None and not keep(read)):
                continue
            bottom = read.get_tag("YD") == "r"
            # MD-rebuilt reference: the read's own base where it matches, MD's converted base where not
            ref = rebuild_reference(read)
            for k, base in enumerate(ref):
                pos = read.reference_start + k
                if start <= pos < end:
                    for allowed in _allowed(base, bottom):
                        votes[pos - start, _BASES.index(allowed)] += 1
    best = votes.argmax(axis=1)
    top = votes.max(axis=1)
    tie = (votes == top[:, None]).sum(axis=1) > 1
    return "".join("N" if (t == 0 or tied) else _BASES[b] for b, t, tied in zip(best, top, tie))


def cpg_positions(consensus: str, start: int) -> np.ndarray:
    """0-based C positions of the CGs of ``consensus`` (which starts at ``start``)."""
    return np.array([start + k for k in range(len(consensus) - 1) if consensus[k:k + 2] == "CG"], dtype=np.int64)


def region_calls(path: str | Path, chrom: str, start: int, end: int, *,
                 keep=None) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """CpGs of [start, end) from the consensus, and every kept read's calls at them."""
    cpgs = cpg_positions(consensus_reference(path, chrom, start, end, keep=keep), start)
    calls = []
    cpg_list = cpgs.tolist()
    with open_bam(path) as bam:
        for read in bam.fetch(chrom, start, end):
            if read.is_unmapped or (keep is not None and not keep(read)):
                continue
            calls.append(bisulfite_calls(read, "bwameth", cpg_list))
    return cpgs, calls

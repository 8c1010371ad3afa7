"""Writers of the real input formats: FASTA (+.fai), region BED, wgbs_tools CpG index, .pat.gz.

Everything is written to a temporary name and renamed into place (``atomic_path``); bgzip and
index files follow wgbs_tools: ``.pat.gz`` with a CSI index on (chrom, CpG index), ``CpG.bed.gz``
with a tabix index on (chrom, 1-based locus).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pysam

from tissuebert.atomic import atomic_path
from tissuebert.simulate.reads import FragmentChunk

FASTA_WIDTH = 60


def write_fasta(path: Path, chroms: list[str], seqs: list[np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            for name, seq in zip(chroms, seqs):
                fh.write(f">{name}\n".encode())
                raw = seq.tobytes()
                fh.write(b"\n".join(raw[i:i + FASTA_WIDTH] for i in range(0, len(raw), FASTA_WIDTH)) + b"\n")
    pysam.faidx(str(path))


def write_regions_bed(path: Path, chroms: list[str], reg_chrom, reg_start, reg_end, names: list[str],
                      labels: list[str]) -> None:
    """BED: chrom, start, end, name, then a label saying the marker type and target."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            for c, s, e, name, label in zip(reg_chrom.tolist(), reg_start.tolist(), reg_end.tolist(), names, labels):
                fh.write(f"{chroms[c]}\t{s}\t{e}\t{name}\t{label}\n")


def write_cpg_index(path: Path, chroms: list[str], cpg_chrom: np.ndarray, cpg_pos: np.ndarray) -> None:
    """wgbs_tools CpG.bed.gz: chrom, 1-based position of the C, genome-wide 1-based index."""
    with atomic_path(path) as tmp:
        with pysam.BGZFile(str(tmp), "wb") as fh:
            step = 500_000
            for lo in range(0, cpg_pos.size, step):
                c = cpg_chrom[lo:lo + step].tolist()
                p = (cpg_pos[lo:lo + step] + 1).tolist()
                fh.write("".join(f"{chroms[ci]}\t{pi}\t{lo + k + 1}\n" for k, (ci, pi) in enumerate(zip(c, p))).encode())
    _tabix(path, csi=False)


def _tabix(path: Path, *, csi: bool) -> None:
    """Index a bgzipped file keyed on (column 1, column 2) into a temp then rename the index."""
    suffix = ".csi" if csi else ".tbi"
    final = Path(str(path) + suffix)
    final.unlink(missing_ok=True)
    pysam.tabix_index(str(path), seq_col=0, start_col=1, end_col=1, csi=csi, force=True)


class PatWriter:
    """Streams sorted fragment chunks into a wgbs_tools .pat.gz (identical lines collapsed into
    one with a count), bgzipped, then CSI-indexed on (chrom, first CpG index)."""

    def __init__(self, path: Path, chroms: list[str]) -> None:
        self.path = Path(path)
        self.chroms = chroms
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.gz")
        self.fh = pysam.BGZFile(str(self.tmp), "wb")
        self.n_lines = 0
        self.n_reads = 0

    def write(self, chunk: FragmentChunk) -> None:
        if chunk.n == 0:
            return
        pats = chunk.patterns()
        firsts = (chunk.first + 1).tolist()
        chroms = chunk.chrom.tolist()
        lines = []
        prev = None
        count = 0
        for c, f, p in zip(chroms, firsts, pats):
            key = (c, f, p)
            if key == prev:
                count += 1
                continue
            if prev is not None:
                lines.append(f"{self.chroms[prev[0]]}\t{prev[1]}\t{prev[2]}\t{count}\n")
            prev, count = key, 1
        lines.append(f"{self.chroms[prev[0]]}\t{prev[1]}\t{prev[2]}\t{count}\n")
        self.fh.write("".join(lines).encode())
        self.n_lines += len(lines)
        self.n_reads += chunk.n

    def close(self) -> None:
        self.fh.close()
        final_idx = Path(str(self.path) + ".csi")
        tmp_idx = Path(str(self.tmp) + ".csi")
        pysam.tabix_index(str(self.tmp), seq_col=0, start_col=1, end_col=1, csi=True, force=True)
        os.replace(self.tmp, self.path)
        os.replace(tmp_idx, final_idx)

    def abort(self) -> None:
        try:
            self.fh.close()
        finally:
            self.tmp.unlink(missing_ok=True)
            Path(str(self.tmp) + ".csi").unlink(missing_ok=True)

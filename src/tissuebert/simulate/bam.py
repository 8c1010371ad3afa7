"""Bismark-style BAM of the same fragments as the .pat: one single-end directional read per
fragment, XM/XR/XG tags, MD/NM against the genome (bisulfite conversions count as mismatches,
as Bismark reports them), coordinate-sorted and indexed.

Reads are built for many fragments at once on a flat base array, written as SAM text, then
sorted into BAM by samtools (through pysam), which keeps memory bounded for any cohort size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pysam

from tissuebert.simulate.reads import CALL_M, CALL_NONE, FragmentChunk

_A, _C, _G, _T = (ord(b) for b in "ACGT")
_DOT = ord(".")
BATCH = 20_000  # fragments turned into SAM text at once (~3.5 M bases of scratch arrays)
_QUAL = "I"  # Phred 40 everywhere: qualities carry no information in this simulation


class BamWriter:
    def __init__(self, path: Path, chroms: list[str], chrom_lengths: np.ndarray, genome: np.ndarray,
                 chrom_offsets: np.ndarray, cpg_gpos: np.ndarray, *, nonconversion: float, seq_error: float,
                 rng: np.random.Generator, read_prefix: str) -> None:
        self.path = Path(path)
        self.chroms = chroms
        self.genome = genome  # all chromosomes concatenated, uint8 ASCII
        self.offsets = chrom_offsets
        self.cpg_gpos = cpg_gpos
        self.nonconversion, self.seq_error = nonconversion, seq_error
        self.rng = rng
        self.prefix = read_prefix
        self.n_reads = 0
        self.tmp_sam = self.path.with_name(f".{self.path.name}.{os.getpid()}.sam")
        self.fh = open(self.tmp_sam, "w")
        self.fh.write("@HD\tVN:1.6\tSO:unsorted\n")
        for name, length in zip(chroms, chrom_lengths.tolist()):
            self.fh.write(f"@SQ\tSN:{name}\tLN:{length}\n")
        self.fh.write("@PG\tID:tissuebert-simulate\tPN:tissuebert simulate\n")

    def write(self, chunk: FragmentChunk) -> None:
        for lo in range(0, chunk.n, BATCH):
            self.fh.write(self._sam_text(chunk, lo, min(chunk.n, lo + BATCH)))

    def _sam_text(self, chunk: FragmentChunk, lo: int, hi: int) -> str:
        rng = self.rng
        length = chunk.length[lo:hi]
        reverse = chunk.reverse[lo:hi]
        gstart = self.offsets[chunk.chrom[lo:hi]] + chunk.start[lo:hi]
        lptr = np.concatenate([[0], np.cumsum(length)])
        gidx = np.repeat(gstart - lptr[:-1], length) + np.arange(lptr[-1])
        ref = self.genome[gidx]
        rev = np.repeat(reverse, length)
        converted = np.where(rev, _A, _T).astype(np.uint8)
        seq = ref.copy()
        xm = np.full(ref.size, _DOT, dtype=np.uint8)
        # cytosines of the read's original strand and their context (Bismark: Z CpG, X CHG, H CHH)
        cyt = np.flatnonzero(np.where(rev, ref == _G, ref == _C))
        c_rev, c_g = rev[cyt], gidx[cyt]
        is_cg = np.where(c_rev, self.genome[c_g - 1] == _C, self.genome[c_g + 1] == _G)
        is_chg = ~is_cg & np.where(c_rev, self.genome[c_g - 2] == _C, self.genome[c_g + 2] == _G)
        # non-CpG cytosines: converted unless bisulfite failed (then upper-case X/H)
        other = cyt[~is_cg]
        kept = rng.random(other.size) < self.nonconversion
        seq[other[~kept]] = converted[other[~kept]]
        xm[other] = np.where(is_chg[~is_cg], ord("x"), ord("h")) - np.where(kept, 32, 0)
        # CpG calls come from the simulated pattern, so the BAM and the .pat agree call for call
        sub = slice(chunk.ptr[lo], chunk.ptr[hi])
        calls = chunk.calls[sub]
        n_cov = np.diff(chunk.ptr[lo:hi + 1])
        frag = np.repeat(np.arange(hi - lo), n_cov)
        cpg = np.repeat(chunk.cov_first[lo:hi] - (chunk.ptr[lo:hi] - chunk.ptr[lo]), n_cov) + np.arange(calls.size)
        at = lptr[frag] + (self.cpg_gpos[cpg] - gstart[frag]) + reverse[frag].astype(np.int64)
        meth = calls == CALL_M
        nocall = calls == CALL_NONE
        error_base = np.where(reverse[frag], np.where(rng.random(calls.size) < 0.5, _C, _T),
                              np.where(rng.random(calls.size) < 0.5, _A, _G)).astype(np.uint8)
        seq[at] = np.where(nocall, error_base, np.where(meth, ref[at], converted[at]))
        xm[at] = np.where(nocall, _DOT, np.where(meth, ord("Z"), ord("z"))).astype(np.uint8)
        # sequencing errors elsewhere (positions that are not cytosines of the read's strand)
        hits = np.unique(rng.integers(0, ref.size, size=rng.binomial(ref.size, self.seq_error)))
        is_c = np.zeros(ref.size, dtype=bool)
        is_c[cyt] = True
        hits = hits[~is_c[hits]]
        code = np.searchsorted(np.array([_A, _C, _G, _T]), ref[hits])
        seq[hits] = np.array([_A, _C, _G, _T], dtype=np.uint8)[(code + rng.integers(1, 4, size=hits.size)) % 4]
        return self._format(chunk, lo, hi, lptr, seq, xm, ref)

    def _format(self, chunk, lo, hi, lptr, seq, xm, ref) -> str:
        md_buf, md_ptr, nm = md_tags(seq, ref, lptr)
        seq_s, xm_s, md_s = seq.tobytes().decode(), xm.tobytes().decode(), md_buf.tobytes().decode()
        chroms = chunk.chrom[lo:hi].tolist()
        starts = (chunk.start[lo:hi] + 1).tolist()
        revs = chunk.reverse[lo:hi].tolist()
        bounds, mdb, nms = lptr.tolist(), md_ptr.tolist(), nm.tolist()
        lines = []
        for k in range(hi - lo):
            a, b = bounds[k], bounds[k + 1]
            self.n_reads += 1
            lines.append(
                f"{self.prefix}.{self.n_reads}\t{16 if revs[k] else 0}\t{self.chroms[chroms[k]]}\t{starts[k]}\t42\t"
                f"{b - a}M\t*\t0\t0\t{seq_s[a:b]}\t{_QUAL * (b - a)}\tNM:i:{nms[k]}\tMD:Z:{md_s[mdb[k]:mdb[k + 1]]}\t"
                f"XM:Z:{xm_s[a:b]}\tXR:Z:CT\tXG:Z:{'GA' if revs[k] else 'CT'}\n")
        return "".join(lines)

    def close(self, threads: int = 1) -> None:
        self.fh.close()
        tmp_bam = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.bam")
        try:
            pysam.sort("-o", str(tmp_bam), "-l", "1", "-m", "256M", "-@", str(threads), "-T", str(tmp_bam) + ".sort",
                       str(self.tmp_sam))
            pysam.index(str(tmp_bam), str(tmp_bam) + ".bai")
            os.replace(tmp_bam, self.path)
            os.replace(str(tmp_bam) + ".bai", str(self.path) + ".bai")
        finally:
            self.tmp_sam.unlink(missing_ok=True)
            tmp_bam.unlink(missing_ok=True)

    def abort(self) -> None:
        self.fh.close()
        self.tmp_sam.unlink(missing_ok=True)


def md_tags(seq: np.ndarray, ref: np.ndarray, lptr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SAM MD strings of many gap-free reads at once (bases of read k are ``lptr[k]:lptr[k+1]``).

    MD is: matches before each mismatch, the reference base, ..., trailing matches
    (``MD:Z:4G0G7``). Returns the concatenated ASCII buffer, per-read offsets into it, and NM.
    Built with numpy because a Python loop over ~40 mismatches per bisulfite read dominates.
    """
    n_reads = lptr.size - 1
    mism = np.flatnonzero(seq != ref)
    read_of = np.searchsorted(lptr, mism, side="right") - 1
    nm = np.bincount(read_of, minlength=n_reads)
    # matches since the previous mismatch of the same read (or the read start)
    prev_end = np.where(np.r_[True, read_of[1:] != read_of[:-1]], lptr[read_of], np.r_[0, mism[:-1] + 1])
    gaps = mism - prev_end
    last_end = lptr[:-1].copy()
    has = nm > 0
    last_mism = np.zeros(n_reads, dtype=np.int64)
    np.maximum.at(last_mism, read_of, mism)
    last_end[has] = last_mism[has] + 1
    tail = lptr[1:] - last_end
    # items in output order: each read's mismatches (number + base), then its trailing number;
    # item slots are computed directly (read r's items start after r earlier tails)
    slot_mism = np.arange(mism.size) + read_of
    slot_tail = np.cumsum(nm) + np.arange(n_reads)
    n_items = mism.size + n_reads
    values = np.empty(n_items, dtype=np.int64)
    values[slot_mism], values[slot_tail] = gaps, tail
    is_tail = np.zeros(n_items, dtype=bool)
    is_tail[slot_tail] = True
    bases = np.zeros(n_items, dtype=np.uint8)
    bases[slot_mism] = ref[mism]
    item_read = np.empty(n_items, dtype=np.int64)
    item_read[slot_mism], item_read[slot_tail] = read_of, np.arange(n_reads)
    n_digits = 1 + (values >= 10) + (values >= 100) + (values >= 1000)
    width = n_digits + ~is_tail
    start = np.concatenate([[0], np.cumsum(width)])
    buf = np.zeros(int(start[-1]), dtype=np.uint8)
    for digit in range(4):  # digit 0 = most significant of a 4-digit number
        power = 10 ** (3 - digit)
        use = n_digits >= 4 - digit
        buf[start[:-1][use] + digit - (4 - n_digits[use])] = ord("0") + (values[use] // power) % 10
    buf[start[:-1][~is_tail] + n_digits[~is_tail]] = bases[~is_tail]
    read_ptr = np.concatenate([[0], np.cumsum(np.bincount(item_read, weights=width, minlength=n_reads))]).astype(np.int64)
    return buf, read_ptr, nm

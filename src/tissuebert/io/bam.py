"""Per-read CpG calls from bisulfite and modification BAMs (Bismark, bwa-meth, MM/ML).

Calls are made at CpG positions the caller supplies (the panel's, from the FASTA) and reported
at the CpG's C on the + strand, as in .pat: a read from the bottom (G->A) strand reports at the
G, one base to the right. ``rebuild_reference`` restores the reference under a read from its
MD tag and CIGAR (Bismark writes MD against the genome; bwa-meth against the converted genome,
see ``testing/bwameth.py``).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from pathlib import Path

import numpy as np
import pysam

from tissuebert.constants import METH_M, METH_NONE, METH_U
from tissuebert.errors import InputFormatError, require_file

_MATCH_OPS = (0, 7, 8)  # M, =, X: consume query and reference
_MD_TOKEN = re.compile(r"(\d+)|\^([A-Za-z]+)|([A-Za-z])")
_EMPTY_POS = np.zeros(0, np.int64)
_EMPTY_CODE = np.zeros(0, np.uint8)


def open_bam(path: str | Path, *, need_index: bool = True) -> pysam.AlignmentFile:
    """Open a BAM; with ``need_index`` a missing index (or an unsorted file) is a clear error."""
    path = require_file(path, "BAM")
    try:
        bam = pysam.AlignmentFile(str(path), "rb")
    except (OSError, ValueError) as exc:
        raise InputFormatError(f"cannot open BAM: {exc}", path=path, hint="is it a BAM file?") from None
    if need_index and not bam.has_index():
        order = bam.header.to_dict().get("HD", {}).get("SO", "unknown")
        bam.close()
        what = "is not coordinate-sorted and has no index" if order != "coordinate" else "has no index (.bai/.csi)"
        raise InputFormatError(f"BAM {what} (header SO:{order})", path=path,
                               hint=f"run: samtools sort -o {path.stem}.sorted.bam {path.name} "
                                    f"&& samtools index {path.stem}.sorted.bam")
    return bam


def ref_to_query(read: pysam.AlignedSegment) -> np.ndarray:
    """(reference span,) int64: the query position aligned to each reference base, -1 if deleted."""
    span = read.reference_end - read.reference_start
    out = np.full(span, -1, dtype=np.int64)
    ref, query = 0, 0
    for op, length in read.cigartuples:
        if op in _MATCH_OPS:
            out[ref:ref + length] = np.arange(query, query + length)
            ref += length
            query += length
        elif op in (1, 4):  # insertion, soft clip
            query += length
        elif op in (2, 3):  # deletion, skipped region
            ref += length
    return out


def rebuild_reference(read: pysam.AlignedSegment) -> str:
    """The reference under the aligned part of ``read`` (upper case), from its MD tag and CIGAR."""
    if not read.has_tag("MD"):
        raise InputFormatError(f"read {read.query_name} has no MD tag", hint="add one with `samtools calmd`")
    r2q = ref_to_query(read)
    seq = read.query_sequence.upper()
    ref = ["N"] * len(r2q)
    aligned = np.flatnonzero(r2q >= 0)  # reference offsets of match/mismatch bases, in order
    deletions = np.flatnonzero(r2q < 0)  # ... of deleted bases, in order (MD lists them as ^XYZ)
    for k in aligned:
        ref[k] = seq[r2q[k]]
    k_aligned = k_deleted = 0
    try:
        for number, deleted, mismatch in _MD_TOKEN.findall(read.get_tag("MD")):
            if number:
                k_aligned += int(number)
            elif deleted:
                for base in deleted.upper():
                    ref[deletions[k_deleted]] = base
                    k_deleted += 1
            else:
                ref[aligned[k_aligned]] = mismatch.upper()
                k_aligned += 1
    except IndexError:
        raise InputFormatError(f"read {read.query_name}: MD tag {read.get_tag('MD')!r} does not fit its CIGAR",
                               hint="recompute it with `samtools calmd`") from None
    return "".join(ref)


def is_bottom_strand(read: pysam.AlignedSegment, fmt: str) -> bool:
    """True for a read of the bisulfite bottom (G->A) strand: calls sit at the CpG's G."""
    if fmt == "bismark":
        if not read.has_tag("XG"):
            raise InputFormatError(f"Bismark read {read.query_name} lacks the XG tag",
                                   hint="is this a Bismark BAM? use format 'bwameth' for bwa-meth BAMs")
        return read.get_tag("XG") == "GA"
    if not read.has_tag("YD"):
        raise InputFormatError(f"bwa-meth read {read.query_name} lacks the YD strand tag",
                               hint="is this a bwa-meth BAM? use format 'bismark' for Bismark BAMs")
    return read.get_tag("YD") == "r"


def match_blocks(read: pysam.AlignedSegment) -> list[tuple[int, int, int]]:
    """Aligned (match/mismatch) blocks of a read: (reference start, reference end, query start)."""
    blocks = []
    ref, query = read.reference_start, 0
    for op, length in read.cigartuples:
        if op in _MATCH_OPS:
            blocks.append((ref, ref + length, query))
            ref += length
            query += length
        elif op in (1, 4):
            query += length
        elif op in (2, 3):
            ref += length
    return blocks


_XM = {"Z": METH_M, "z": METH_U}
_TOP = {"C": METH_M, "T": METH_U}
_BOTTOM = {"G": METH_M, "A": METH_U}


def bisulfite_calls(read: pysam.AlignedSegment, fmt: str, cpg_pos) -> tuple[np.ndarray, np.ndarray]:
    """Calls of one bisulfite read at the CpGs ``cpg_pos`` (sorted 0-based C positions; a list is fastest).

    Bismark: the XM character at the call position (Z methylated, z unmethylated). bwa-meth:
    the read base there (C/T on the top strand at the C; G/A on the bottom strand at the G).
    Returns (C positions, codes) of the CpGs whose call position the read aligns.
    """
    start, end = read.reference_start, read.reference_end
    lo, hi = bisect_left(cpg_pos, start - 1), bisect_left(cpg_pos, end)
    if lo == hi:
        return _EMPTY_POS, _EMPTY_CODE
    bottom = is_bottom_strand(read, fmt)
    if fmt == "bismark":
        if not read.has_tag("XM"):
            raise InputFormatError(f"Bismark read {read.query_name} lacks the XM tag",
                                   hint="use format 'bwameth' to call methylation from the read bases")
        chars, table = read.get_tag("XM"), _XM
    else:
        chars, table = read.query_sequence.upper(), (_BOTTOM if bottom else _TOP)
    blocks = match_blocks(read)
    shift = 1 if bottom else 0
    positions, codes = [], []
    for c_pos in cpg_pos[lo:hi]:
        site = c_pos + shift
        for ref0, ref1, query0 in blocks:
            if ref0 <= site < ref1:
                positions.append(c_pos)
                codes.append(table.get(chars[query0 + site - ref0], METH_NONE))
                break
    return np.asarray(positions, np.int64), np.asarray(codes, np.uint8)


def _mm_implicit(read: pysam.AlignedSegment) -> bool:
    """Whether unlisted Cs of the C+m call are unmodified (MM mode '.' or none) rather than unknown ('?')."""
    tag = read.get_tag("MM") if read.has_tag("MM") else read.get_tag("Mm")
    for entry in str(tag).split(";"):
        head = entry.split(",", 1)[0]
        if head.startswith("C+") and "m" in head:
            return not head.endswith("?")
    return False


def modification_calls(read: pysam.AlignedSegment, cpg_pos: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Calls of one MM/ML read at CpGs: P(5mC) >= threshold -> M, <= 1 - threshold -> U, else none.

    A call on a C of the stored sequence is the CpG's C; on a G (the read came from the other
    strand) it is reported at the C one base to the left.
    """
    start, end = read.reference_start, read.reference_end
    lo, hi = np.searchsorted(cpg_pos, start - 1), np.searchsorted(cpg_pos, end)
    cands = cpg_pos[lo:hi]
    if cands.size == 0:
        return cands, np.zeros(0, np.uint8)
    r2q = ref_to_query(read)
    seq = read.query_sequence.upper()
    try:
        mods = read.modified_bases or {}
    except (ValueError, KeyError):
        mods = {}
    prob: dict[int, float] = {}
    for (base, _strand, code), calls in mods.items():
        if base == "C" and code == "m":
            for qpos, qual in calls:
                prob[qpos] = (qual + 0.5) / 256.0
    implicit = bool(mods) and _mm_implicit(read)
    # which base carries the call: the C of the read's own strand (G in SEQ when reverse-mapped)
    reverse = read.is_reverse
    out_pos, out_code = [], []
    for c_pos in cands.tolist():
        look = c_pos + (1 if reverse else 0) - start
        if not 0 <= look < end - start or r2q[look] < 0:
            continue
        qpos = int(r2q[look])
        if seq[qpos] != ("G" if reverse else "C"):
            continue
        p = prob.get(qpos)
        if p is None:
            code = METH_U if implicit else METH_NONE
        else:
            code = METH_M if p >= threshold else (METH_U if p <= 1 - threshold else METH_NONE)
        out_pos.append(c_pos)
        out_code.append(code)
    return np.asarray(out_pos, np.int64), np.asarray(out_code, np.uint8)

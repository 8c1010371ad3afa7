"""Writes small hand-made BAMs over tiny.py's chr1 (reads given as start + methylation per CpG)."""

from __future__ import annotations

from pathlib import Path

import pysam

from tests.support.tiny import CPG_C, chr1_seq

HEADER = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 600}, {"SN": "chr2", "LN": 300}]}


def bisulfite_read(start: int, length: int, meth: dict[int, int], *, bottom: bool) -> tuple[str, str]:
    """(read sequence, Bismark XM) of a read from the top (C->T) or bottom (G->A) strand.

    ``meth`` maps a CpG's C position to 1 (methylated) or 0; chr1 has no C or G outside CpGs, so
    only CpG bases change.
    """
    ref = chr1_seq()[start:start + length]
    seq, xm = list(ref), ["."] * length
    for c_pos in CPG_C:
        site = c_pos + (1 if bottom else 0) - start
        if 0 <= site < length and c_pos in meth:
            if not meth[c_pos]:
                seq[site] = "A" if bottom else "T"
            xm[site] = "Z" if meth[c_pos] else "z"
    return "".join(seq), "".join(xm)


def make_read(name: str, start: int, seq: str, *, flag: int = 0, mapq: int = 40, tags: dict | None = None,
              header: pysam.AlignmentHeader) -> pysam.AlignedSegment:
    read = pysam.AlignedSegment(header)
    read.query_name, read.flag, read.reference_id, read.reference_start = name, flag, 0, start
    read.mapping_quality, read.cigarstring, read.query_sequence = mapq, f"{len(seq)}M", seq
    read.query_qualities = pysam.qualitystring_to_array("I" * len(seq))
    if flag & 1:
        read.next_reference_id, read.next_reference_start = 0, start
    for key, value in (tags or {}).items():
        read.set_tag(key, value)
    return read


def write_bam(path: Path, reads: list) -> Path:
    header = pysam.AlignmentHeader.from_dict(HEADER)
    unsorted = path.with_suffix(".unsorted.bam")
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        for build in reads:
            out.write(build(header))
    pysam.sort("-o", str(path), str(unsorted))
    unsorted.unlink()
    pysam.index(str(path))
    return path

"""Is this ``.bai`` the index of this BAM?

A BAM index does not name its BAM, and htslib follows a foreign one without complaint: fetches
then start at offsets of another file and return a few reads, or none, silently. The ``.bai``
keeps, per contig, the virtual offsets of the contig's first and last record (the pseudo-bin
37450, see the SAM spec section 5.2); the record at the first offset must be a record of that
contig, and the record after the last offset must not be. Two seeks per contig check that.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pysam

from tissuebert.errors import InputFormatError

_PSEUDO_BIN = 37450
_MAGIC = b"BAI\x01"


def bai_path(bam_path: Path) -> Path | None:
    for cand in (Path(f"{bam_path}.bai"), bam_path.with_suffix(".bai")):
        if cand.is_file():
            return cand
    return None


def contig_offsets(bai: Path) -> dict[int, tuple[int, int]]:
    """{reference id: (virtual offset of its first record, of the end of its last record)}."""
    data = bai.read_bytes()
    if data[:4] != _MAGIC:
        raise InputFormatError("not a BAM index (.bai): bad magic bytes", path=bai)
    try:
        (n_ref,) = struct.unpack_from("<i", data, 4)
        pos, out = 8, {}
        for ref_id in range(n_ref):
            (n_bin,) = struct.unpack_from("<i", data, pos)
            pos += 4
            for _ in range(n_bin):
                bin_id, n_chunk = struct.unpack_from("<Ii", data, pos)
                if bin_id == _PSEUDO_BIN and n_chunk >= 1:
                    out[ref_id] = struct.unpack_from("<QQ", data, pos + 8)
                pos += 8 + 16 * n_chunk
            (n_intv,) = struct.unpack_from("<i", data, pos)
            pos += 4 + 8 * n_intv
    except struct.error:
        raise InputFormatError("the BAM index is truncated", path=bai, hint="re-create it with `samtools index`") from None
    return out


def check_bai_matches(bam: pysam.AlignmentFile, bam_path: Path, contigs: list[str]) -> None:
    """Refuse a ``.bai`` whose per-contig record offsets do not fit ``bam`` (checked on ``contigs``)."""
    bai = bai_path(bam_path)
    if bai is None:
        return  # a .csi, or an index htslib found elsewhere: nothing cheap to check
    offsets = contig_offsets(bai)
    size = bam_path.stat().st_size
    hint = f"the index belongs to another BAM: re-create it with `samtools index {bam_path.name}`"
    for name in contigs:
        ref_id = bam.get_tid(name)
        if ref_id < 0 or ref_id not in offsets:
            continue
        first, end = offsets[ref_id]
        if (first >> 16) >= size or (end >> 16) >= size:
            raise InputFormatError(f"the index {bai.name} points past the end of the BAM for {name}", path=bam_path,
                                   hint=hint)
        after = _record_at(bam, end)  # the record after the contig's last: another contig's, or none
        if _record_at(bam, first) != ref_id or (after is not None and after == ref_id):
            raise InputFormatError(f"the index {bai.name} does not match the BAM: its {name} records are not where "
                                   f"it says", path=bam_path, hint=hint)


def _record_at(bam: pysam.AlignmentFile, offset: int) -> int | None:
    """Reference id of the record at a virtual offset; None at the end of the file; -2 if unreadable."""
    quiet = pysam.set_verbosity(0)  # a foreign offset makes htslib print errors: the caller says it once
    try:
        bam.seek(offset)
        return next(bam).reference_id
    except StopIteration:
        return None
    except (OSError, ValueError):
        return -2
    finally:
        pysam.set_verbosity(quiet)

"""Region BED reader: 0-based half-open intervals, validated against the reference."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tissuebert.errors import InputFormatError, require_file
from tissuebert.io.fasta import Reference
from tissuebert.io.text import open_text


@dataclass(frozen=True)
class Region:
    chrom: str
    start: int  # 0-based
    end: int  # exclusive
    name: str
    line: int  # 1-based line in the BED, for error messages


def bed_rows(lines, path: Path, what: str) -> Iterator[tuple[int, list[str], int, int]]:
    """(line number, columns, start, end) of each interval line of an open BED.

    Lines starting with ``#``, ``track`` or ``browser`` are skipped, and so is a first line whose
    start column is not a number (a header such as ``chr start end ...``). Columns are
    tab-separated (any whitespace when a line has fewer than three tab-separated columns).
    ``what`` names a line in the errors ("a BED line", "a block line").
    """
    seen = False
    for line_no, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        cols = line.rstrip("\n\r").split("\t")
        if len(cols) < 3:
            cols = line.split()
        if len(cols) < 3:
            raise InputFormatError(f"{what} needs chrom, start, end; got {len(cols)} column(s)", path=path,
                                   line=line_no, hint="separate columns with tabs")
        try:
            start, end = int(cols[1]), int(cols[2])
        except ValueError:
            if not seen:
                seen = True
                continue  # header line
            raise InputFormatError(f"start/end must be integers, got {cols[1]!r} {cols[2]!r}", path=path,
                                   line=line_no) from None
        seen = True
        yield line_no, cols, start, end


def read_regions(path: str | Path, reference: Reference) -> list[Region]:
    """Read a BED (chrom, start, end[, name, ...]); every region must lie inside its chromosome.

    Lines starting with ``#``, ``track`` or ``browser`` are skipped, and so is a first line whose
    start column is not a number (a header such as ``chr start end ...``).
    """
    path = require_file(path, "region BED")
    regions: list[Region] = []
    with open_text(path) as fh:
        for line_no, cols, start, end in bed_rows(fh, path, "a BED line"):
            chrom = cols[0]
            length = reference.require_chrom(chrom, path=path, line=line_no)
            if start < 0 or end <= start:
                raise InputFormatError(f"region {chrom}:{start}-{end} is empty or negative", path=path, line=line_no,
                                       hint="BED is 0-based half-open: end must be > start >= 0")
            if end > length:
                raise InputFormatError(f"region {chrom}:{start}-{end} ends outside the chromosome (length {length})",
                                       path=path, line=line_no,
                                       hint="check that the BED and the reference are the same genome build")
            name = cols[3] if len(cols) > 3 and cols[3] else f"{chrom}:{start}-{end}"
            regions.append(Region(chrom, start, end, name, line_no))
    if not regions:
        raise InputFormatError("no regions in BED", path=path, hint="the panel needs at least one region")
    return regions

"""wgbs_tools ``.pat`` / ``.pat.gz``: ``chrom  first_cpg_index  pattern  count`` per line.

A pattern holds one character per consecutive CpG from ``first_cpg_index``: ``C`` methylated,
``T`` unmethylated, ``.`` no call. Files are sorted by chromosome and index; a bgzipped file with
a ``.csi``/``.tbi`` tabix index (``tabix -C -b 2 -e 2``, as wgbs_tools writes) is read only over
the requested CpG ranges.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pysam

from tissuebert.constants import METH_M, METH_NONE, METH_U, PAT_METHYLATED, PAT_UNKNOWN, PAT_UNMETHYLATED
from tissuebert.errors import InputFormatError, require_file
from tissuebert.io.text import open_text, tabix_index

# A read is fetched by the index of its first CpG, so reads starting before a range are found by
# fetching this many CpGs earlier (wgbs_tools uses a similar look-back). Longer reads need streaming.
PAT_LOOKBACK = 1000

_CODE = np.full(256, 255, dtype=np.uint8)
_CODE[ord(PAT_METHYLATED)] = METH_M
_CODE[ord(PAT_UNMETHYLATED)] = METH_U
_CODE[ord(PAT_UNKNOWN)] = METH_NONE

PatLine = tuple[str, int, str, int, int | None]  # chrom, first CpG index, pattern, count, line


def pattern_codes(pattern: str, *, path: Path | str | None = None, line: int | None = None) -> np.ndarray:
    """``"CT.C"`` -> uint8 codes [1, 0, 2, 1]; any other character is an error."""
    codes = _CODE[np.frombuffer(pattern.encode(), dtype=np.uint8)]
    if codes.size == 0 or np.any(codes == 255):
        raise InputFormatError(f"bad .pat pattern {pattern[:40]!r}: only C, T and . are allowed", path=path, line=line)
    return codes


def pattern_matrix(patterns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validated patterns -> ((R, longest) uint8 codes padded with METH_NONE, (R,) int64 lengths), vectorised."""
    lengths = np.fromiter((len(p) for p in patterns), dtype=np.int64, count=len(patterns))
    width = int(lengths.max()) if len(patterns) else 1
    raw = np.frombuffer("".join(p.ljust(width, PAT_UNKNOWN) for p in patterns).encode("ascii"), dtype=np.uint8)
    return _CODE[raw].reshape(len(patterns), width), lengths


def _parse(line: str, path: Path, line_no: int | None) -> PatLine:
    cols = line.rstrip("\n\r").split("\t")
    if len(cols) < 4:
        raise InputFormatError(f"malformed .pat line: expected 'chrom index pattern count', got {len(cols)} column(s)",
                               path=path, line=line_no, hint="is this a wgbs_tools .pat file?")
    try:
        start, count = int(cols[1]), int(cols[3])
    except ValueError:
        raise InputFormatError(f"malformed .pat line: index {cols[1]!r} and count {cols[3]!r} must be integers",
                               path=path, line=line_no) from None
    if start < 1 or count < 1:
        raise InputFormatError("malformed .pat line: CpG index and count must be >= 1", path=path, line=line_no)
    pattern = cols[2]
    if not pattern or pattern.strip("CT.") != "":
        raise InputFormatError(f"malformed .pat line: pattern {pattern[:40]!r} may only hold C, T and .",
                               path=path, line=line_no)
    return cols[0], start, pattern, count, line_no


def iter_pat(path: str | Path) -> Iterator[PatLine]:
    """Every line of a .pat file, streamed, validated, with its 1-based line number."""
    path = require_file(path, ".pat file")
    try:
        with open_text(path) as fh:
            for line_no, line in enumerate(fh, start=1):
                if line.strip():
                    yield _parse(line, path, line_no)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot read .pat file: {exc}", path=path, hint="is the file truncated or not text?") from None


def open_indexed_pat(path: str | Path) -> pysam.TabixFile:
    """Open a bgzipped .pat through its tabix index (.csi or .tbi)."""
    path = Path(path)
    index = tabix_index(path)
    if index is None:
        raise InputFormatError("no tabix index (.csi/.tbi) beside the .pat.gz", path=path,
                               hint="index it with `tabix -C -b 2 -e 2 -m 12 FILE` or let tissuebert stream it")
    return pysam.TabixFile(str(path), index=str(index))


def fetch_pat(tbx: pysam.TabixFile, path: str | Path, chrom: str, first: int, last: int, *,
              lookback: int = PAT_LOOKBACK) -> Iterator[PatLine]:
    """Lines whose CpGs overlap CpG indices [first, last] (1-based, inclusive) of an open index."""
    if chrom not in tbx.contigs:
        return
    lo = max(0, first - 1 - lookback)
    try:
        for rec in tbx.fetch(chrom, lo, last):
            try:
                parsed = _parse(rec, Path(path), None)
            except InputFormatError:
                raise _foreign_index(path, f"it points into the middle of a line ({rec[:40]!r})") from None
            # an index built for another file sends the reader to offsets of that file: lines of
            # another contig or far from the range (or half lines, above) show it
            if parsed[0] != chrom or not lo < parsed[1] <= last:
                raise _foreign_index(path, f"asked for {chrom}:{lo + 1}-{last}, it gave {parsed[0]}:{parsed[1]}")
            if parsed[1] + len(parsed[2]) - 1 >= first:
                yield parsed
    except (OSError, ValueError) as exc:  # htslib via pysam: "iteration failed", an offset past the end
        raise _foreign_index(path, str(exc)) from None


def _foreign_index(path: str | Path, detail: str) -> InputFormatError:
    return InputFormatError(f"the tabix index does not belong to this file: {detail}", path=path,
                            hint=f"re-create it with `tabix -f -C -b 2 -e 2 -m 12 {Path(path).name}`")


def format_pat_line(chrom: str, start: int, pattern: str, count: int) -> str:
    return f"{chrom}\t{start}\t{pattern}\t{count}\n"

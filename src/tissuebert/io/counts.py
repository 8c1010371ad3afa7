"""Per-CpG count tables: modkit bedMethyl, Bismark ``.cov``, wgbs_tools ``.beta``/``.lbeta``.

Every reader yields, per batch of lines, (chrom, 0-based position, strand, methylated, total);
strand '+' calls sit at the C, '-' calls at the G (one base right of the C), '.' either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pysam

from tissuebert.errors import InputFormatError, require_file
from tissuebert.io.text import open_text

BATCH = 100_000
CountBatch = tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # chrom, pos, strand, meth, total
MOD_5MC = ("m", "21839")  # modkit codes of 5-methylcytosine


def _parse_bedmethyl(cols: list[str], path: Path, line: int | None) -> tuple[str, int, str, int, int] | None:
    """One bedMethyl line -> (chrom, pos, strand, meth, total), or None for another modification."""
    if len(cols) < 11:
        raise InputFormatError(f"bedMethyl line has {len(cols)} columns, expected >= 11", path=path, line=line,
                               hint="modkit pileup output, or ENCODE bedMethyl (coverage, percent in columns 10-11)")
    try:
        pos = int(cols[1])
        if len(cols) >= 12:  # modkit: Nvalid_cov, fraction, Nmod, Ncanonical, ...
            if cols[3] not in MOD_5MC:
                return None
            total, meth = int(cols[9]), int(cols[11])
        else:  # ENCODE: coverage, percent methylated
            total = int(cols[9])
            meth = int(round(total * float(cols[10]) / 100.0))
    except ValueError:
        raise InputFormatError("bedMethyl position/count columns must be numbers", path=path, line=line) from None
    if not 0 <= meth <= total:
        raise InputFormatError(f"bedMethyl counts inconsistent: {meth} modified of {total}", path=path, line=line)
    return cols[0], pos, cols[5] if cols[5] in "+-." else ".", meth, total


def _parse_cov(cols: list[str], path: Path, line: int | None) -> tuple[str, int, str, int, int]:
    """Bismark coverage line: chrom, start (1-based), end, percent, count methylated, count unmethylated."""
    if len(cols) < 6:
        raise InputFormatError(f"Bismark .cov line has {len(cols)} columns, expected 6", path=path, line=line,
                               hint="chrom start end percent count_methylated count_unmethylated")
    try:
        pos, meth, unmeth = int(cols[1]) - 1, int(cols[4]), int(cols[5])
    except ValueError:
        raise InputFormatError("Bismark .cov position/counts must be integers", path=path, line=line) from None
    if meth < 0 or unmeth < 0:
        raise InputFormatError("negative count", path=path, line=line)
    return cols[0], pos, ".", meth, meth + unmeth


def _batches(records: Iterator[tuple[str, int, str, int, int]]) -> Iterator[CountBatch]:
    chrom: str | None = None
    rows: list[tuple[int, str, int, int]] = []

    def flush() -> CountBatch:
        pos, strand, meth, total = zip(*rows)
        return (chrom, np.asarray(pos, np.int64), np.asarray(strand), np.asarray(meth, np.int64),
                np.asarray(total, np.int64))

    for rec in records:
        if rec[0] != chrom or len(rows) >= BATCH:
            if rows:
                yield flush()
            chrom, rows = rec[0], []
        rows.append(rec[1:])
    if rows:
        yield flush()


def iter_count_table(path: str | Path, fmt: str, regions: dict[str, list[tuple[int, int]]] | None = None) -> Iterator[CountBatch]:
    """Stream a bedMethyl or .cov file in batches; with a tabix index and ``regions``, only those."""
    path = require_file(path, f"{fmt} file")
    parse = _parse_bedmethyl if fmt == "bedmethyl" else _parse_cov
    index = next((Path(str(path) + s) for s in (".tbi", ".csi") if Path(str(path) + s).is_file()), None)

    def records() -> Iterator[tuple[str, int, str, int, int]]:
        if index is not None and regions is not None:
            with pysam.TabixFile(str(path), index=str(index)) as tbx:
                for chrom, spans in regions.items():
                    if chrom not in tbx.contigs:
                        continue
                    for start, end in spans:
                        for rec in tbx.fetch(chrom, start, end):
                            parsed = parse(rec.split("\t") if "\t" in rec else rec.split(), path, None)
                            if parsed is not None:
                                yield parsed
            return
        with open_text(path) as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip() or line.startswith(("#", "track")):
                    continue
                cols = line.split()
                parsed = parse(cols, path, line_no)
                if parsed is not None:
                    yield parsed

    try:
        yield from _batches(records())
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot read {fmt} file: {exc}", path=path) from None


def read_beta(path: str | Path, cpg_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(methylated, total) at the given 1-based CpG indices of a wgbs_tools .beta (uint8 pairs)
    or .lbeta (uint16 pairs) file, memory-mapped."""
    path = require_file(path, ".beta file")
    dtype = np.uint16 if path.suffix == ".lbeta" else np.uint8
    size = path.stat().st_size
    if size == 0 or size % (2 * np.dtype(dtype).itemsize):
        raise InputFormatError(f"{size} bytes is not a whole number of (meth, cov) pairs", path=path,
                               hint="is this a wgbs_tools .beta file?")
    table = np.memmap(path, dtype=dtype, mode="r").reshape(-1, 2)
    if cpg_index.size and int(cpg_index.max()) > table.shape[0]:
        raise InputFormatError(f"the panel's CpG index {int(cpg_index.max())} is beyond the file's {table.shape[0]} CpGs",
                               path=path, hint="the .beta and --cpg-index must be of the same genome")
    meth = table[cpg_index - 1, 0].astype(np.int64)
    total = table[cpg_index - 1, 1].astype(np.int64)
    if np.any(meth > total):
        raise InputFormatError("a CpG has more methylated than covering reads", path=path)
    return meth, total

"""wgbs_tools CpG index (``CpG.bed.gz``: ``chr  loc  index``, loc = 1-based C, index = 1-based
genome-wide CpG ordinal). Only the chromosomes (and, with a tabix index, the ranges) the panel
needs are loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pysam

from tissuebert.errors import InputFormatError, reading, require_file
from tissuebert.io.fasta import naming_hint
from tissuebert.io.text import open_text, tabix_index


def _parse(cols: list[str], path: Path, line: int | None) -> tuple[int, int]:
    if len(cols) < 3:
        raise InputFormatError(f"CpG index line needs 'chr loc index', got {len(cols)} column(s)", path=path, line=line)
    try:
        loc, idx = int(cols[1]), int(cols[2])
    except ValueError:
        raise InputFormatError(f"CpG index loc/index must be integers, got {cols[1]!r} {cols[2]!r}", path=path,
                               line=line) from None
    if loc < 1 or idx < 1:
        raise InputFormatError("CpG index loc and index are 1-based (>= 1)", path=path, line=line)
    return loc, idx


_MAX_JUMPS = 100_000  # gaps of a sliced index checked per chromosome


@dataclass
class CpGIndexSlice:
    """What ``read_cpg_index`` found: the CpGs of the requested ranges and per-chromosome facts."""

    cpgs: dict[str, tuple[np.ndarray, np.ndarray]]  # chrom -> (C position 0-based, CpG index), sorted
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # chrom -> (first, last) CpG index
    first: tuple[str, int, int] | None = None  # the file's first entry: (chrom, loc 1-based, index)
    # where a streamed chromosome's indices do not count up by one: (chrom, C position 0-based of the
    # entry before, its index, C position of the entry, its index, line of the entry). A slice of an
    # index has such gaps legitimately; the caller checks each against the CGs the FASTA has between.
    jumps: list[tuple[str, int, int, int, int, int]] = field(default_factory=list)


def load_cpg_index(path: str | Path, ranges: dict[str, list[tuple[int, int]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CpGs of the chromosomes in ``ranges`` -> {chrom: (C position 0-based, CpG index)}, sorted."""
    return read_cpg_index(path, ranges).cpgs


def read_cpg_index(path: str | Path, ranges: dict[str, list[tuple[int, int]]],
                   lengths: dict[str, int] | None = None) -> CpGIndexSlice:
    """CpGs of the chromosomes in ``ranges`` plus each one's first and last CpG index.

    ``ranges`` maps chrom -> 0-based half-open intervals that will be looked up; with a tabix
    index (``.csi``/``.tbi``) only those (and each chromosome's two ends, found through
    ``lengths``) are read, otherwise the file is streamed once and every chromosome read must
    be numbered consecutively. A chromosome absent from the index is an error (with a
    ``chr``-naming hint).
    """
    path = require_file(path, "CpG index")
    with reading(path, "CpG index", hint="is it truncated, or not a (b)gzipped or plain `chr loc index` file?"):
        index = tabix_index(path)
        if index is not None:
            return _read_tabix(path, index, ranges, lengths or {})
        return _read_stream(path, ranges)


def _read_stream(path: Path, ranges: dict[str, list[tuple[int, int]]]) -> CpGIndexSlice:
    found: dict[str, tuple[list[int], list[int], list[int]]] = {c: ([], [], []) for c in ranges}
    seen: set[str] = set()
    first = None
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            tab = line.find("\t")
            chrom = line[:tab] if tab > 0 else line.split(maxsplit=1)[0] if line.strip() else ""
            seen.add(chrom)
            if first is None and chrom:
                first = (chrom, *_parse(line.split(), path, line_no))
            if chrom not in found:
                continue
            loc, idx = _parse(line.split(), path, line_no)
            found[chrom][0].append(loc - 1)
            found[chrom][1].append(idx)
            found[chrom][2].append(line_no)
    for chrom in ranges:
        if chrom not in seen:
            _missing(chrom, seen, path)
    out = CpGIndexSlice({}, first=first)
    for chrom, (locs, idxs, line_nos) in found.items():
        pos, ords, order = _sorted(locs, idxs)
        for j in np.flatnonzero(np.diff(ords) != 1)[:_MAX_JUMPS].tolist():
            out.jumps.append((chrom, int(pos[j]), int(ords[j]), int(pos[j + 1]), int(ords[j + 1]),
                              line_nos[int(order[j + 1])]))
        out.cpgs[chrom] = (pos, ords)
        if ords.size:
            out.ranges[chrom] = (int(ords[0]), int(ords[-1]))
    return out


def _read_tabix(path: Path, index: Path, ranges: dict[str, list[tuple[int, int]]], lengths: dict[str, int]) -> CpGIndexSlice:
    out = CpGIndexSlice({})
    with pysam.TabixFile(str(path), index=str(index)) as tbx:
        contigs = list(tbx.contigs)
        for rec in tbx.fetch(contigs[0]) if contigs else ():
            cols = rec.split("\t")
            out.first = (cols[0], *_parse(cols, path, None))
            break
        for chrom, spans in ranges.items():
            if chrom not in contigs:
                _missing(chrom, set(contigs), path)
            locs: list[int] = []
            idxs: list[int] = []
            last = 0
            for start, end in _merge(spans):
                for rec in tbx.fetch(chrom, max(start, last), end):
                    loc, idx = _parse(rec.split("\t"), path, None)
                    locs.append(loc - 1)
                    idxs.append(idx)
                last = end
            pos, ords, _ = _sorted(locs, idxs)
            out.cpgs[chrom] = (pos, ords)
            ends = _chrom_ends(tbx, path, chrom, lengths.get(chrom))
            if ends is not None:
                out.ranges[chrom] = ends
    return out


def _chrom_ends(tbx: pysam.TabixFile, path: Path, chrom: str, length: int | None) -> tuple[int, int] | None:
    """(first, last) CpG index of ``chrom`` through the tabix index; None without its length."""
    first = None
    for rec in tbx.fetch(chrom):
        first = _parse(rec.split("\t"), path, None)[1]
        break
    if first is None or length is None:
        return None
    span = 1 << 16
    while True:  # the last entry: look back from the chromosome end, further each time
        recs = list(tbx.fetch(chrom, max(0, length - span), length + 1))
        if recs or span >= length:
            break
        span *= 16
    last = max((_parse(r.split("\t"), path, None)[1] for r in recs), default=first)
    return first, last


def _sorted(locs: list[int], idxs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.asarray(locs, dtype=np.int64)
    ords = np.asarray(idxs, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    return pos[order], ords[order], order


def find_line(path: str | Path, chrom: str, loc: int) -> int | None:
    """1-based line of the entry ``chrom loc`` (for error messages; None with a tabix index or if absent)."""
    path = Path(path)
    if tabix_index(path) is not None:
        return None
    prefix = f"{chrom}\t{loc}\t"
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.startswith(prefix):
                return line_no
    return None


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _missing(chrom: str, known: set[str], path: Path) -> None:
    hint = (naming_hint(chrom, known, "the CpG index")
            or "the CpG index must be the one of the reference genome (wgbs_tools init_genome)")
    raise InputFormatError(f"chromosome {chrom!r} of the panel is not in the CpG index", path=path, hint=hint)

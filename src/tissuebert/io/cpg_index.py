"""wgbs_tools CpG index (``CpG.bed.gz``: ``chr  loc  index``, loc = 1-based C, index = 1-based
genome-wide CpG ordinal). Only the chromosomes (and, with a tabix index, the ranges) the panel
needs are loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam

from tissuebert.errors import InputFormatError, require_file
from tissuebert.io.bed import open_text, tabix_index
from tissuebert.io.fasta import naming_hint


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


def load_cpg_index(path: str | Path, ranges: dict[str, list[tuple[int, int]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CpGs of the chromosomes in ``ranges`` -> {chrom: (C position 0-based, CpG index)}, sorted.

    ``ranges`` maps chrom -> 0-based half-open intervals that will be looked up; with a tabix
    index (``.csi``/``.tbi``) only those are read, otherwise the file is streamed once.
    A chromosome absent from the index is an error (with a ``chr``-naming hint).
    """
    path = require_file(path, "CpG index")
    found: dict[str, tuple[list[int], list[int]]] = {c: ([], []) for c in ranges}
    index = tabix_index(path)
    if index is not None:
        with pysam.TabixFile(str(path), index=str(index)) as tbx:
            contigs = set(tbx.contigs)
            for chrom, spans in ranges.items():
                if chrom not in contigs:
                    _missing(chrom, contigs, path)
                locs, idxs = found[chrom]
                last = 0
                for start, end in _merge(spans):
                    for rec in tbx.fetch(chrom, max(start, last), end):
                        loc, idx = _parse(rec.split("\t"), path, None)
                        locs.append(loc - 1)
                        idxs.append(idx)
                    last = end
    else:
        seen: set[str] = set()
        with open_text(path) as fh:
            for line_no, line in enumerate(fh, start=1):
                tab = line.find("\t")
                chrom = line[:tab] if tab > 0 else line.split(maxsplit=1)[0] if line.strip() else ""
                seen.add(chrom)
                if chrom not in found:
                    continue
                loc, idx = _parse(line.split(), path, line_no)
                found[chrom][0].append(loc - 1)
                found[chrom][1].append(idx)
        for chrom in ranges:
            if chrom not in seen:
                _missing(chrom, seen, path)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for chrom, (locs, idxs) in found.items():
        pos = np.asarray(locs, dtype=np.int64)
        ords = np.asarray(idxs, dtype=np.int64)
        order = np.argsort(pos, kind="stable")
        out[chrom] = (pos[order], ords[order])
    return out


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
    hint = naming_hint(chrom, known, "the CpG index") or "the CpG index must be the one of the reference genome (wgbs_tools init_genome)"
    raise InputFormatError(f"chromosome {chrom!r} of the panel is not in the CpG index", path=path, hint=hint)

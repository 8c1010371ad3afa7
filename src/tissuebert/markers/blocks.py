"""Candidate blocks for marker selection: a wgbs_tools-style block BED, or CpG blocks tiled from
the genome's CpG index.

A block is ``chrom start end`` (0-based, half-open bp) plus the genome-wide CpG indices it holds,
``cpg_first`` (1-based, the wgbs_tools ``startCpG``) to ``cpg_end`` (exclusive, ``endCpG``).
Blocks are sorted by CpG index and do not overlap: a fragment's calls in a block are then read
off one CpG range, and a block's statistics never count a fragment twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tissuebert.errors import InputFormatError, require_file
from tissuebert.io.bed import bed_rows
from tissuebert.io.text import open_text


@dataclass
class Blocks:
    chroms: list[str]  # chromosome names, index = chrom id (in file order)
    chrom_id: np.ndarray  # (B,) int32
    start: np.ndarray  # (B,) int64, 0-based
    end: np.ndarray  # (B,) int64, exclusive
    cpg_first: np.ndarray  # (B,) int64, 1-based genome-wide CpG index of the first CpG
    cpg_end: np.ndarray  # (B,) int64, exclusive

    @property
    def n_blocks(self) -> int:
        return int(self.start.shape[0])

    @property
    def n_cpgs(self) -> np.ndarray:
        return self.cpg_end - self.cpg_first

    def subset(self, sel: slice | np.ndarray) -> "Blocks":
        return Blocks(self.chroms, self.chrom_id[sel], self.start[sel], self.end[sel], self.cpg_first[sel],
                      self.cpg_end[sel])

    def chrom_names(self) -> np.ndarray:
        return np.asarray(self.chroms, dtype=object)[self.chrom_id]


def read_blocks(path: str | Path, cpg_index: str | Path | None = None) -> Blocks:
    """A BED of candidate blocks: ``chrom start end [startCpG endCpG ...]`` (wgbs_tools blocks).

    Without the two CpG columns the CpG ranges come from ``cpg_index`` (CpGs whose C lies in
    ``[start, end)``). Header/comment lines are skipped. Unsorted or overlapping blocks are an error.
    """
    path = require_file(path, "block BED")
    chroms: dict[str, int] = {}
    rows: list[tuple[int, int, int, int, int, int]] = []
    with_cpgs: bool | None = None
    with open_text(path) as fh:
        for line_no, cols, start, end in bed_rows(fh, path, "a block line"):
            has = len(cols) >= 5 and cols[3].isdigit() and cols[4].isdigit()
            if with_cpgs is None:
                with_cpgs = has
            elif has != with_cpgs:
                raise InputFormatError("some lines have startCpG/endCpG columns and some do not", path=path, line=line_no)
            first, last = (int(cols[3]), int(cols[4])) if has else (0, 0)
            if start < 0 or end <= start or (has and (first < 1 or last <= first)):
                raise InputFormatError(f"block {cols[0]}:{start}-{end} is empty or negative", path=path, line=line_no,
                                       hint="BED is 0-based half-open (end > start); endCpG is exclusive (> startCpG)")
            chrom_id = chroms.setdefault(cols[0], len(chroms))
            rows.append((chrom_id, start, end, first, last, line_no))
    if not rows:
        raise InputFormatError("no blocks in BED", path=path)
    arr = np.asarray(rows, dtype=np.int64)
    blocks = Blocks(list(chroms), arr[:, 0].astype(np.int32), arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4])
    line_nos = arr[:, 5]
    if not with_cpgs:
        if cpg_index is None:
            raise InputFormatError("the block BED has no startCpG/endCpG columns", path=path,
                                   hint="give --cpg-index to find each block's CpGs, or a wgbs_tools blocks file")
        keep = _cpgs_from_index(blocks, cpg_index, path)
        blocks, line_nos = blocks.subset(keep), line_nos[keep]
    _check_order(blocks, line_nos, path)
    return blocks


def _cpgs_from_index(blocks: Blocks, cpg_index: str | Path, path: Path) -> np.ndarray:
    """Fill each block's CpG range from the index; returns the mask of blocks holding a CpG."""
    from tissuebert.io.cpg_index import read_cpg_index

    ranges: dict[str, list[tuple[int, int]]] = {}
    for chrom_id, chrom in enumerate(blocks.chroms):
        sel = blocks.chrom_id == chrom_id
        ranges[chrom] = list(zip(blocks.start[sel].tolist(), blocks.end[sel].tolist()))
    cpgs = read_cpg_index(cpg_index, ranges).cpgs
    for chrom_id, chrom in enumerate(blocks.chroms):
        sel = np.flatnonzero(blocks.chrom_id == chrom_id)
        pos, ords = cpgs[chrom]
        lo = np.searchsorted(pos, blocks.start[sel])
        hi = np.searchsorted(pos, blocks.end[sel])
        safe = np.minimum(lo, max(pos.size - 1, 0))
        blocks.cpg_first[sel] = np.where(hi > lo, ords[safe] if pos.size else 0, 0)
        blocks.cpg_end[sel] = np.where(hi > lo, blocks.cpg_first[sel] + (hi - lo), 0)
    keep = blocks.cpg_end > blocks.cpg_first  # a block without CpGs can never be a marker
    if not keep.any():
        raise InputFormatError("no block holds a CpG of the CpG index", path=path,
                               hint="are the blocks and the CpG index of the same genome build?")
    return keep


def _check_order(blocks: Blocks, line_nos: np.ndarray, path: Path) -> None:
    if blocks.n_blocks < 2:
        return
    same = blocks.chrom_id[1:] == blocks.chrom_id[:-1]
    bad_bp = same & (blocks.start[1:] < blocks.end[:-1])
    bad_cpg = blocks.cpg_first[1:] < blocks.cpg_end[:-1]
    bad = np.flatnonzero(bad_bp | bad_cpg)
    if bad.size:
        k = int(bad[0]) + 1
        line = int(line_nos[k]) if k < line_nos.size else None
        raise InputFormatError(f"block {blocks.chroms[blocks.chrom_id[k]]}:{blocks.start[k]}-{blocks.end[k]} is out of "
                               f"order or overlaps the block before it", path=path, line=line,
                               hint="sort the blocks by CpG index (`sort -k4,4n`) and merge overlapping ones")
    seen_after = set()
    changes = np.flatnonzero(~same) + 1
    for k in changes.tolist():
        chrom = int(blocks.chrom_id[k])
        seen_after.add(int(blocks.chrom_id[k - 1]))
        if chrom in seen_after:
            line = int(line_nos[k]) if k < line_nos.size else None
            raise InputFormatError(f"chromosome {blocks.chroms[chrom]} appears in two separate runs of blocks",
                                   path=path, line=line, hint="sort the blocks by chromosome and position")


def tile_blocks(cpg_index: str | Path, block_bp: int, min_cpgs: int) -> Blocks:
    """CpG blocks: each chromosome cut into ``block_bp`` windows, kept with >= ``min_cpgs`` CpGs;
    a block spans its first CpG's C to its last CpG's G (so it never leaves the chromosome)."""
    path = require_file(cpg_index, "CpG index")
    chroms: dict[str, int] = {}
    parts: list[np.ndarray] = []
    current: list[tuple[int, int]] = []
    current_chrom: str | None = None

    def flush() -> None:
        if not current:
            return
        arr = np.asarray(current, dtype=np.int64)  # (n, 2): loc (1-based), index
        win = (arr[:, 0] - 1) // block_bp
        cut = np.flatnonzero(np.diff(win) != 0) + 1
        first = np.concatenate([[0], cut])
        last = np.concatenate([cut, [arr.shape[0]]]) - 1
        keep = (last - first + 1) >= min_cpgs
        first, last = first[keep], last[keep]
        chrom_id = chroms.setdefault(current_chrom, len(chroms))
        parts.append(np.stack([np.full(first.size, chrom_id), arr[first, 0] - 1, arr[last, 0] + 1,
                               arr[first, 1], arr[last, 1] + 1], axis=1))
        current.clear()

    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) < 3 or not cols[1].isdigit() or not cols[2].isdigit():
                raise InputFormatError("CpG index line needs 'chr loc index' (integers)", path=path, line=line_no)
            if cols[0] != current_chrom:
                flush()
                if cols[0] in chroms:
                    raise InputFormatError(f"chromosome {cols[0]} appears in two separate runs", path=path, line=line_no)
                current_chrom = cols[0]
            current.append((int(cols[1]), int(cols[2])))
    flush()
    arr = np.concatenate(parts) if parts else np.zeros((0, 5), dtype=np.int64)
    if arr.shape[0] == 0:
        raise InputFormatError(f"no {block_bp} bp window holds >= {min_cpgs} CpGs", path=path,
                               hint="lower --min-block-cpgs or raise --tile-bp")
    blocks = Blocks(list(chroms), arr[:, 0].astype(np.int32), arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4])
    _check_order(blocks, np.zeros(0, dtype=np.int64), path)
    return blocks

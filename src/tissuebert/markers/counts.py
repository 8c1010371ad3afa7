"""Per-sample, per-block fragment counts: the numbers every marker statistic is made of.

UXM's per-fragment definition (Loyfer et al. 2023): a fragment is informative in a block when
it has >= ``min_cpgs`` CpG calls there; it is U when its methylated fraction there is
<= ``u_max`` and M when it is >= ``m_min``. Mean methylation counts every call.

Each counter returns a ``(B, N_COUNTS)`` float64 array; columns are ``COUNT_COLUMNS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tissuebert.constants import METH_M, METH_NONE
from tissuebert.errors import InputFormatError, require_file
from tissuebert.io.pat import iter_pat
from tissuebert.markers.blocks import Blocks

COUNT_COLUMNS = ("n_frag", "n_u", "n_m", "meth_calls", "calls")
FRAG, U, M, METH, CALLS = range(len(COUNT_COLUMNS))
PAT_CHUNK = 200_000  # .pat lines handled per vectorised step (bounds memory per worker)


@dataclass(frozen=True)
class FragmentRule:
    """UXM's fragment classes."""

    min_cpgs: int = 4  # a fragment counts in a block with at least this many CpG calls there
    u_max: float = 0.25  # methylated fraction <= u_max: U fragment
    m_min: float = 0.75  # methylated fraction >= m_min: M fragment


def _accumulate(out: np.ndarray, block: np.ndarray, n_called: np.ndarray, n_meth: np.ndarray,
                weight: np.ndarray, rule: FragmentRule) -> None:
    """Add fragment-in-block segments (block id, calls, methylated calls, read count) to ``out``."""
    n_blocks = out.shape[0]
    informative = n_called >= rule.min_cpgs
    frac = np.divide(n_meth, n_called, out=np.zeros(n_called.shape, dtype=np.float64), where=n_called > 0)
    w_inf = weight * informative
    out[:, FRAG] += np.bincount(block, weights=w_inf, minlength=n_blocks)
    out[:, U] += np.bincount(block, weights=w_inf * (frac <= rule.u_max), minlength=n_blocks)
    out[:, M] += np.bincount(block, weights=w_inf * (frac >= rule.m_min), minlength=n_blocks)
    out[:, METH] += np.bincount(block, weights=weight * n_meth, minlength=n_blocks)
    out[:, CALLS] += np.bincount(block, weights=weight * n_called, minlength=n_blocks)


def _count_chunk(out: np.ndarray, blocks: Blocks, starts: np.ndarray, patterns: list[str], counts: np.ndarray,
                 rule: FragmentRule) -> None:
    lengths = np.fromiter((len(p) for p in patterns), dtype=np.int64, count=len(patterns))
    codes = np.frombuffer("".join(patterns).encode("ascii"), dtype=np.uint8)
    read_of = np.repeat(np.arange(len(patterns)), lengths)  # (P,) read of every pattern character
    offsets = np.arange(codes.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    cpg = starts[read_of] + offsets  # (P,) genome-wide CpG index of every character
    called = codes != ord(".")
    read_of, cpg, meth = read_of[called], cpg[called], codes[called] == ord("C")
    block = np.searchsorted(blocks.cpg_first, cpg, side="right") - 1
    inside = (block >= 0) & (cpg < blocks.cpg_end[np.maximum(block, 0)])
    read_of, block, meth = read_of[inside], block[inside], meth[inside]
    if read_of.size == 0:
        return
    # reads come in file order and a read's CpGs in index order: (read, block) pairs are runs
    new = np.ones(read_of.size, dtype=bool)
    new[1:] = (read_of[1:] != read_of[:-1]) | (block[1:] != block[:-1])
    seg = np.cumsum(new) - 1
    n_called = np.bincount(seg).astype(np.float64)
    n_meth = np.bincount(seg, weights=meth).astype(np.float64)
    first = np.flatnonzero(new)
    _accumulate(out, block[first], n_called, n_meth, counts[read_of[first]].astype(np.float64), rule)


def _ranged_lines(path: Path, blocks: Blocks):
    """Only the lines over the blocks' CpG range, per chromosome, through the tabix index."""
    from tissuebert.io.pat import fetch_pat, open_indexed_pat

    with open_indexed_pat(path) as tbx:
        for chrom_id, chrom in enumerate(blocks.chroms):
            sel = blocks.chrom_id == chrom_id
            if sel.any():
                first, last = int(blocks.cpg_first[sel].min()), int(blocks.cpg_end[sel].max()) - 1
                yield from fetch_pat(tbx, path, chrom, first, last)


def count_pat(path: str | Path, blocks: Blocks, rule: FragmentRule, *, ranged: bool = False) -> np.ndarray:
    """Stream a .pat(.gz) once, in chunks of ``PAT_CHUNK`` lines. ``ranged``: read only the
    blocks' CpG ranges through the file's tabix index when it has one (a shard's slice)."""
    from tissuebert.io.text import tabix_index

    out = np.zeros((blocks.n_blocks, len(COUNT_COLUMNS)), dtype=np.float64)
    starts: list[int] = []
    patterns: list[str] = []
    counts: list[int] = []
    path = require_file(path, ".pat file")
    lines = _ranged_lines(path, blocks) if ranged and tabix_index(path) is not None else iter_pat(path)
    for _chrom, start, pattern, count, _line in lines:
        starts.append(start)
        patterns.append(pattern)
        counts.append(count)
        if len(starts) >= PAT_CHUNK:
            _count_chunk(out, blocks, np.asarray(starts, dtype=np.int64), patterns, np.asarray(counts), rule)
            starts, patterns, counts = [], [], []
    if starts:
        _count_chunk(out, blocks, np.asarray(starts, dtype=np.int64), patterns, np.asarray(counts), rule)
    return out


def count_beta(path: str | Path, blocks: Blocks, n_genome_cpgs: int | None = None) -> np.ndarray:
    """A wgbs_tools .beta (uint8 pairs ``meth, coverage`` per genome CpG): mean methylation only;
    the fragment columns stay 0 (a .beta holds no fragments)."""
    path = require_file(path, ".beta file")
    size = path.stat().st_size
    if size % 2:
        raise InputFormatError(f".beta size {size} bytes is odd: not pairs of uint8", path=path,
                               hint="is this a wgbs_tools .beta file?")
    n_cpgs = size // 2
    if n_genome_cpgs is not None and n_cpgs != n_genome_cpgs:
        raise InputFormatError(f".beta holds {n_cpgs:,} CpGs but the genome has {n_genome_cpgs:,}", path=path,
                               hint="the .beta is of another genome build than the blocks/CpG index")
    if blocks.n_blocks and int(blocks.cpg_end[-1]) - 1 > n_cpgs:
        raise InputFormatError(f".beta holds {n_cpgs:,} CpGs but the blocks reach CpG {int(blocks.cpg_end[-1]) - 1:,}",
                               path=path, hint="the .beta is of another genome build than the blocks")
    data = np.memmap(path, dtype=np.uint8, mode="r", shape=(n_cpgs, 2))
    out = np.zeros((blocks.n_blocks, len(COUNT_COLUMNS)), dtype=np.float64)
    # blocks are sorted and disjoint: cumulative sums over each block's CpG range, in slices
    for lo in range(0, blocks.n_blocks, 1 << 16):
        sub = slice(lo, lo + (1 << 16))
        first, end = blocks.cpg_first[sub] - 1, blocks.cpg_end[sub] - 1
        base = int(first[0])
        span = np.asarray(data[base: int(end[-1])], dtype=np.int64)
        csum = np.concatenate([np.zeros((1, 2), dtype=np.int64), np.cumsum(span, axis=0)])
        rel_lo, rel_hi = first - base, end - base
        out[sub, METH] = csum[rel_hi, 0] - csum[rel_lo, 0]
        out[sub, CALLS] = csum[rel_hi, 1] - csum[rel_lo, 1]
        del span, csum
    return out


def count_store_sample(reads, cpg_counts: np.ndarray, rule: FragmentRule) -> np.ndarray:
    """A store sample (reads per panel window): every window is a block."""
    from tissuebert.store.sample import unpack_calls

    n_windows = cpg_counts.shape[0]
    out = np.zeros((n_windows, len(COUNT_COLUMNS)), dtype=np.float64)
    window_idx = np.asarray(reads.window_idx, dtype=np.int64)
    step = 1 << 20
    for lo in range(0, window_idx.size, step):
        codes = unpack_calls(np.asarray(reads.calls[lo: lo + step]))  # (R, max CpGs)
        n_called = (codes != METH_NONE).sum(axis=1).astype(np.float64)
        n_meth = (codes == METH_M).sum(axis=1).astype(np.float64)
        _accumulate(out, window_idx[lo: lo + step], n_called, n_meth, np.ones(n_called.size), rule)
    return out

"""Projecting reads onto panel windows.

Every reader turns its input into *ordinal reads*: a chromosome, the genome-wide index of the
read's first CpG and one call code per consecutive CpG from there (0 U, 1 M, 2 no call) --
exactly a .pat line. :class:`Projector` cuts each such read into one row per panel window in
which it has at least ``min_cpgs`` calls, vectorised over batches of reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tissuebert.constants import METH_NONE
from tissuebert.store.panel import Panel
from tissuebert.store.sample import pack_calls


@dataclass
class WindowReads:
    """Reads of one input projected onto a panel: one row per (read, window)."""

    window_idx: np.ndarray  # (R,) uint32, sorted
    calls: np.ndarray  # (R, panel.call_bytes) uint8, packed 2-bit calls
    counts: np.ndarray  # (R,) int64: 1 each, or multiplicities when collapsed
    pseudo: bool = False  # rows were sampled from per-CpG counts, not observed reads
    stats: dict = field(default_factory=dict)
    read_names: list[str] | None = None  # per row: the names of its reads, comma-joined, in file order (BAM)

    @property
    def n_rows(self) -> int:
        return int(self.window_idx.shape[0])


# Windows closer than this (bp) are fetched together from an indexed input.
CLUSTER_GAP = 1000


class PanelIndex:
    """Per-chromosome lookup tables of a panel: window CpG-ordinal ranges and CpG positions."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        n_cpgs = panel.n_cpgs
        width = max(panel.max_cpgs, 1)
        offs = panel.padded_offsets()  # (W, K), pad = N_TOKENS
        self.width = width
        self.ord_matrix = np.zeros((panel.n_windows, width), dtype=np.int64)  # 0 = padding
        has = offs < 148
        rows = np.repeat(np.arange(panel.n_windows), n_cpgs)
        cols = np.arange(panel.cpg_index.shape[0]) - np.repeat(panel.cpg_ptr[:-1], n_cpgs)
        self.ord_matrix[rows, cols] = panel.cpg_index
        assert np.array_equal(has, self.ord_matrix > 0)
        self.chrom_windows: dict[str, np.ndarray] = {}
        self.lo: dict[str, np.ndarray] = {}
        self.hi: dict[str, np.ndarray] = {}
        for cid, chrom in enumerate(panel.chroms):
            wids = np.flatnonzero((panel.win_chrom == cid) & (n_cpgs > 0))
            self.chrom_windows[chrom] = wids
            self.lo[chrom] = panel.cpg_index[panel.cpg_ptr[wids]]
            self.hi[chrom] = panel.cpg_index[panel.cpg_ptr[wids + 1] - 1]
            if np.any(np.diff(self.lo[chrom]) < 0) or np.any(np.diff(self.hi[chrom]) < 0):
                raise ValueError(f"CpG ordinals of {chrom} are not in genome order")
        # C positions (0-based) of the panel's distinct CpGs per chromosome, and their ordinals
        cpg_chrom = np.repeat(panel.win_chrom, n_cpgs)
        cpg_pos = np.repeat(panel.win_start, n_cpgs) + panel.cpg_offset
        self.cpg_pos: dict[str, np.ndarray] = {}
        self.cpg_pos_list: dict[str, list[int]] = {}  # the same as Python ints, for per-read bisect
        self.cpg_ord: dict[str, np.ndarray] = {}
        for cid, chrom in enumerate(panel.chroms):
            pos, first = np.unique(cpg_pos[cpg_chrom == cid], return_index=True)
            self.cpg_pos[chrom] = pos
            self.cpg_pos_list[chrom] = pos.tolist()
            self.cpg_ord[chrom] = panel.cpg_index[cpg_chrom == cid][first]

    def clusters(self, chrom: str, gap: int | None = None) -> list[tuple[int, int, int, int]]:
        """Windows of ``chrom`` grouped where they lie within ``gap`` bp of each other:
        (start bp, end bp, first rank, last rank + 1), ranks indexing ``chrom_windows[chrom]``."""
        gap = CLUSTER_GAP if gap is None else gap
        wids = self.chrom_windows.get(chrom, np.zeros(0, np.int64))
        starts = self.panel.win_start[wids]
        out: list[tuple[int, int, int, int]] = []
        begin = 0
        for k in range(1, len(wids) + 1):
            if k == len(wids) or starts[k] > starts[k - 1] + 150 + gap:
                out.append((int(starts[begin]), int(starts[k - 1]) + 150, begin, k))
                begin = k
        return out


class Projector:
    """Accumulates ordinal reads, one batch at a time, as packed (window, calls, count) rows."""

    def __init__(self, index: PanelIndex, *, min_cpgs: int = 1, track_reads: bool = False) -> None:
        self.index = index
        self.min_cpgs = max(1, int(min_cpgs))
        self.call_bytes = index.panel.call_bytes
        self._win: list[np.ndarray] = []
        self._calls: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        # track_reads: every row keeps the id of its read (a reader that knows names numbers them
        # with new_read, in file order), so collapsed rows can list the reads they merged
        self.track_reads = track_reads
        self.names: list[str] = []
        self._ids: list[np.ndarray] = []
        self.reads_in = 0  # reads seen (count-weighted)
        self.reads_used = 0  # reads giving at least one row
        self.rows_dropped = 0  # (read, window) pairs under min_cpgs, count-weighted

    def new_read(self, name: str) -> int:
        """The id of a named read (ids grow in the order reads are met: file order)."""
        self.names.append(name)
        return len(self.names) - 1

    def add(self, chrom: str, start: np.ndarray, codes: np.ndarray, ptr: np.ndarray, counts: np.ndarray,
            rank_lo: np.ndarray | None = None, rank_hi: np.ndarray | None = None,
            read_ids: np.ndarray | None = None) -> None:
        """Project a batch of reads on one chromosome.

        ``start`` (N,) first CpG ordinal; read i's codes are ``codes[ptr[i]:ptr[i+1]]``; ``counts``
        (N,) multiplicities. ``rank_lo``/``rank_hi`` (N,) restrict read i to the chromosome's
        windows of rank [rank_lo, rank_hi) -- the cluster it was fetched for, so a read fetched
        for two clusters is counted once in each and never twice in one window. ``read_ids`` (N,)
        (with ``track_reads``): each read's id from :meth:`new_read`.
        """
        if self.track_reads and read_ids is None:
            raise ValueError("a Projector with track_reads needs read_ids")
        n_reads = start.shape[0]
        if n_reads == 0:
            return
        self.reads_in += int(counts.sum())
        wids = self.index.chrom_windows.get(chrom)
        if wids is None:
            return
        lo, hi = self.index.lo[chrom], self.index.hi[chrom]
        length = np.diff(ptr)
        first = np.searchsorted(hi, start, side="left")  # first window ending at/after the read start
        last = np.searchsorted(lo, start + length - 1, side="right") - 1
        if rank_lo is not None:
            first = np.maximum(first, rank_lo)
            last = np.minimum(last, rank_hi - 1)
        n_win = np.clip(last - first + 1, 0, None)
        total = int(n_win.sum())
        if total == 0:
            return
        pair_read = np.repeat(np.arange(n_reads), n_win)  # (P,)
        pair_rank = np.arange(total) - np.repeat(np.cumsum(n_win) - n_win, n_win)
        pair_win = wids[first[pair_read] + pair_rank]  # (P,)
        ords = self.index.ord_matrix[pair_win]  # (P, K)
        rel = ords - start[pair_read, None]  # (P, K) position inside the read's pattern
        valid = (ords > 0) & (rel >= 0) & (rel < length[pair_read, None])
        gather = ptr[pair_read, None] + np.clip(rel, 0, None)
        gather = np.where(valid, gather, 0)
        calls = np.where(valid, codes[gather] if codes.size else METH_NONE, METH_NONE).astype(np.uint8)  # (P, K)
        n_calls = (calls != METH_NONE).sum(axis=1)
        ok = n_calls >= self.min_cpgs
        self.rows_dropped += int(counts[pair_read[~ok]].sum())
        used = np.zeros(n_reads, dtype=bool)
        used[pair_read[ok]] = True
        self.reads_used += int(counts[used].sum())
        if not ok.any():
            return
        self._win.append(pair_win[ok].astype(np.uint32))
        self._calls.append(pack_calls(calls[ok], self.call_bytes))
        self._counts.append(counts[pair_read[ok]].astype(np.int64))
        if self.track_reads:
            self._ids.append(np.asarray(read_ids, np.int64)[pair_read[ok]])

    def add_rows(self, window_idx: np.ndarray, calls: np.ndarray, counts: np.ndarray) -> None:
        """Add rows already cut to windows: (R,) window ids, (R, K) codes, (R,) counts."""
        if self.track_reads:
            raise ValueError("rows cut to windows carry no read names")
        n_calls = (calls != METH_NONE).sum(axis=1)
        ok = n_calls >= self.min_cpgs
        self.rows_dropped += int(counts[~ok].sum())
        if ok.any():
            self._win.append(window_idx[ok].astype(np.uint32))
            self._calls.append(pack_calls(calls[ok], self.call_bytes))
            self._counts.append(counts[ok].astype(np.int64))

    def finish(self, *, collapse: bool, max_reads_per_window: int | None, seed: int, pseudo: bool,
               stats: dict) -> WindowReads:
        """Cap reads per window (uniformly at random, seeded), then expand or collapse rows."""
        if self._win:
            win = np.concatenate(self._win)
            calls = np.concatenate(self._calls)
            counts = np.concatenate(self._counts)
        else:
            win = np.zeros(0, np.uint32)
            calls = np.zeros((0, self.call_bytes), np.uint8)
            counts = np.zeros(0, np.int64)
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)
        self._win, self._calls, self._counts, self._ids = [], [], [], []
        if self.track_reads and max_reads_per_window is not None:
            raise ValueError("read names are kept only without max_reads_per_window")
        # canonical order (window, then calls): the same reads give the same file whatever the
        # input format or read order, and the seeded cap below picks the same reads
        order = np.lexsort([calls[:, b] for b in range(calls.shape[1] - 1, -1, -1)] + [win])
        win, calls, counts = win[order], calls[order], counts[order]
        ids = ids[order] if self.track_reads else ids
        if max_reads_per_window is not None:
            counts = _cap(win, counts, int(max_reads_per_window), np.random.default_rng(seed))
            keep = counts > 0
            win, calls, counts = win[keep], calls[keep], counts[keep]
        read_names = None
        if collapse:
            n_rows = win.shape[0]
            win, calls, counts, inverse = _collapse(win, calls, counts)
            if self.track_reads:
                read_names = self._row_names(ids, np.arange(n_rows) if inverse is None else inverse, win.shape[0])
        else:
            if self.track_reads:
                read_names = [self.names[i] for i in ids.tolist()]  # one read per row (BAM counts are 1)
            rep = np.repeat(np.arange(win.shape[0]), counts)
            win, calls, counts = win[rep], calls[rep], np.ones(rep.shape[0], np.int64)
        stats = dict(stats, reads_in=self.reads_in, reads_used=self.reads_used, rows_below_min_cpgs=self.rows_dropped,
                     rows=int(counts.sum()), unique_rows=int(win.shape[0]))
        return WindowReads(window_idx=win, calls=calls, counts=counts, pseudo=pseudo, stats=stats,
                           read_names=read_names)

    def _row_names(self, ids: np.ndarray, row_of: np.ndarray, n_rows: int) -> list[str]:
        """Each collapsed row's read names, comma-joined, in file order (ascending id)."""
        order = np.lexsort([ids, row_of])  # by row, then by id
        bounds = np.searchsorted(row_of[order], np.arange(n_rows + 1))
        names = self.names
        sorted_ids = ids[order].tolist()
        return [",".join(names[i] for i in sorted_ids[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _cap(win: np.ndarray, counts: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Keep at most ``cap`` reads per window, each read equally likely (multiplicities unrolled)."""
    counts = counts.copy()
    if win.size == 0:
        return counts
    bounds = np.flatnonzero(np.diff(win.astype(np.int64))) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, win.size]):
        total = int(counts[lo:hi].sum())
        if total <= cap:
            continue
        units = np.repeat(np.arange(lo, hi), counts[lo:hi])
        chosen = rng.choice(units.size, size=cap, replace=False)
        counts[lo:hi] = np.bincount(units[chosen] - lo, minlength=hi - lo)
    return counts


def _collapse(win: np.ndarray, calls: np.ndarray, counts: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Identical (window, calls) rows merged, their counts summed; the last array maps each input
    row to its merged row (None when there were no rows)."""
    if win.size == 0:
        return win, calls, counts, None
    key = np.concatenate([win.astype(">u4").view(np.uint8).reshape(-1, 4), calls], axis=1)
    uniq, inverse = np.unique(key, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    summed = np.bincount(inverse, weights=counts, minlength=uniq.shape[0]).astype(np.int64)
    uwin = uniq[:, :4].copy().view(">u4").reshape(-1).astype(np.uint32)
    return uwin, np.ascontiguousarray(uniq[:, 4:]), summed, inverse

"""Tissue-balanced training batches, each a pure function of (seed, epoch, step, rank).

Sampling follows the design: draw a file (sample) with weight 1 / (training files of its
tissue), then a window the file has reads in, then one of that window's reads. Every index of a
batch is drawn at once with numpy and the packed calls are gathered in one indexing call, so no
per-read Python runs. Because the random stream of a batch is seeded by (seed, epoch, step,
rank) alone, a resumed run (even mid-epoch) draws exactly the batches it would have drawn, and
the ranks of a DDP run draw independent streams.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tissuebert.data.eligibility import sample_eligible_rows
from tissuebert.data.features import cpg_call_features
from tissuebert.data.tokens import TokenTables
from tissuebert.errors import StoreError
from tissuebert.progress import counter, get_logger
from tissuebert.store.manifest import SampleRecord
from tissuebert.store.sample import SampleReads
from tissuebert.store.store import Store

log = get_logger("data.sampler")

MAX_AUTO_STEPS = 5000  # steps_per_epoch = null: one pass over the reads, capped here
RAM_FRACTION = 0.5  # in_memory = null: load into RAM when the split fits in this share of free RAM


@dataclass
class Batch:
    """One micro-batch: tokens, labels and where every read came from."""

    dna: np.ndarray  # (B, 148) uint8
    meth: np.ndarray  # (B, 148) uint8
    labels: np.ndarray  # (B,) int64 tissue ids
    file_pos: np.ndarray  # (B,) int64 index into TrainSampler.samples
    window_idx: np.ndarray  # (B,) int64
    row: np.ndarray  # (B,) int64 read row inside its sample file


def batch_rng(seed: int, epoch: int, step: int, rank: int) -> np.random.Generator:
    """The random stream of one micro-batch; nothing else feeds it."""
    return np.random.default_rng([seed & 0xFFFFFFFF, epoch, step, rank])


def available_ram_bytes() -> int:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume it does not fit
        return 0


def _window_index(reads: SampleReads, rows: np.ndarray | None, n_windows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(covered windows, first position, read count) of a file, all (n_covered,) int64.

    Positions are raw read rows, or positions in ``rows`` when the reads were filtered.
    """
    if rows is None:
        counts = np.diff(reads.window_ptr)  # (W,)
        starts = np.asarray(reads.window_ptr[:-1])
    else:
        counts = np.bincount(np.asarray(reads.window_idx)[rows], minlength=n_windows)  # (W,)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    covered = np.flatnonzero(counts > 0)
    return covered.astype(np.int64), starts[covered].astype(np.int64), counts[covered].astype(np.int64)


class TrainSampler:
    """Draws tissue-balanced micro-batches from one split of a store.

    Per file it keeps only the windows it has (eligible) reads in, as flat arrays
    (``cov_window``, ``cov_start``, ``cov_count``, sliced per file by ``file_cov_ptr``), so the
    index memory grows with covered windows, not with reads. Calls live in RAM as one array
    (gathered in a single fancy-indexing call) or stay memory-mapped per file.
    """

    def __init__(self, store: Store, *, split: str = "train", min_cpgs: int = 1, in_memory: bool | None = None,
                 seed: int = 0, cpg_dropout: float = 0.0) -> None:
        self.store = store
        self.seed = int(seed)
        self.cpg_dropout = float(cpg_dropout)
        self.tables = TokenTables(store.panel)
        records = store.samples(split)
        if not records:
            raise StoreError(f"store has no {split!r} samples", path=store.root,
                             hint=f"mark some samples as {split} in the sample sheet and re-run prepare")
        if in_memory is None:
            need, free = store.sample_bytes(split), available_ram_bytes()
            in_memory = need <= RAM_FRACTION * free
            log.info("sampler: %s split is %.1f MB, %.1f MB RAM free -> %s", split, need / 1e6, free / 1e6,
                     "in RAM" if in_memory else "memory-mapped")
        self.in_memory = bool(in_memory)
        self._load(records, min_cpgs)

    def _load(self, records: list[SampleRecord], min_cpgs: int) -> None:
        kept: list[SampleRecord] = []
        calls, row_maps, cov_window, cov_start, cov_count = [], [], [], [], []
        file_offset, n_eligible = [0], []
        for rec in records:
            reads = self.store.reads(rec, mmap=not self.in_memory)
            rows = sample_eligible_rows(self.store.manifest.min_cpgs, self.store.panel, reads.window_idx, reads.calls,
                                        min_cpgs)
            covered, starts, counts = _window_index(reads, rows, self.store.panel.n_windows)
            if covered.size == 0:
                log.warning("sample %s has no reads with >= %d CpG calls; it is not sampled", rec.sample_id, min_cpgs)
                continue
            kept.append(rec)
            cov_window.append(covered)
            cov_start.append(starts)
            cov_count.append(counts)
            n_eligible.append(int(counts.sum()))
            row_maps.append(rows)
            calls.append(reads.calls)
            file_offset.append(file_offset[-1] + reads.n_reads)
        if not kept:
            raise StoreError(f"no sample has reads with >= {min_cpgs} CpG calls", path=self.store.root,
                             hint="lower data.min_cpgs")
        self.samples = kept
        self.n_reads = int(sum(n_eligible))
        self.file_tissue = np.array([r.tissue_id for r in kept], dtype=np.int64)  # (F,)
        self.cov_window = np.concatenate(cov_window)
        self.cov_start = np.concatenate(cov_start)
        self.cov_count = np.concatenate(cov_count)
        self.file_cov_ptr = np.concatenate([[0], np.cumsum([c.size for c in cov_window])]).astype(np.int64)  # (F+1,)
        # file weight 1 / (files of its tissue), normalised: every tissue with files is equally likely
        files_of_tissue = np.bincount(self.file_tissue, minlength=len(self.store.tissues))
        weights = 1.0 / files_of_tissue[self.file_tissue]
        self.file_weight = weights / weights.sum()  # (F,)
        self._cum_weight = np.cumsum(self.file_weight)
        self._row_maps = row_maps
        if self.in_memory:
            self._concatenate(calls, row_maps, file_offset, n_eligible)
        else:
            self._calls_per_file = calls

    def _concatenate(self, calls: list, row_maps: list, file_offset: list[int], n_eligible: list[int]) -> None:
        """In RAM: one (R_total, Bc) calls array, so a batch is gathered in one indexing call."""
        self._calls = np.concatenate([np.asarray(c) for c in calls])  # (R_total, Bc)
        self._file_offset = np.asarray(file_offset[:-1], dtype=np.int64)  # (F,)
        self._global_rows = None
        if any(m is not None for m in row_maps):
            # one map from eligible position to global raw row keeps the gather a single call; the
            # files are filtered all or none (one min_cpgs against one store's, sample_eligible_rows)
            self._global_rows = np.concatenate([m + begin for m, begin in zip(row_maps, file_offset[:-1])])
            eligible_offset = np.concatenate([[0], np.cumsum(n_eligible)[:-1]])  # (F,)
            self.cov_start = self.cov_start + np.repeat(eligible_offset, np.diff(self.file_cov_ptr))

    # ----------------------------------------------------------------------------------------
    @property
    def class_prior(self) -> list[float]:
        """Probability that a training read is drawn from each tissue of the store."""
        prior = np.zeros(len(self.store.tissues))
        np.add.at(prior, self.file_tissue, self.file_weight)
        return prior.tolist()

    def call_tally(self, chunk: int = 1 << 16) -> np.ndarray:
        """(2 x panel CpGs + 1, T) float32: how many eligible reads of each tissue carry each
        (panel CpG, call), over the whole split (the count route's tally when ``train.count_source``
        is ``split``; the last row, tokens without a call, stays zero). Exact: float32 counts to 2^24
        per cell, and a cell past that raises rather than rounds."""
        panel = self.store.panel
        n_features, n_tissues = 2 * int(panel.cpg_ptr[-1]) + 1, len(self.store.tissues)
        tally = np.zeros(n_features * n_tissues, dtype=np.int64)
        with counter("counting training reads", self.n_reads, "reads") as advance:
            for tissue, _, feature, valid in self.split_features(chunk):
                tally += np.bincount(feature[valid] * n_tissues + tissue, minlength=tally.size)
                advance(feature.shape[0])
        if tally.max(initial=0) >= 2**24:
            raise StoreError("a (CpG, call, tissue) count passes 2^24, beyond float32's exact integers",
                             path=self.store.root, hint="set train.count_source=stream")
        return tally.reshape(n_features, n_tissues).astype(np.float32)

    def split_features(self, chunk: int = 1 << 16) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Every eligible read of the split once, in chunks of at most ``chunk`` reads of one file:
        (tissue id, (n,) windows, (n, K) (panel CpG, call) feature ids, (n, K) valid), the
        features of :func:`cpg_call_features` (what the whole-split count and state atlas use)."""
        panel = self.store.panel
        for f, rec in enumerate(self.samples):
            rows = self._row_maps[f]
            reads = self.store.reads(rec, mmap=True)
            n = reads.n_reads if rows is None else rows.size
            for begin in range(0, n, chunk):
                pick = np.arange(begin, min(n, begin + chunk)) if rows is None else rows[begin:begin + chunk]
                window = np.asarray(reads.window_idx[pick]).astype(np.int64)
                feature, valid = cpg_call_features(panel, window, np.asarray(reads.calls[pick]))
                yield int(self.file_tissue[f]), window, feature, valid

    def steps_per_epoch(self, batch_size: int, accum_steps: int, world_size: int) -> int:
        """One pass over the eligible training reads, capped at MAX_AUTO_STEPS optimiser steps."""
        per_step = batch_size * accum_steps * world_size
        return int(min(MAX_AUTO_STEPS, max(1, self.n_reads // per_step)))

    def draw_indices(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(file_pos, window_idx, row) of a batch, all (B,) int64; row is the file's raw read row."""
        file_pos = np.searchsorted(self._cum_weight, rng.random(batch_size), side="right")
        file_pos = np.minimum(file_pos, len(self.samples) - 1)  # cumsum may end a hair below 1.0
        n_cov = self.file_cov_ptr[file_pos + 1] - self.file_cov_ptr[file_pos]  # (B,)
        k = self.file_cov_ptr[file_pos] + np.minimum((rng.random(batch_size) * n_cov).astype(np.int64), n_cov - 1)
        count = self.cov_count[k]
        pick = self.cov_start[k] + np.minimum((rng.random(batch_size) * count).astype(np.int64), count - 1)
        return file_pos.astype(np.int64), self.cov_window[k], self._raw_rows(file_pos, pick)

    def _raw_rows(self, file_pos: np.ndarray, pick: np.ndarray) -> np.ndarray:
        if self.in_memory:
            if self._global_rows is not None:
                return self._global_rows[pick] - self._file_offset[file_pos]
            return pick
        out = pick.copy()
        for f in np.unique(file_pos):
            if self._row_maps[f] is not None:
                sel = file_pos == f
                out[sel] = self._row_maps[f][pick[sel]]
        return out

    def gather_calls(self, file_pos: np.ndarray, row: np.ndarray) -> np.ndarray:
        """(B, Bc) packed calls of the drawn reads."""
        if self.in_memory:
            return self._calls[self._file_offset[file_pos] + row]  # one gather over all files
        out = np.empty((file_pos.shape[0], self.store.manifest.call_bytes), dtype=np.uint8)
        for f in np.unique(file_pos):  # memory-mapped files: one gather per distinct file
            sel = np.flatnonzero(file_pos == f)
            order = np.argsort(row[sel], kind="stable")  # ascending rows read the mapping forwards
            out[sel[order]] = self._calls_per_file[f][row[sel][order]]
        return out

    def batch(self, epoch: int, step: int, batch_size: int, rank: int = 0) -> Batch:
        """Micro-batch ``step`` of ``epoch`` on ``rank``: a pure function of these and the seed."""
        rng = batch_rng(self.seed, epoch, step, rank)
        file_pos, window_idx, row = self.draw_indices(rng, batch_size)
        calls = self.gather_calls(file_pos, row)
        dna, meth = self.tables.batch(window_idx, calls, dropout=self.cpg_dropout, rng=rng)
        return Batch(dna=dna, meth=meth, labels=self.file_tissue[file_pos], file_pos=file_pos,
                     window_idx=window_idx, row=row)

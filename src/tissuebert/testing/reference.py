"""The per-item reference path: one read at a time through h5py, as a torch ``Dataset`` would.

It implements the sampling rule of :class:`~tissuebert.data.sampler.TrainSampler` again, item by
item with plain Python (file by cumulative weight, window among the file's covered windows,
read among the window's reads) from the same random numbers, and reads each read's calls
from its HDF5 file. Tests check that the vectorised sampler yields exactly these batches;
``benchmarks/bench_loader.py`` times both.
"""

from __future__ import annotations

import bisect

import h5py
import numpy as np
import torch

from tissuebert.constants import STORE
from tissuebert.data.sampler import batch_rng
from tissuebert.data.tokens import TokenTables
from tissuebert.store.store import Store


class ItemDataset(torch.utils.data.Dataset):
    """Reads of one split as (file position, row) items; h5py handles are opened once and cached."""

    def __init__(self, store: Store, split: str = "train") -> None:
        self.store = store
        self.samples = store.samples(split)
        self.tables = TokenTables(store.panel)
        self._handles: dict[int, h5py.File] = {}
        self.window_ptr = []  # per file: (W + 1,) read offsets of every window
        self.covered = []  # per file: windows with at least one read, ascending
        for rec in self.samples:
            with h5py.File(store.root / rec.file, "r") as f:
                ptr = f[STORE.WINDOW_PTR][()]
            self.window_ptr.append(ptr)
            self.covered.append([w for w in range(len(ptr) - 1) if ptr[w + 1] > ptr[w]])

    def _file(self, file_pos: int) -> h5py.File:
        if file_pos not in self._handles:
            self._handles[file_pos] = h5py.File(self.store.root / self.samples[file_pos].file, "r")
        return self._handles[file_pos]

    def __len__(self) -> int:
        return sum(int(p[-1]) for p in self.window_ptr)

    def __getitem__(self, item: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
        """(file position, read row) -> ((148,) dna tokens, (148,) meth tokens, tissue id)."""
        file_pos, row = item
        f = self._file(file_pos)
        window = int(f[STORE.READ_WINDOW][row])
        calls = f[STORE.CALLS][row]  # (Bc,) one h5py read per item
        dna, meth = self.tables.batch(np.array([window]), calls[None, :])
        return dna[0], meth[0], self.samples[file_pos].tissue_id

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def reference_indices(dataset: ItemDataset, rng: np.random.Generator, batch_size: int) -> list[tuple[int, int]]:
    """The design's draw, item by item: file (weight 1/files of its tissue), window, read."""
    tissue_of = [rec.tissue_id for rec in dataset.samples]
    files_of_tissue = {t: tissue_of.count(t) for t in set(tissue_of)}
    weights = [1.0 / files_of_tissue[t] for t in tissue_of]
    total = sum(weights)
    cumulative = list(np.cumsum([w / total for w in weights]))
    u_file, u_window, u_read = rng.random(batch_size), rng.random(batch_size), rng.random(batch_size)
    items = []
    for i in range(batch_size):
        file_pos = min(bisect.bisect_right(cumulative, u_file[i]), len(weights) - 1)
        ptr = dataset.window_ptr[file_pos]
        covered = dataset.covered[file_pos]
        window = covered[min(int(u_window[i] * len(covered)), len(covered) - 1)]
        n_reads = int(ptr[window + 1] - ptr[window])
        items.append((file_pos, int(ptr[window]) + min(int(u_read[i] * n_reads), n_reads - 1)))
    return items


def reference_batch(dataset: ItemDataset, *, seed: int, epoch: int, step: int, batch_size: int,
                    rank: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((B, 148) dna, (B, 148) meth, (B,) labels) without CpG dropout, one item at a time."""
    rng = batch_rng(seed, epoch, step, rank)
    items = [dataset[item] for item in reference_indices(dataset, rng, batch_size)]
    return (np.stack([it[0] for it in items]), np.stack([it[1] for it in items]),
            np.array([it[2] for it in items], dtype=np.int64))

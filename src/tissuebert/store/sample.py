"""Per-sample read files (samples/<id>.h5): window index + 2-bit packed CpG calls per read."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tissuebert.constants import CALL_BITS, CALLS_PER_BYTE, METH_NONE, STORE, STORE_SCHEMA_VERSION
from tissuebert.errors import StoreError, reading
from tissuebert.store.h5image import h5_writer


def pack_calls(calls: np.ndarray, call_bytes: int) -> np.ndarray:
    """(R, K) codes 0/1/2 -> (R, call_bytes) uint8; CpG j in byte j // 4 at bit 2 * (j % 4).

    Columns past K are filled with METH_NONE so every unused slot decodes as 'no call'.
    """
    calls = np.asarray(calls, dtype=np.uint8)
    n_reads, width = calls.shape
    full = np.full((n_reads, call_bytes * CALLS_PER_BYTE), METH_NONE, dtype=np.uint8)
    full[:, :width] = calls
    quads = full.reshape(n_reads, call_bytes, CALLS_PER_BYTE)  # (R, B, 4)
    shifts = (np.arange(CALLS_PER_BYTE, dtype=np.uint8) * CALL_BITS)  # (4,)
    return np.bitwise_or.reduce(quads << shifts, axis=2).astype(np.uint8)


def unpack_calls(packed: np.ndarray, width: int | None = None) -> np.ndarray:
    """(R, B) packed uint8 -> (R, width) codes 0/1/2 (width defaults to B * 4)."""
    packed = np.asarray(packed, dtype=np.uint8)
    shifts = (np.arange(CALLS_PER_BYTE, dtype=np.uint8) * CALL_BITS)
    codes = (packed[:, :, None] >> shifts) & 0b11  # (R, B, 4)
    codes = codes.reshape(packed.shape[0], packed.shape[1] * CALLS_PER_BYTE)  # not -1: a sample may have 0 reads
    return codes if width is None else codes[:, :width]


@dataclass
class SampleReads:
    """Reads of one sample, sorted by window; arrays are in RAM or memory-mapped."""

    window_idx: np.ndarray  # (R,) uint32
    calls: np.ndarray  # (R, B) uint8 packed
    window_ptr: np.ndarray  # (W + 1,) int64

    @property
    def n_reads(self) -> int:
        return int(self.window_idx.shape[0])


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_sample(path: str | Path, *, sample_id: str, window_idx: np.ndarray, calls: np.ndarray,
                 n_windows: int, panel_hash: str, pseudo_reads: bool = False) -> str:
    """Write one sample's reads atomically (sorted by window); returns the file's sha256.

    Arrays are contiguous and uncompressed so training can memory-map them.
    """
    window_idx = np.asarray(window_idx, dtype=np.uint32)
    calls = np.asarray(calls, dtype=np.uint8)
    if calls.ndim != 2 or calls.shape[0] != window_idx.shape[0]:
        raise ValueError(f"calls must be (R, B) with R = {window_idx.shape[0]}, got {calls.shape}")
    order = np.argsort(window_idx, kind="stable")
    window_idx, calls = window_idx[order], calls[order]
    counts = np.bincount(window_idx, minlength=n_windows) if window_idx.size else np.zeros(n_windows, np.int64)
    window_ptr = np.zeros(n_windows + 1, dtype=np.int64)
    np.cumsum(counts, out=window_ptr[1:])
    with h5_writer(path) as f:
        f.attrs[STORE.ATTR_SCHEMA] = STORE_SCHEMA_VERSION
        f.attrs[STORE.ATTR_SAMPLE_ID] = sample_id
        f.attrs[STORE.ATTR_PANEL_HASH] = panel_hash
        f.attrs[STORE.ATTR_PSEUDO] = bool(pseudo_reads)
        f.attrs[STORE.ATTR_CALL_BYTES] = calls.shape[1]
        f.create_dataset(STORE.READ_WINDOW, data=window_idx)
        f.create_dataset(STORE.CALLS, data=calls)
        f.create_dataset(STORE.WINDOW_PTR, data=window_ptr)
    return sha256_file(path)


def _memmap(path: Path, ds: h5py.Dataset) -> np.ndarray:
    offset = ds.id.get_offset()
    if offset is None or ds.chunks is not None or ds.compression is not None:
        return ds[()]  # not contiguous on disk (or empty): read it
    return np.memmap(path, mode="r", dtype=ds.dtype, shape=ds.shape, offset=offset)


def read_sample(path: str | Path, *, mmap: bool = False) -> SampleReads:
    """Load a sample file into RAM, or memory-map its arrays (``mmap=True``)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError("sample file missing", path=path, hint="re-run `tissuebert prepare` for this sample")
    with reading(path, "sample file", StoreError, hint="the file is truncated or damaged: re-run `tissuebert prepare`"):
        with h5py.File(path, "r") as f:
            for key in (STORE.READ_WINDOW, STORE.CALLS, STORE.WINDOW_PTR):
                if key not in f:
                    raise StoreError(f"dataset {key!r} missing", path=path, hint="rebuild this sample")
            if mmap:
                arrays = [_memmap(path, f[k]) for k in (STORE.READ_WINDOW, STORE.CALLS, STORE.WINDOW_PTR)]
            else:
                arrays = [f[k][()] for k in (STORE.READ_WINDOW, STORE.CALLS, STORE.WINDOW_PTR)]
    return SampleReads(window_idx=arrays[0], calls=arrays[1], window_ptr=arrays[2])

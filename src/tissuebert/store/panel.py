"""The panel: every 150 bp window of the region panel, its DNA tokens and its CpGs (panel.h5)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tissuebert.constants import CALLS_PER_BYTE, COORDS, N_TOKENS, STORE, STORE_SCHEMA_VERSION, WINDOW_BP
from tissuebert.errors import StoreError, reading
from tissuebert.store.h5image import h5_writer


@dataclass
class Panel:
    """Windows of a region panel, in genome order.

    CpGs of window ``w`` are entries ``cpg_ptr[w]:cpg_ptr[w+1]`` of ``cpg_offset`` (base of the
    C inside the window, 0..147, ascending) and ``cpg_index`` (genome-wide 1-based CpG index).
    """

    chroms: list[str]
    chrom_lengths: np.ndarray  # (n_chroms,) int64
    win_chrom: np.ndarray  # (W,) int32
    win_start: np.ndarray  # (W,) int64, 0-based
    win_region: np.ndarray  # (W,) int32
    dna: np.ndarray  # (W, 148) uint8
    cpg_ptr: np.ndarray  # (W + 1,) int64
    cpg_offset: np.ndarray  # (C,) uint8
    cpg_index: np.ndarray  # (C,) int64
    reg_chrom: np.ndarray  # (n_regions,) int32
    reg_start: np.ndarray  # (n_regions,) int64
    reg_end: np.ndarray  # (n_regions,) int64
    reg_name: list[str] = field(default_factory=list)
    # (n_chroms, 2) first and last CpG index of each chromosome in the CpG index, when known:
    # a read numbered outside its chromosome's range is an input error, not a read
    cpg_range: np.ndarray | None = None
    # what building the panel found suspicious but not fatal; recorded in the store's provenance
    warnings: list[str] = field(default_factory=list)

    @property
    def n_windows(self) -> int:
        return int(self.win_start.shape[0])

    @property
    def n_cpgs(self) -> np.ndarray:
        """(W,) CpGs per window."""
        return np.diff(self.cpg_ptr)

    @property
    def max_cpgs(self) -> int:
        return int(self.n_cpgs.max()) if self.n_windows else 0

    @property
    def call_bytes(self) -> int:
        """Bytes per stored read for its packed calls (2 bits per CpG)."""
        return max(1, -(-self.max_cpgs // CALLS_PER_BYTE))

    def panel_hash(self) -> str:
        """Identity of the panel: chromosome names, window coordinates, DNA tokens, CpGs and
        their genome-wide CpG indices (a .pat input is read through these, so a shifted CpG
        index makes another panel).

        A model is only valid on the panel it was trained on; checkpoints carry this hash.
        """
        return self._hash(with_ordinals=True)

    def legacy_hash(self) -> str:
        """The hash tissuebert <= 0.1.0 wrote, which did not cover the CpG indices."""
        return self._hash(with_ordinals=False)

    def _hash(self, *, with_ordinals: bool) -> str:
        h = hashlib.sha256()
        h.update("\t".join(self.chroms).encode())
        arrays = [self.win_chrom.astype(np.int64), self.win_start.astype(np.int64), self.dna.astype(np.uint8),
                  self.cpg_ptr.astype(np.int64), self.cpg_offset.astype(np.uint8)]
        if with_ordinals:
            arrays.append(self.cpg_index.astype(np.int64))
        for arr in arrays:
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    def padded_offsets(self) -> np.ndarray:
        """(W, max_cpgs) int64 token position of each CpG; padding points at the dump column 148."""
        width = max(self.max_cpgs, 1)
        out = np.full((self.n_windows, width), N_TOKENS, dtype=np.int64)
        counts = self.n_cpgs
        rows = np.repeat(np.arange(self.n_windows), counts)
        cols = np.arange(self.cpg_offset.shape[0]) - np.repeat(self.cpg_ptr[:-1], counts)
        out[rows, cols] = self.cpg_offset
        return out

    def window_label(self, w: int) -> str:
        start = int(self.win_start[w])
        return f"{self.chroms[self.win_chrom[w]]}:{start + 1}-{start + WINDOW_BP}"

    def coordinates(self) -> dict:
        """Plain, picklable description of the windows (saved in checkpoints for deconvolve)."""
        coords = {COORDS.CHROMS: list(self.chroms), COORDS.CHROM_ID: self.win_chrom.astype(np.int32).copy(),
                  COORDS.START: self.win_start.astype(np.int64).copy(),
                  COORDS.CPG_INDEX: self.cpg_index.astype(np.int64).copy()}
        if self.cpg_range is not None:
            coords[COORDS.CPG_RANGE] = self.cpg_range.astype(np.int64).copy()
        return coords


def write_panel(panel: Panel, path: str | Path) -> str:
    """Write ``panel.h5`` atomically; returns the panel hash."""
    phash = panel.panel_hash()
    str_dt = h5py.string_dtype()
    with h5_writer(path) as f:
        f.attrs[STORE.ATTR_SCHEMA] = STORE_SCHEMA_VERSION
        f.attrs[STORE.ATTR_PANEL_HASH] = phash
        f.attrs[STORE.ATTR_MAX_CPGS] = panel.max_cpgs
        f.attrs[STORE.ATTR_CALL_BYTES] = panel.call_bytes
        f.create_dataset(STORE.CHROMS, data=np.array(panel.chroms, dtype=object), dtype=str_dt)
        f.create_dataset(STORE.CHROM_LENGTHS, data=panel.chrom_lengths.astype(np.int64))
        f.create_dataset(STORE.WIN_CHROM, data=panel.win_chrom.astype(np.int32))
        f.create_dataset(STORE.WIN_START, data=panel.win_start.astype(np.int64))
        f.create_dataset(STORE.WIN_REGION, data=panel.win_region.astype(np.int32))
        f.create_dataset(STORE.DNA, data=panel.dna.astype(np.uint8))
        f.create_dataset(STORE.CPG_PTR, data=panel.cpg_ptr.astype(np.int64))
        f.create_dataset(STORE.CPG_OFFSET, data=panel.cpg_offset.astype(np.uint8))
        f.create_dataset(STORE.CPG_INDEX, data=panel.cpg_index.astype(np.int64))
        if panel.cpg_range is not None:
            f.create_dataset(STORE.CPG_RANGE, data=panel.cpg_range.astype(np.int64))
        f.create_dataset(STORE.REG_CHROM, data=panel.reg_chrom.astype(np.int32))
        f.create_dataset(STORE.REG_START, data=panel.reg_start.astype(np.int64))
        f.create_dataset(STORE.REG_END, data=panel.reg_end.astype(np.int64))
        f.create_dataset(STORE.REG_NAME, data=np.array(panel.reg_name, dtype=object), dtype=str_dt)
    return phash


def read_panel(path: str | Path) -> Panel:
    path = Path(path)
    if not path.is_file():
        raise StoreError("panel file missing", path=path, hint="run `tissuebert prepare` to build the store")
    with reading(path, "panel", StoreError, hint="panel.h5 is truncated or damaged: rebuild the store"):
        with h5py.File(path, "r") as f:
            def arr(key: str) -> np.ndarray:
                if key not in f:
                    raise StoreError(f"dataset {key!r} missing", path=path,
                                     hint="the store is incomplete or from another version; rebuild it")
                return f[key][()]

            return Panel(
                chroms=[c.decode() if isinstance(c, bytes) else str(c) for c in arr(STORE.CHROMS)],
                chrom_lengths=arr(STORE.CHROM_LENGTHS),
                win_chrom=arr(STORE.WIN_CHROM), win_start=arr(STORE.WIN_START),
                win_region=arr(STORE.WIN_REGION), dna=arr(STORE.DNA), cpg_ptr=arr(STORE.CPG_PTR),
                cpg_offset=arr(STORE.CPG_OFFSET), cpg_index=arr(STORE.CPG_INDEX),
                reg_chrom=arr(STORE.REG_CHROM), reg_start=arr(STORE.REG_START), reg_end=arr(STORE.REG_END),
                reg_name=[n.decode() if isinstance(n, bytes) else str(n) for n in arr(STORE.REG_NAME)],
                cpg_range=f[STORE.CPG_RANGE][()] if STORE.CPG_RANGE in f else None,
            )

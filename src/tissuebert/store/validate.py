"""Store validation: schema, shapes, dtypes, label ranges and checksums.

``tissuebert validate`` runs it with checksums; ``train`` runs it at start-up.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tissuebert.constants import DNA_VOCAB, N_TOKENS, SPLITS, STORE
from tissuebert.errors import StoreError, reading
from tissuebert.store.manifest import Manifest, SampleRecord, read_manifest
from tissuebert.store.panel import Panel, read_panel
from tissuebert.store.sample import sha256_file, unpack_calls

_REBUILD = "the file is truncated or damaged: re-run `tissuebert prepare` for this sample (--force)"


def _check_panel(panel: Panel, manifest: Manifest, path: Path) -> None:
    n_windows = panel.n_windows
    if n_windows != manifest.n_windows:
        raise StoreError(f"panel has {n_windows} windows, manifest says {manifest.n_windows}", path=path)
    if panel.dna.shape != (n_windows, N_TOKENS) or panel.dna.dtype != np.uint8:
        raise StoreError(f"dna_tokens must be uint8 ({n_windows}, {N_TOKENS}), got {panel.dna.dtype} {panel.dna.shape}",
                         path=path)
    if panel.dna.size and int(panel.dna.max()) >= DNA_VOCAB:
        raise StoreError(f"dna_tokens hold a value >= vocabulary size {DNA_VOCAB}", path=path)
    if panel.cpg_ptr.shape != (n_windows + 1,) or panel.cpg_ptr[0] != 0 or np.any(np.diff(panel.cpg_ptr) < 0):
        raise StoreError("cpg_ptr is not a monotone (W + 1,) offset array starting at 0", path=path)
    if panel.cpg_ptr[-1] != panel.cpg_offset.shape[0] or panel.cpg_index.shape != panel.cpg_offset.shape:
        raise StoreError("cpg_offset / cpg_index lengths disagree with cpg_ptr", path=path)
    if panel.cpg_offset.size and int(panel.cpg_offset.max()) >= N_TOKENS:
        raise StoreError(f"a CpG offset is >= {N_TOKENS}", path=path)
    if panel.max_cpgs != manifest.max_cpgs or panel.call_bytes != manifest.call_bytes:
        raise StoreError("panel max_cpgs / call_bytes disagree with the manifest", path=path)
    phash = panel.panel_hash()
    if phash != manifest.panel_hash and panel.legacy_hash() == manifest.panel_hash:
        raise StoreError("store made by tissuebert <= 0.1.0, whose panel hash did not cover the CpG indices",
                         path=path, hint="rebuild it with `tissuebert prepare` (and retrain its models)")
    if phash != manifest.panel_hash:
        raise StoreError(f"panel hash {phash} differs from the manifest's {manifest.panel_hash}", path=path,
                         hint="panel.h5 was replaced after the samples were prepared; rebuild the store")


def _check_sample(root: Path, rec: SampleRecord, manifest: Manifest, panel: Panel, verify_checksums: bool) -> None:
    path = root / rec.file
    if not path.is_file():
        raise StoreError(f"sample {rec.sample_id!r}: file missing", path=path, hint="re-run prepare for this sample")
    if rec.split not in SPLITS:
        raise StoreError(f"sample {rec.sample_id!r}: split {rec.split!r} not one of {', '.join(SPLITS)}",
                         path=root / STORE.MANIFEST)
    if not 0 <= rec.tissue_id < len(manifest.tissues) or manifest.tissues[rec.tissue_id] != rec.tissue:
        raise StoreError(f"sample {rec.sample_id!r}: tissue {rec.tissue!r} / id {rec.tissue_id} do not match the tissue list",
                         path=root / STORE.MANIFEST)
    if verify_checksums:
        digest = sha256_file(path)
        if digest != rec.sha256:
            raise StoreError(f"sample {rec.sample_id!r}: checksum mismatch "
                             f"(manifest {rec.sha256[:12]}..., file {digest[:12]}...)",
                             path=path, hint="the file changed after prepare; re-run prepare for this sample")
    with reading(path, f"sample {rec.sample_id!r}", StoreError, hint=_REBUILD), h5py.File(path, "r") as f:
        for key in (STORE.READ_WINDOW, STORE.CALLS, STORE.WINDOW_PTR):
            if key not in f:
                raise StoreError(f"dataset {key!r} missing", path=path)
        win, calls, ptr = f[STORE.READ_WINDOW], f[STORE.CALLS], f[STORE.WINDOW_PTR]
        n_reads = win.shape[0]
        if n_reads != rec.n_reads:
            raise StoreError(f"holds {n_reads} reads, manifest says {rec.n_reads}", path=path)
        if win.dtype != np.uint32 or calls.dtype != np.uint8:
            raise StoreError(f"dtypes must be uint32 window_idx / uint8 calls, got {win.dtype} / {calls.dtype}", path=path)
        if calls.shape != (n_reads, manifest.call_bytes):
            raise StoreError(f"calls shape {calls.shape}, expected ({n_reads}, {manifest.call_bytes})", path=path)
        if ptr.shape != (manifest.n_windows + 1,):
            raise StoreError(f"window_ptr shape {ptr.shape}, expected ({manifest.n_windows + 1},)", path=path)
        ptr_arr = ptr[()]
        if ptr_arr[0] != 0 or ptr_arr[-1] != n_reads or np.any(np.diff(ptr_arr) < 0):
            raise StoreError("window_ptr is not a monotone offset array over the reads", path=path)
        if n_reads:
            win_arr = win[()]
            if int(win_arr.max()) >= manifest.n_windows or np.any(np.diff(win_arr.astype(np.int64)) < 0):
                raise StoreError("window_idx out of range or not sorted", path=path)
            # a sample of reads: calls beyond a window's CpG count must be 'no call'
            sample_rows = np.linspace(0, n_reads - 1, num=min(n_reads, 2000)).astype(np.int64)
            codes = unpack_calls(calls[np.unique(sample_rows)])
            if np.any(codes == 3):
                raise StoreError("calls hold the reserved 2-bit code 3", path=path)
            n_cpg = panel.n_cpgs[win_arr[np.unique(sample_rows)]]
            beyond = np.arange(codes.shape[1])[None, :] >= n_cpg[:, None]
            if np.any(codes[beyond] != 2):
                raise StoreError("a read has calls beyond its window's CpGs", path=path)


def validate_store(root: str | Path, *, verify_checksums: bool = True) -> tuple[Manifest, Panel]:
    """Check a store; raise :class:`StoreError` naming the first problem. Returns what it read."""
    root = Path(root)
    manifest = read_manifest(root)
    panel_path = root / STORE.PANEL
    panel = read_panel(panel_path)  # first: a missing panel is said as such
    if verify_checksums and sha256_file(panel_path) != manifest.panel_sha256:
        raise StoreError("panel.h5 checksum differs from the manifest", path=panel_path, hint="rebuild the store")
    _check_panel(panel, manifest, panel_path)
    if not manifest.tissues:
        raise StoreError("manifest lists no tissues", path=root / STORE.MANIFEST)
    seen: set[str] = set()
    for rec in manifest.samples:
        if rec.sample_id in seen:
            raise StoreError(f"duplicate sample id {rec.sample_id!r}", path=root / STORE.MANIFEST)
        seen.add(rec.sample_id)
        _check_sample(root, rec, manifest, panel, verify_checksums)
    return manifest, panel

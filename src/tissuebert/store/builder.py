"""Building a store: panel once, then one sample at a time, then the manifest.

Each sample is written as ``samples/<id>.h5`` plus its record ``samples/<id>.json``; the manifest
is assembled from the records once every sample of the sheet is present. This makes ``prepare``
embarrassingly parallel (``--shard i/N`` in a SLURM array) and lets a sample be added later
without rewriting the others.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tissuebert.atomic import atomic_write_text
from tissuebert.constants import STORE
from tissuebert.errors import StoreError
from tissuebert.store.manifest import Manifest, SampleRecord, default_provenance, write_manifest
from tissuebert.store.panel import Panel, read_panel, write_panel
from tissuebert.store.sample import sha256_file, write_sample


def sample_relpath(sample_id: str) -> str:
    return f"{STORE.SAMPLES_DIR}/{sample_id}.h5"


def ensure_panel(root: str | Path, panel: Panel) -> str:
    """Write panel.h5 if absent; if present, require the same panel. Returns the panel hash."""
    root = Path(root)
    path = root / STORE.PANEL
    phash = panel.panel_hash()
    if path.exists():
        existing = read_panel(path).panel_hash()
        if existing != phash:
            raise StoreError(f"store already holds a different panel (hash {existing}, this run {phash})", path=path,
                             hint="use the same --regions/--reference/--window for every shard, or a new --out")
        return phash
    (root / STORE.SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    return write_panel(panel, path)


def add_sample(root: str | Path, *, panel: Panel, record: SampleRecord, window_idx: np.ndarray,
               calls: np.ndarray) -> SampleRecord:
    """Write ``samples/<id>.h5`` and its JSON record; fills n_reads, coverage and sha256."""
    root = Path(root)
    rel = sample_relpath(record.sample_id)
    digest = write_sample(root / rel, sample_id=record.sample_id, window_idx=window_idx, calls=calls,
                          n_windows=panel.n_windows, panel_hash=panel.panel_hash(),
                          pseudo_reads=record.pseudo_reads)
    record.file = rel
    record.n_reads = int(len(window_idx))
    record.n_windows_covered = int(np.unique(window_idx).size) if len(window_idx) else 0
    record.sha256 = digest
    atomic_write_text(root / STORE.SAMPLES_DIR / f"{record.sample_id}.json", json.dumps(asdict(record), indent=2) + "\n")
    return record


def assemble_manifest(root: str | Path, *, tissues: list[str], sample_ids: list[str], min_cpgs: int,
                      provenance: dict | None = None) -> Manifest:
    """Gather the sample records named by the sheet into manifest.json (atomic)."""
    root = Path(root)
    panel_path = root / STORE.PANEL
    panel = read_panel(panel_path)
    records: list[SampleRecord] = []
    missing: list[str] = []
    for sid in sample_ids:
        rec_path = root / STORE.SAMPLES_DIR / f"{sid}.json"
        if not rec_path.is_file():
            missing.append(sid)
            continue
        records.append(SampleRecord.from_dict(json.loads(rec_path.read_text()), str(rec_path)))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise StoreError(f"{len(missing)} sample(s) not prepared yet: {shown}", path=root,
                         hint="run the remaining shards, then assemble again")
    manifest = Manifest(tissues=list(tissues), panel_hash=panel.panel_hash(), panel_sha256=sha256_file(panel_path),
                        n_windows=panel.n_windows, max_cpgs=panel.max_cpgs, call_bytes=panel.call_bytes,
                        min_cpgs=min_cpgs, samples=records, provenance=provenance or default_provenance())
    write_manifest(root, manifest)
    return manifest

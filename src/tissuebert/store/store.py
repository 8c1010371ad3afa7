"""The store directory: manifest.json + panel.h5 + samples/<id>.h5 (docs/store_format.md)."""

from __future__ import annotations

from pathlib import Path

from tissuebert.constants import SPLITS
from tissuebert.errors import StoreError
from tissuebert.store.manifest import Manifest, SampleRecord
from tissuebert.store.panel import Panel
from tissuebert.store.sample import SampleReads, read_sample
from tissuebert.store.validate import validate_store


class Store:
    """Read access to a prepared store. ``Store.open`` validates it cheaply (no checksums)."""

    def __init__(self, root: str | Path, manifest: Manifest, panel: Panel) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.panel = panel

    @classmethod
    def open(cls, root: str | Path, *, verify_checksums: bool = False) -> "Store":
        manifest, panel = validate_store(root, verify_checksums=verify_checksums)
        return cls(root, manifest, panel)

    @property
    def tissues(self) -> list[str]:
        return self.manifest.tissues

    @property
    def panel_hash(self) -> str:
        return self.manifest.panel_hash

    def samples(self, split: str | None = None) -> list[SampleRecord]:
        if split is not None and split not in SPLITS:
            raise StoreError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}", path=self.root)
        return [s for s in self.manifest.samples if split is None or s.split == split]

    def sample(self, sample_id: str) -> SampleRecord:
        for rec in self.manifest.samples:
            if rec.sample_id == sample_id:
                return rec
        raise StoreError(f"no sample {sample_id!r} in store", path=self.root,
                         hint="`tissuebert inspect` lists the samples")

    def reads(self, sample: SampleRecord | str, *, mmap: bool = False) -> SampleReads:
        rec = self.sample(sample) if isinstance(sample, str) else sample
        return read_sample(self.root / rec.file, mmap=mmap)

    def sample_bytes(self, split: str | None = None) -> int:
        return int(sum((self.root / s.file).stat().st_size for s in self.samples(split)))

"""manifest.json: the store's table of contents (tissues, panel hash, one record per sample).

Kept apart from ``store.py`` so that validation (which checks a manifest against the files) and
the ``Store`` reader (which validates on open) both import it without importing each other.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tissuebert import __version__
from tissuebert.atomic import atomic_write_text
from tissuebert.constants import DNA_VOCAB, KMER, MANIFEST, METH_VOCAB, STORE, STORE_SCHEMA_VERSION, WINDOW_BP
from tissuebert.errors import StoreError


@dataclass
class SampleRecord:
    """One sample's entry in the manifest."""

    sample_id: str
    tissue: str
    tissue_id: int
    split: str
    file: str  # relative to the store root
    n_reads: int
    n_windows_covered: int
    sha256: str
    format: str = "pat"
    source: str = ""
    donor: str = ""
    original_label: str = ""
    pseudo_reads: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> "SampleRecord":
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("sample_id", "tissue", "tissue_id", "split", "file", "n_reads",
                               "n_windows_covered", "sha256") if k not in data]
        if missing:
            raise StoreError(f"sample record lacks {', '.join(missing)}", path=where)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Manifest:
    tissues: list[str]
    panel_hash: str
    panel_sha256: str
    n_windows: int
    max_cpgs: int
    call_bytes: int
    min_cpgs: int
    samples: list[SampleRecord]
    schema_version: int = STORE_SCHEMA_VERSION
    window_bp: int = WINDOW_BP
    vocab: dict[str, int] = field(default_factory=lambda: {"kmer": KMER, "dna": DNA_VOCAB, "meth": METH_VOCAB})
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2) + "\n"


def default_provenance(**extra: Any) -> dict[str, Any]:
    return {"tissuebert_version": __version__, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "platform": platform.platform(), "command": " ".join(sys.argv), **extra}


def write_manifest(root: str | Path, manifest: Manifest) -> None:
    atomic_write_text(Path(root) / STORE.MANIFEST, manifest.to_json())


def read_manifest(root: str | Path) -> Manifest:
    root = Path(root)
    path = root / STORE.MANIFEST
    if not root.exists():
        raise StoreError("store not found", path=root, hint="build it with `tissuebert prepare`")
    if not path.is_file():
        raise StoreError("no manifest.json in store", path=root,
                         hint="the store is incomplete: finish `tissuebert prepare` "
                              "(or run its --assemble step after sharded runs)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StoreError(f"manifest is not valid JSON ({exc.msg} at line {exc.lineno})", path=path) from None
    version = data.get(MANIFEST.SCHEMA)
    if version != STORE_SCHEMA_VERSION:
        raise StoreError(f"store schema version {version!r}, this tissuebert reads {STORE_SCHEMA_VERSION}",
                         path=path, hint="rebuild the store with this version's `tissuebert prepare`")
    for key in (MANIFEST.TISSUES, MANIFEST.PANEL_HASH, MANIFEST.SAMPLES, MANIFEST.N_WINDOWS,
                MANIFEST.MAX_CPGS, MANIFEST.CALL_BYTES, MANIFEST.MIN_CPGS, MANIFEST.PANEL_SHA256):
        if key not in data:
            raise StoreError(f"manifest lacks key {key!r}", path=path, hint="rebuild the store")
    samples = [SampleRecord.from_dict(s, str(path)) for s in data[MANIFEST.SAMPLES]]
    return Manifest(
        tissues=list(data[MANIFEST.TISSUES]), panel_hash=data[MANIFEST.PANEL_HASH],
        panel_sha256=data[MANIFEST.PANEL_SHA256], n_windows=int(data[MANIFEST.N_WINDOWS]),
        max_cpgs=int(data[MANIFEST.MAX_CPGS]), call_bytes=int(data[MANIFEST.CALL_BYTES]),
        min_cpgs=int(data[MANIFEST.MIN_CPGS]), samples=samples, schema_version=version,
        window_bp=int(data.get(MANIFEST.WINDOW, WINDOW_BP)), vocab=data.get(MANIFEST.VOCAB, {}),
        provenance=data.get(MANIFEST.PROVENANCE, {}),
    )

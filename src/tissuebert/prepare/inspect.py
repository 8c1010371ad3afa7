"""``tissuebert inspect``: a summary of a store, as plain-text tables or (``--json``) one object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tissuebert.constants import METH_NONE, SPLITS
from tissuebert.store.sample import unpack_calls
from tissuebert.store.store import Store

_CALL_SAMPLE = 200_000  # rows per sample unpacked to count CpG calls (enough for the quantiles shown)


def _stats(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    q = np.percentile(values, [0, 50, 100])
    return {"min": float(q[0]), "median": float(q[1]), "max": float(q[2]), "mean": float(values.mean())}


def _quantiles(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "-"
    return f"min {stats['min']:g} / median {stats['median']:g} / max {stats['max']:g} (mean {stats['mean']:.1f})"


def inspect_facts(root: str | Path) -> dict[str, Any]:
    """Everything `inspect` shows, as plain JSON-ready values."""
    store = Store.open(root)
    panel, manifest = store.panel, store.manifest
    per_split = {tissue: {split: sum(1 for s in manifest.samples if s.tissue_id == tid and s.split == split)
                          for split in SPLITS} for tid, tissue in enumerate(manifest.tissues)}
    samples, all_calls = [], []
    n_reads = np.array([s.n_reads for s in manifest.samples], dtype=np.int64)
    for rec in manifest.samples:
        reads = store.reads(rec, mmap=True)
        rows = np.arange(min(rec.n_reads, _CALL_SAMPLE))
        if rec.n_reads > _CALL_SAMPLE:
            rows = np.linspace(0, rec.n_reads - 1, _CALL_SAMPLE).astype(np.int64)
        codes = unpack_calls(np.asarray(reads.calls[rows]))
        n_calls = (codes != METH_NONE).sum(axis=1)
        all_calls.append(n_calls)
        samples.append({"sample_id": rec.sample_id, "tissue": rec.tissue, "split": rec.split,
                        "n_reads": int(rec.n_reads), "n_windows_covered": int(rec.n_windows_covered),
                        "reads_per_window": rec.n_reads / max(rec.n_windows_covered, 1),
                        "cpgs_per_read": float(n_calls.mean()) if n_calls.size else 0.0,
                        "pseudo_reads": bool(rec.pseudo_reads)})
    pseudo = sum(s.n_reads for s in manifest.samples if s.pseudo_reads)
    calls = np.concatenate(all_calls) if all_calls else np.zeros(0)
    return {"store": str(Path(root)), "n_samples": len(manifest.samples), "n_tissues": len(manifest.tissues),
            "tissues": list(manifest.tissues), "n_windows": int(panel.n_windows),
            "n_windows_with_cpgs": int((panel.n_cpgs > 0).sum()), "panel_hash": manifest.panel_hash,
            "min_cpgs": int(manifest.min_cpgs), "cpgs_per_window": _stats(panel.n_cpgs),
            "samples_per_tissue_and_split": per_split, "samples": samples, "n_reads": int(n_reads.sum()),
            "reads_per_sample": _stats(n_reads), "cpg_calls_per_read": _stats(calls),
            "pseudo_read_share": pseudo / max(int(n_reads.sum()), 1)}


def render_facts(facts: dict[str, Any]) -> str:
    """The plain-text tables of :func:`inspect_facts`."""
    lines = [f"store {facts['store']}: {facts['n_samples']} samples, {facts['n_tissues']} tissues, "
             f"{facts['n_windows']} windows ({facts['n_windows_with_cpgs']} with CpGs), panel {facts['panel_hash']}",
             f"min CpGs per read {facts['min_cpgs']}; CpGs per window {_quantiles(facts['cpgs_per_window'])}", "",
             "samples per tissue and split:"]
    width = max([len(t) for t in facts["tissues"]] + [6])
    lines.append(f"  {'tissue':<{width}}  " + "  ".join(f"{s:>6}" for s in SPLITS))
    for tissue, row in facts["samples_per_tissue_and_split"].items():
        lines.append(f"  {tissue:<{width}}  " + "  ".join(f"{row[s]:>6}" for s in SPLITS))
    lines += ["", "per sample:", f"  {'sample':<24} {'tissue':<{width}} {'split':<5} {'reads':>10} {'windows':>8} "
              f"{'reads/window':>12} {'CpGs/read':>9} pseudo"]
    for s in facts["samples"]:
        lines.append(f"  {s['sample_id']:<24} {s['tissue']:<{width}} {s['split']:<5} {s['n_reads']:>10} "
                     f"{s['n_windows_covered']:>8} {s['reads_per_window']:>12.1f} {s['cpgs_per_read']:>9.2f} "
                     f"{'yes' if s['pseudo_reads'] else 'no'}")
    lines += ["", f"reads per sample: {_quantiles(facts['reads_per_sample'])}",
              f"CpG calls per read: {_quantiles(facts['cpg_calls_per_read'])}",
              f"pseudo-read share: {facts['pseudo_read_share']:.1%} of reads"]
    return "\n".join(lines) + "\n"


def inspect_store(root: str | Path) -> str:
    return render_facts(inspect_facts(root))

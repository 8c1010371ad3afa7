"""``tissuebert inspect``: a plain-text summary of a store (tables on stdout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.constants import METH_NONE, SPLITS
from tissuebert.store.sample import unpack_calls
from tissuebert.store.store import Store

_CALL_SAMPLE = 200_000  # rows per sample unpacked to count CpG calls (enough for the quantiles shown)


def _quantiles(values: np.ndarray) -> str:
    if values.size == 0:
        return "-"
    q = np.percentile(values, [0, 50, 100])
    return f"min {q[0]:g} / median {q[1]:g} / max {q[2]:g} (mean {values.mean():.1f})"


def inspect_store(root: str | Path) -> str:
    store = Store.open(root)
    panel, manifest = store.panel, store.manifest
    lines = [f"store {Path(root)}: {len(manifest.samples)} samples, {len(manifest.tissues)} tissues, "
             f"{panel.n_windows} windows ({int((panel.n_cpgs > 0).sum())} with CpGs), panel {manifest.panel_hash}",
             f"min CpGs per read {manifest.min_cpgs}; CpGs per window {_quantiles(panel.n_cpgs)}", "",
             "samples per tissue and split:"]
    width = max([len(t) for t in manifest.tissues] + [6])
    lines.append(f"  {'tissue':<{width}}  " + "  ".join(f"{s:>6}" for s in SPLITS))
    for tid, tissue in enumerate(manifest.tissues):
        row = [sum(1 for s in manifest.samples if s.tissue_id == tid and s.split == split) for split in SPLITS]
        lines.append(f"  {tissue:<{width}}  " + "  ".join(f"{n:>6}" for n in row))
    lines += ["", "per sample:", f"  {'sample':<24} {'tissue':<{width}} {'split':<5} {'reads':>10} {'windows':>8} "
              f"{'reads/window':>12} {'CpGs/read':>9} pseudo"]
    all_calls: list[np.ndarray] = []
    n_reads = np.array([s.n_reads for s in manifest.samples], dtype=np.int64)
    for rec in manifest.samples:
        reads = store.reads(rec, mmap=True)
        rows = np.arange(min(rec.n_reads, _CALL_SAMPLE))
        if rec.n_reads > _CALL_SAMPLE:
            rows = np.linspace(0, rec.n_reads - 1, _CALL_SAMPLE).astype(np.int64)
        codes = unpack_calls(np.asarray(reads.calls[rows]))
        n_calls = (codes != METH_NONE).sum(axis=1)
        all_calls.append(n_calls)
        per_window = rec.n_reads / max(rec.n_windows_covered, 1)
        lines.append(f"  {rec.sample_id:<24} {rec.tissue:<{width}} {rec.split:<5} {rec.n_reads:>10} "
                     f"{rec.n_windows_covered:>8} {per_window:>12.1f} {n_calls.mean() if n_calls.size else 0:>9.2f} "
                     f"{'yes' if rec.pseudo_reads else 'no'}")
    pseudo = sum(s.n_reads for s in manifest.samples if s.pseudo_reads)
    calls = np.concatenate(all_calls) if all_calls else np.zeros(0)
    lines += ["", f"reads per sample: {_quantiles(n_reads)}", f"CpG calls per read: {_quantiles(calls)}",
              f"pseudo-read share: {pseudo / max(int(n_reads.sum()), 1):.1%} of reads"]
    return "\n".join(lines) + "\n"

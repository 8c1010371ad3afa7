"""Fixed, deterministic read sets for validation, evaluation and prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tissuebert.data.eligibility import sample_eligible_rows
from tissuebert.store.manifest import SampleRecord
from tissuebert.store.store import Store


@dataclass
class EvalReads:
    """Reads of a split, flattened: row r is read ``r`` of sample ``samples[sample_pos[r]]``."""

    samples: list[SampleRecord]
    sample_pos: np.ndarray  # (R,) int32 index into samples
    window_idx: np.ndarray  # (R,) int64
    calls: np.ndarray  # (R, B) uint8 packed
    labels: np.ndarray  # (R,) int64 tissue ids

    @property
    def n_reads(self) -> int:
        return int(self.window_idx.shape[0])


def build_eval_reads(store: Store, split: str, *, max_reads_per_sample: int | None, seed: int,
                     min_cpgs: int = 1) -> EvalReads:
    """All reads of ``split`` (or an evenly random subset per sample), identical on every call.

    The subset depends only on (seed, sample id), so the validation set never changes between
    epochs, resumes or ranks. Only reads with >= ``min_cpgs`` calls in their window count, the
    rule training uses (:func:`~tissuebert.data.eligibility.sample_eligible_rows`).
    """
    samples = store.samples(split)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for pos, rec in enumerate(samples):
        reads = store.reads(rec)
        # the training sampler's rule (data/eligibility.py): the read's own calls in its window
        rows = sample_eligible_rows(store.manifest.min_cpgs, store.panel, reads.window_idx, reads.calls, min_cpgs)
        rows = np.arange(reads.n_reads) if rows is None else rows
        if max_reads_per_sample is not None and rows.size > max_reads_per_sample:
            # a per-sample stream keyed by the sample id: adding a sample changes no other sample's subset
            key = int.from_bytes(rec.sample_id.encode()[:8].ljust(8, b"\0"), "little")
            rng = np.random.default_rng([seed, key, len(rec.sample_id)])
            rows = np.sort(rng.choice(rows, size=max_reads_per_sample, replace=False))
        parts.append((np.full(rows.size, pos, np.int32), reads.window_idx[rows].astype(np.int64),
                      np.asarray(reads.calls[rows]), np.full(rows.size, rec.tissue_id, np.int64)))
    if not parts:
        call_bytes = store.manifest.call_bytes
        empty = np.zeros(0, np.int64)
        return EvalReads(samples, empty.astype(np.int32), empty, np.zeros((0, call_bytes), np.uint8), empty)
    return EvalReads(samples, *(np.concatenate(x) for x in zip(*parts)))

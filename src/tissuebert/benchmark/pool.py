"""The read pool of a benchmark: every read of the held-out test samples, scored once.

An in-silico mixture is a vector of multiplicities over the pool, so every method reuses the
per-read work done here: model log-likelihoods (one forward pass per read for all mixtures),
the simple rival's (logreg) log-likelihoods,
the baselines' per-read marker statistics and, on simulated data, the oracle's exact
log-likelihoods. :meth:`ReadPool.evidence` hands a mixture's share of them to any method of the
table in deconvolve/methods.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tissuebert.constants import CKPT
from tissuebert.deconvolve.baselines import MarkerReference, ReadMarkerStats, read_marker_stats
from tissuebert.deconvolve.em import scaled_likelihoods
from tissuebert.deconvolve.methods import NEEDS, Evidence
from tissuebert.deconvolve.run import logreg_loglik, score_reads
from tissuebert.errors import TissueBertError
from tissuebert.evaluate.oracle import oracle_loglik_for_reads
from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.inference.logreg import LogRegFit
from tissuebert.progress import get_logger
from tissuebert.store.store import Store

log = get_logger("benchmark")


@dataclass
class ReadPool:
    tissues: list[str]
    tissue_of_read: np.ndarray  # (R,) int64 tissue id of the sample each read came from
    rows_of_tissue: list[np.ndarray]  # pool rows of each tissue
    model_lik: np.ndarray  # (R, T) float32 scaled model likelihoods (prior divided out, calibrated T)
    model_call: np.ndarray  # (R,) argmax tissue
    model_post: np.ndarray  # (R, T) float32 posteriors under a uniform prior
    markers: ReadMarkerStats
    oracle_lik: np.ndarray | None  # (R, T) float32 scaled oracle likelihoods, simulated data only
    logreg_lik: np.ndarray | None = None  # (R, T) float32 scaled logreg likelihoods (prior divided out)

    @property
    def n_reads(self) -> int:
        return int(self.tissue_of_read.shape[0])

    def evidence(self, needs: str, rows: np.ndarray, reference: MarkerReference) -> Evidence:
        """What a method of kind ``needs`` (deconvolve/methods.py) reads about a mixture's ``rows``."""
        lik = {NEEDS.MODEL: self.model_lik, NEEDS.LOGREG: self.logreg_lik, NEEDS.ORACLE: self.oracle_lik}.get(needs)
        return _PoolEvidence(self, lik, rows, reference)


class _PoolEvidence(Evidence):
    """A mixture's rows of the pool: every array was computed once for the pool, a mixture only indexes."""

    def __init__(self, pool: ReadPool, lik: np.ndarray | None, rows: np.ndarray, reference: MarkerReference) -> None:
        super().__init__(pool.tissues, reference=reference)
        self._pool, self._lik, self._rows = pool, lik, rows

    @cached_property
    def lik(self) -> np.ndarray:
        return self._lik[self._rows]

    @cached_property
    def post(self) -> np.ndarray:
        if self._lik is self._pool.model_lik:  # the model's posteriors were computed once for the pool
            return self._pool.model_post[self._rows]
        return (self.lik / self.lik.sum(axis=1, keepdims=True)).astype(np.float32)

    @cached_property
    def call(self) -> np.ndarray:
        return self._pool.model_call[self._rows] if self._lik is self._pool.model_lik else self.lik.argmax(axis=1)

    @cached_property
    def markers(self) -> ReadMarkerStats:
        return self._pool.markers.take(self._rows)


def build_pool(state: dict[str, Any], store: Store, *, split: str = "test", truth_dir: Path | None = None,
               device: str | None = None, batch_size: int | None = None, precision: str = "auto",
               logreg: LogRegFit | None = None) -> ReadPool:
    """Pool and score every read of ``split`` (held-out samples only), by the model and, when
    given, by a fitted logistic regression."""
    if list(state[CKPT.TISSUES]) != list(store.tissues):
        Checkpoint(state).check_compatible(tissues=store.tissues, panel_hash=store.panel_hash)
    windows, calls, tissue = [], [], []
    for rec in store.samples(split):
        reads = store.reads(rec)
        windows.append(reads.window_idx.astype(np.int64))
        calls.append(np.asarray(reads.calls))
        tissue.append(np.full(reads.n_reads, rec.tissue_id, np.int64))
    if not windows:
        raise TissueBertError(f"the store has no {split} samples to build mixtures from", path=store.root)
    window_idx, packed, tissue_of = np.concatenate(windows), np.concatenate(calls), np.concatenate(tissue)
    rows = [np.flatnonzero(tissue_of == t) for t in range(len(store.tissues))]
    log.info("benchmark pool: %d reads of %d %s samples", len(tissue_of), len(windows), split)
    _, loglik = score_reads(state, store.panel, window_idx, packed, device=device, batch_size=batch_size,
                            precision=precision)
    lik = scaled_likelihoods(loglik)
    post = lik / lik.sum(axis=1, keepdims=True)
    oracle = None
    if truth_dir is not None:
        oracle = scaled_likelihoods(oracle_loglik_for_reads(truth_dir, store, window_idx, packed))
    logreg_lik = None
    if logreg is not None:
        logreg_lik = scaled_likelihoods(logreg_loglik(logreg, store.panel, window_idx, packed))
    return ReadPool(list(store.tissues), tissue_of, rows, lik, loglik.argmax(axis=1), post.astype(np.float32),
                    read_marker_stats(store.panel, window_idx, packed), oracle, logreg_lik)

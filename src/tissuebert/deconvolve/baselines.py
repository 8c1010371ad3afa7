"""Reference-based baselines: UXM-style fragment U-fraction NNLS and Moss-style beta NNLS.

Both fit a sample's per-marker signal y (M,) as a non-negative combination of an atlas A (M, T)
of the same signal in each pure tissue, then normalise the coefficients to sum to one:

- ``nnls`` (Moss et al. 2018): y = methylated fraction of all CpG calls in the marker ("beta").
- ``uxm`` (Loyfer et al. 2023): y = share of the marker's fragments with >= 4 CpG calls that are
  unmethylated (methylated fraction < 0.251). Rows are weighted by sqrt(n_m), n_m = the sample's
  informative fragments in marker m: a U-fraction from n fragments has variance ∝ 1/n, and
  scaling a least-squares row by 1/sd is the weighted least-squares estimate.

Here a marker is a region of the store's panel and the atlases are pooled over the store's
training samples of each tissue (:func:`build_references`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from tissuebert.constants import METH_M, METH_NONE
from tissuebert.store.panel import Panel
from tissuebert.store.sample import unpack_calls
from tissuebert.store.store import Store

UXM_MIN_CPGS = 4  # a fragment informs a marker only with at least this many CpG calls in it
UXM_U_THRESHOLD = 0.251  # ... and is a U fragment when its methylated fraction is below this


@dataclass
class MarkerCounts:
    """Per-marker sufficient statistics of a set of reads (M markers = panel regions)."""

    meth_calls: np.ndarray  # (M,) methylated CpG calls
    total_calls: np.ndarray  # (M,) all CpG calls
    u_fragments: np.ndarray  # (M,) U fragments (>= min_cpgs calls, methylated fraction < threshold)
    informative: np.ndarray  # (M,) fragments with >= min_cpgs calls

    def __add__(self, other: "MarkerCounts") -> "MarkerCounts":
        return MarkerCounts(self.meth_calls + other.meth_calls, self.total_calls + other.total_calls,
                            self.u_fragments + other.u_fragments, self.informative + other.informative)

    @property
    def beta(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.total_calls > 0, self.meth_calls / self.total_calls, np.nan)

    @property
    def u_fraction(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.informative > 0, self.u_fragments / self.informative, np.nan)


@dataclass
class ReadMarkerStats:
    """Per-read contributions to the marker counts: sum them with any read weights."""

    region: np.ndarray  # (R,) int64 marker (panel region) of the read's window
    n_meth: np.ndarray  # (R,) methylated calls
    n_called: np.ndarray  # (R,) calls
    is_u: np.ndarray  # (R,) bool U fragment
    informative: np.ndarray  # (R,) bool
    n_markers: int

    def take(self, rows: np.ndarray) -> "ReadMarkerStats":
        """The stats of a subset of the reads (a benchmark mixture's rows of the pool)."""
        return ReadMarkerStats(self.region[rows], self.n_meth[rows], self.n_called[rows], self.is_u[rows],
                               self.informative[rows], self.n_markers)

    def counts(self, weights: np.ndarray | None = None) -> MarkerCounts:
        w = np.ones(self.region.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)

        def per_marker(values: np.ndarray) -> np.ndarray:
            return np.bincount(self.region, weights=values * w, minlength=self.n_markers)

        return MarkerCounts(per_marker(self.n_meth), per_marker(self.n_called),
                            per_marker(self.is_u.astype(np.float64)), per_marker(self.informative.astype(np.float64)))


def read_marker_stats(panel: Panel, window_idx: np.ndarray, packed_calls: np.ndarray, *,
                      min_cpgs: int = UXM_MIN_CPGS, u_threshold: float = UXM_U_THRESHOLD) -> ReadMarkerStats:
    """Each read's calls in its window, reduced to what the two baselines need."""
    window_idx = np.asarray(window_idx, dtype=np.int64)
    codes = unpack_calls(packed_calls, max(panel.max_cpgs, 1))  # (R, K)
    # slots past a window's own CpGs are padding whatever they hold
    real = np.arange(codes.shape[1])[None, :] < panel.n_cpgs[window_idx][:, None]
    called = real & (codes != METH_NONE)
    n_called = called.sum(axis=1).astype(np.float64)
    n_meth = (called & (codes == METH_M)).sum(axis=1).astype(np.float64)
    informative = n_called >= min_cpgs
    is_u = informative & (n_meth < u_threshold * n_called)
    return ReadMarkerStats(panel.win_region[window_idx].astype(np.int64), n_meth, n_called, is_u, informative,
                           int(panel.reg_start.shape[0]))


def marker_counts(panel: Panel, window_idx: np.ndarray, packed_calls: np.ndarray, counts: np.ndarray | None = None,
                  *, min_cpgs: int = UXM_MIN_CPGS, u_threshold: float = UXM_U_THRESHOLD) -> MarkerCounts:
    """Sum the reads' calls per marker (panel region); ``counts`` are read multiplicities."""
    stats = read_marker_stats(panel, window_idx, packed_calls, min_cpgs=min_cpgs, u_threshold=u_threshold)
    return stats.counts(counts)


@dataclass
class MarkerReference:
    """Atlases of the two baselines: one column per tissue, one row per marker (NaN = no data)."""

    tissues: list[str]
    beta: np.ndarray  # (M, T)
    u_fraction: np.ndarray  # (M, T)


def build_references(store: Store, split: str = "train", *, min_cpgs: int = UXM_MIN_CPGS,
                     u_threshold: float = UXM_U_THRESHOLD) -> MarkerReference:
    """Pool each tissue's ``split`` samples into per-marker beta and U-fraction atlases."""
    pooled: list[MarkerCounts | None] = [None] * len(store.tissues)
    for rec in store.samples(split):
        reads = store.reads(rec)
        mc = marker_counts(store.panel, reads.window_idx, reads.calls, min_cpgs=min_cpgs, u_threshold=u_threshold)
        pooled[rec.tissue_id] = mc if pooled[rec.tissue_id] is None else pooled[rec.tissue_id] + mc
    n_markers = int(store.panel.reg_start.shape[0])
    empty = np.full(n_markers, np.nan)
    beta = np.stack([empty if mc is None else mc.beta for mc in pooled], axis=1)
    u_frac = np.stack([empty if mc is None else mc.u_fraction for mc in pooled], axis=1)
    return MarkerReference(list(store.tissues), beta, u_frac)


def nnls_mixture(atlas: np.ndarray, signal: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Non-negative least squares of ``signal`` (M,) on ``atlas`` (M, T), normalised to sum 1.

    Markers where the sample or any atlas column is NaN, or whose weight is 0, are dropped.
    """
    atlas = np.asarray(atlas, dtype=np.float64)
    signal = np.asarray(signal, dtype=np.float64)
    keep = np.isfinite(signal) & np.all(np.isfinite(atlas), axis=1)
    w = np.ones_like(signal) if weights is None else np.asarray(weights, dtype=np.float64)
    keep &= w > 0
    if not keep.any():
        raise ValueError("no marker has data in both the sample and the atlas")
    scale = np.sqrt(w[keep]) if weights is not None else np.ones(int(keep.sum()))
    coef, _ = nnls(atlas[keep] * scale[:, None], signal[keep] * scale)
    total = coef.sum()
    return coef / total if total > 0 else np.full(atlas.shape[1], np.nan)


def nnls_proportions(reference: MarkerReference, sample: MarkerCounts) -> np.ndarray:
    """Moss-style: per-marker beta NNLS."""
    return nnls_mixture(reference.beta, sample.beta)


def uxm_proportions(reference: MarkerReference, sample: MarkerCounts) -> np.ndarray:
    """UXM-style: per-marker U-fraction NNLS, rows weighted by the sample's informative fragments."""
    return nnls_mixture(reference.u_fraction, sample.u_fraction, weights=sample.informative)

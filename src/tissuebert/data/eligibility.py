"""Which reads count: one rule for training, validation, evaluation and the simple rival.

A read is an example for its window when it has at least ``min_cpgs`` calls (U or M) on the
window's own CpGs. The rule counts the read's calls, not the window's CpGs: a read covering 2 of
a window's 8 CpGs carries 2 calls and is not an example at ``min_cpgs = 3``.
"""

from __future__ import annotations

import numpy as np

from tissuebert.constants import METH_NONE
from tissuebert.store.panel import Panel
from tissuebert.store.sample import unpack_calls

_CHUNK = 1 << 20  # reads per unpack: bounded memory on memory-mapped files


def calls_in_window(panel: Panel, window_idx: np.ndarray, packed_calls: np.ndarray) -> np.ndarray:
    """(R,) windows + (R, B) packed calls -> (R,) int64 count of U/M calls on the window's CpGs."""
    window_idx = np.asarray(window_idx, dtype=np.int64)
    width = max(panel.max_cpgs, 1)
    n_cpgs = panel.n_cpgs
    out = np.empty(window_idx.shape[0], dtype=np.int64)
    for start in range(0, window_idx.shape[0], _CHUNK):
        stop = start + _CHUNK
        codes = unpack_calls(np.asarray(packed_calls[start:stop]), width)  # (r, K)
        # slots past the window's CpG count are padding, whatever they hold
        own = np.arange(width)[None, :] < n_cpgs[window_idx[start:stop]][:, None]  # (r, K)
        out[start:start + codes.shape[0]] = ((codes != METH_NONE) & own).sum(axis=1)
    return out


def eligible_rows(panel: Panel, window_idx: np.ndarray, packed_calls: np.ndarray, min_cpgs: int) -> np.ndarray:
    """(n,) int64 rows of the reads that count at ``min_cpgs`` (ascending)."""
    if min_cpgs < 1:
        raise ValueError(f"min_cpgs must be >= 1, got {min_cpgs}")
    return np.flatnonzero(calls_in_window(panel, window_idx, packed_calls) >= min_cpgs)


def sample_eligible_rows(store_min_cpgs: int, panel: Panel, window_idx: np.ndarray, packed_calls: np.ndarray,
                         min_cpgs: int) -> np.ndarray | None:
    """Rows of one store sample that count at ``min_cpgs``, or None when all do.

    ``prepare`` already kept only reads with >= the store's ``min_cpgs`` calls in their window
    (the same rule), so below or at that value nothing is filtered and nothing is unpacked.
    """
    if min_cpgs <= store_min_cpgs:
        return None
    return eligible_rows(panel, window_idx, packed_calls, min_cpgs)

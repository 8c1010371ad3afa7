"""The Bayes-optimal reference on simulated stores: exact log p(read | tissue) from the cohort's truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.errors import TissueBertError
from tissuebert.store.panel import Panel
from tissuebert.store.sample import unpack_calls
from tissuebert.store.store import Store

_CHUNK = 100_000  # reads per oracle call: bounds its (calls x tissues x states) temporaries


def cohort_of_store(store: Store) -> Path | None:
    """The simulated cohort a store was prepared from (its sheet's folder holds truth/), if any."""
    sheet = store.manifest.provenance.get("sheet")
    if not sheet:
        return None
    cohort = Path(sheet).parent
    return cohort if (cohort / "truth" / "model.npz").is_file() else None


def read_cpg_index(panel: Panel, window_idx: np.ndarray, width: int) -> np.ndarray:
    """(R, width) genome-wide CpG index of each read slot (0 = padding), for the oracle."""
    window_idx = np.asarray(window_idx, dtype=np.int64)
    cols = np.arange(width)[None, :]
    slot = panel.cpg_ptr[window_idx][:, None] + cols
    real = cols < panel.n_cpgs[window_idx][:, None]
    out = np.zeros((window_idx.shape[0], width), dtype=np.int64)
    out[real] = panel.cpg_index[slot[real]]
    return out


def oracle_loglik_for_reads(truth_dir: str | Path, store: Store, window_idx: np.ndarray,
                            packed_calls: np.ndarray) -> np.ndarray:
    """(R, T) float64 exact log-likelihoods of store-format reads, tissues in the store's order."""
    from tissuebert.simulate import load_truth, oracle_loglik

    truth = load_truth(truth_dir)
    missing = [t for t in store.tissues if t not in truth.tissues]
    if missing:
        raise TissueBertError(f"the cohort's truth lacks tissues {missing}", path=truth_dir,
                              hint="pass the cohort this store was prepared from")
    order = [truth.tissues.index(t) for t in store.tissues]
    width = max(store.panel.max_cpgs, 1)
    out = np.empty((len(window_idx), len(store.tissues)))
    for start in range(0, len(window_idx), _CHUNK):
        sl = slice(start, start + _CHUNK)
        ll = oracle_loglik(truth, read_cpg_index(store.panel, window_idx[sl], width),
                           unpack_calls(packed_calls[sl], width))
        out[sl] = ll[:, order]
    return out

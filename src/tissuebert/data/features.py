"""Reads -> the logistic regression's one-hot (panel CpG, call) features, vectorised."""

from __future__ import annotations

import numpy as np

from tissuebert.constants import METH_M, METH_U
from tissuebert.store.panel import Panel
from tissuebert.store.sample import unpack_calls


def cpg_call_features(panel: Panel, window_idx: np.ndarray, packed_calls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R,) windows + (R, B) packed calls -> ((R, K) int64 feature ids, (R, K) bool valid).

    Slot j of a read in window w is the panel CpG ``g = cpg_ptr[w] + j``; its feature is
    ``2 * g + call`` (call 0 = U, 1 = M). A slot is valid when it is one of the window's CpGs and
    the read calls it; K is the panel's most CpGs in a window.
    """
    window_idx = np.asarray(window_idx, dtype=np.int64)
    width = max(panel.max_cpgs, 1)
    codes = unpack_calls(packed_calls, width).astype(np.int64)  # (R, K)
    slots = np.arange(width)[None, :]  # (1, K)
    own = slots < panel.n_cpgs[window_idx][:, None]
    valid = own & ((codes == METH_U) | (codes == METH_M))
    feature_idx = 2 * (panel.cpg_ptr[window_idx][:, None] + slots) + codes  # (R, K)
    return np.where(valid, feature_idx, 0), valid

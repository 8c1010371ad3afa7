"""A fragment-state atlas fitted by EM on every eligible read of the training split.

Each read of window w from tissue t comes from one of K fragment states (K = 3: mostly
unmethylated, mixed, mostly methylated); state k methylates panel CpG g with probability
theta[g, k], shared by the tissues, and the tissue sets the state's share pi[w, t, k]. EM over
the split's reads (no gradient) fits both; a read's likelihood under t is then
sum_k pi[w, t, k] prod_j p(call_j | g_j, k). This is the parametrisation of the model's
fragment-state head (``model.fragment_states``), which ``train.state_source = split`` starts
from this fit (docs/training.md, "Counting the whole split").
"""

from __future__ import annotations

import numpy as np

from tissuebert.progress import get_logger, track

log = get_logger("data")

THETA_RANGE = (1e-4, 1 - 1e-4)


def split_reads(sampler) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sampler's eligible reads with at least one call, identical reads of one (window, tissue)
    collapsed into one row: (cell = window x T + tissue (U,), CpG of each slot (U, K) int32,
    methylated (U, K) bool, called (U, K) bool, reads per row (U,) float64)."""
    n_tissues = len(sampler.store.tissues)
    rows = []
    for tissue, window, feature, valid in sampler.split_features():
        keep = valid.any(axis=1)
        key = np.where(valid[keep], feature[keep], -1).astype(np.int32)  # -1: no call in the slot
        rows.append(np.concatenate([(window[keep] * n_tissues + tissue).astype(np.int32)[:, None], key], axis=1))
    if not rows:
        raise ValueError("the training split has no read with a call in a panel window")
    rows = np.ascontiguousarray(np.concatenate(rows))
    # one sort over whole rows (each viewed as one opaque value) finds the identical reads
    whole = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, counts = np.unique(whole, return_index=True, return_counts=True)
    unique = rows[first]
    key = unique[:, 1:]
    valid = key >= 0
    feature = np.where(valid, key, 0)
    return (unique[:, 0].astype(np.int64), (feature // 2).astype(np.int32), (feature % 2).astype(bool), valid,
            counts.astype(np.float64))


def read_state_loglik(theta: np.ndarray, cpg: np.ndarray, meth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, K) log p(read's calls | state k) = sum over its calls of log theta or log (1 - theta)."""
    log_m, log_u = np.log(theta), np.log1p(-theta)
    return np.stack([(np.where(meth, log_m[cpg, k], log_u[cpg, k]) * valid).sum(axis=1)
                     for k in range(theta.shape[1])], axis=1)


def fit_state_atlas(sampler, n_states: int, *, iterations: int = 40, prior: float = 1.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """EM on the sampler's split: (theta (C, K) P(M | CpG, state), pi (W, T, K) state shares).

    States start at methylation 0.05 .. 0.95 for every CpG (so state k keeps its meaning: k = 0
    the least methylated) and shares uniform; ``prior`` reads of pseudo-count per (window,
    tissue, state) keep a cell without reads at the uniform share, and half a call per (CpG,
    state) keeps theta off 0 and 1."""
    if n_states < 2:
        raise ValueError(f"a state atlas needs >= 2 states, got {n_states}")
    store = sampler.store
    n_cpgs, n_tissues, n_windows = int(store.panel.cpg_ptr[-1]), len(store.tissues), store.panel.n_windows
    cell, cpg, meth, valid, weight = split_reads(sampler)
    n_cells = n_windows * n_tissues
    theta = np.tile(np.linspace(0.05, 0.95, n_states), (n_cpgs, 1))
    pi = np.full((n_cells, n_states), 1.0 / n_states)
    read_of, slot = np.nonzero(valid)
    g, m = cpg[read_of, slot], meth[read_of, slot]
    mean_ll = float("nan")
    for _ in track(range(iterations), "fitting the fragment-state atlas (EM iterations)"):
        joint = np.log(pi[cell]) + read_state_loglik(theta, cpg, meth, valid)  # (N, K)
        top = joint.max(axis=1, keepdims=True)
        total = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))
        resp = np.exp(joint - total[:, None]) * weight[:, None]  # the row's reads' share of each state
        mean_ll = float(total @ weight / weight.sum())
        shares = np.stack([np.bincount(cell, weights=resp[:, k], minlength=n_cells) for k in range(n_states)], axis=1)
        pi = (shares + prior) / (shares + prior).sum(axis=1, keepdims=True)
        per_call = resp[read_of]  # (calls, K)
        called = np.stack([np.bincount(g, weights=per_call[:, k], minlength=n_cpgs) for k in range(n_states)], axis=1)
        methylated = np.stack([np.bincount(g, weights=per_call[:, k] * m, minlength=n_cpgs)
                               for k in range(n_states)], axis=1)
        theta = np.clip((methylated + 0.5) / (called + 1.0), *THETA_RANGE)
    log.info("fragment-state atlas: %d states, %d reads (%d distinct), %d EM iterations, mean log-likelihood "
             "per read %.4f", n_states, int(weight.sum()), cell.shape[0], iterations, mean_ll)
    return theta, pi.reshape(n_windows, n_tissues, n_states)

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
from scipy.special import logsumexp

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


def tissue_tables(theta: np.ndarray, n_tissues: int) -> np.ndarray:
    """Shared emissions (C, K) as the per-tissue layout (C, T, K), every tissue the same table;
    per-tissue ones are returned as they are."""
    return np.repeat(theta[:, None, :], n_tissues, axis=1) if theta.ndim == 2 else theta


def read_state_loglik(theta: np.ndarray, cpg: np.ndarray, meth: np.ndarray, valid: np.ndarray,
                      tissue: np.ndarray | int | None = None) -> np.ndarray:
    """(N, K) log p(read's calls | state k) = sum over its calls of log theta or log (1 - theta).

    ``theta`` (C, K) is shared by the tissues; (C, T, K) holds one table per tissue, and
    ``tissue`` (an id, or (N,) ids) says whose to use for each read."""
    if theta.ndim == 3:
        if tissue is None:
            raise ValueError("per-tissue emissions (C, T, K) need the reads' tissue")
        theta = theta[:, tissue] if np.ndim(tissue) == 0 else theta[cpg, np.asarray(tissue)[:, None]]
    if theta.ndim == 2:
        theta = theta[cpg]  # (N, S, K)
    return (np.where(meth[..., None], np.log(theta), np.log1p(-theta)) * valid[..., None]).sum(axis=1)


def fit_state_atlas(sampler, n_states: int, *, iterations: int = 40, prior: float = 1.0,
                    tissue_prior: float | None = None, reads: tuple | None = None,
                    start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """EM on the sampler's split: (theta P(M | CpG, state), pi (W, T, K) state shares).

    States start at methylation 0.05 .. 0.95 for every CpG (so state k keeps its meaning: k = 0
    the least methylated) and shares uniform; ``prior`` reads of pseudo-count per (window,
    tissue, state) keep a cell without reads at the uniform share, and half a call per (CpG,
    state) keeps theta off 0 and 1.

    ``tissue_prior`` None: theta (C, K) is shared by the tissues (a state means the same
    methylation everywhere; the tissue sets only how often it occurs). A number a > 0: theta
    (C, T, K), each tissue's own, shrunk towards the shared value by a pseudo-calls,
    theta[g, t, k] = (m[g, t, k] + a theta[g, k]) / (n[g, t, k] + a): a state's level may then
    differ between tissues (a cell subtype methylated in one tissue's version of a block and not
    in another's), where the data say so. ``reads``: :func:`split_reads` of the sampler, when the
    caller already has them. ``start``: (theta, pi) of an earlier fit to continue from instead of
    the even start (shared theta is given to every tissue)."""
    if n_states < 2:
        raise ValueError(f"a state atlas needs >= 2 states, got {n_states}")
    if tissue_prior is not None and not tissue_prior > 0:
        raise ValueError(f"the per-tissue emission prior must be > 0 pseudo-calls, got {tissue_prior}")
    store = sampler.store
    n_cpgs, n_tissues, n_windows = int(store.panel.cpg_ptr[-1]), len(store.tissues), store.panel.n_windows
    cell, cpg, meth, valid, weight = reads if reads is not None else split_reads(sampler)
    n_cells = n_windows * n_tissues
    tissue = cell % n_tissues
    theta = np.tile(np.linspace(0.05, 0.95, n_states), (n_cpgs, 1))
    pi = np.full((n_cells, n_states), 1.0 / n_states)
    if start is not None:
        theta, pi = start[0].copy(), start[1].reshape(n_cells, n_states).copy()
    if tissue_prior is not None:
        theta = tissue_tables(theta, n_tissues)
    if start is not None:
        if theta.shape != ((n_cpgs, n_tissues, n_states) if tissue_prior is not None else (n_cpgs, n_states)):
            raise ValueError(f"a start theta of shape {start[0].shape} does not fit this fit")
    read_of, slot = np.nonzero(valid)
    g, m = cpg[read_of, slot], meth[read_of, slot]
    where = g if tissue_prior is None else g * n_tissues + tissue[read_of]  # the theta cell of each call
    n_where = n_cpgs if tissue_prior is None else n_cpgs * n_tissues
    mean_ll = float("nan")
    for _ in track(range(iterations), "fitting the fragment-state atlas (EM iterations)"):
        joint = np.log(pi[cell]) + read_state_loglik(theta, cpg, meth, valid, tissue)  # (N, K)
        total = logsumexp(joint, axis=1)
        resp = np.exp(joint - total[:, None]) * weight[:, None]  # the row's reads' share of each state
        mean_ll = float(total @ weight / weight.sum())
        shares = np.stack([np.bincount(cell, weights=resp[:, k], minlength=n_cells) for k in range(n_states)], axis=1)
        pi = (shares + prior) / (shares + prior).sum(axis=1, keepdims=True)
        per_call = resp[read_of]  # (calls, K)
        called = np.stack([np.bincount(where, weights=per_call[:, k], minlength=n_where) for k in range(n_states)], axis=1)
        methylated = np.stack([np.bincount(where, weights=per_call[:, k] * m, minlength=n_where)
                               for k in range(n_states)], axis=1)
        if tissue_prior is None:
            theta = np.clip((methylated + 0.5) / (called + 1.0), *THETA_RANGE)
        else:
            called = called.reshape(n_cpgs, n_tissues, n_states)
            methylated = methylated.reshape(n_cpgs, n_tissues, n_states)
            shared = (methylated.sum(axis=1) + 0.5) / (called.sum(axis=1) + 1.0)  # (C, K)
            theta = np.clip((methylated + tissue_prior * shared[:, None]) / (called + tissue_prior), *THETA_RANGE)
    log.info("fragment-state atlas: %d states, %s emissions, %d reads (%d distinct), %d EM iterations, mean "
             "log-likelihood per read %.4f", n_states,
             "shared" if tissue_prior is None else f"per-tissue (prior {tissue_prior:g} calls)",
             int(weight.sum()), cell.shape[0], iterations, mean_ll)
    return theta, pi.reshape(n_windows, n_tissues, n_states)


def atlas_loglik(theta: np.ndarray, pi: np.ndarray, reads: tuple) -> float:
    """Mean log p(read | its window and tissue) of :func:`split_reads` rows under a fitted atlas
    (weighted by the reads each row stands for): the held-out score that chooses between fits."""
    cell, cpg, meth, valid, weight = reads
    n_tissues, n_states = pi.shape[1], pi.shape[2]
    joint = np.log(pi.reshape(-1, n_states)[cell]) + read_state_loglik(theta, cpg, meth, valid, cell % n_tissues)
    return float(logsumexp(joint, axis=1) @ weight / weight.sum())


def atlas_tissue_loglik(theta: np.ndarray, pi: np.ndarray, reads: tuple) -> np.ndarray:
    """(N, T) log p(read | tissue t) of :func:`split_reads` rows under a fitted atlas, for every tissue."""
    cell, cpg, meth, valid, _ = reads
    n_tissues = pi.shape[1]
    window = cell // n_tissues
    return np.stack([logsumexp(np.log(pi[window, t]) + read_state_loglik(theta, cpg, meth, valid, t), axis=1)
                     for t in range(n_tissues)], axis=1)

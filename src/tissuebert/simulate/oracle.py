"""The Bayes-optimal read classifier and deconvolver: exact likelihoods under the simulator.

For a read's calls inside one window, CpGs group by methylation block; a fragment's CpGs in one
block share one state, drawn independently per block, so

    log p(calls | t) = sum_blocks log sum_s pi[b, t, s] prod_j p(call_j | s)
                       + sum_background log p(call_j)

with p(call | s) the per-CpG methylation probability after non-conversion and sequencing error,
conditioned on a call being made (no-calls and uncovered CpGs are marginalised out). This is the
probability of the observed calls given which CpGs carry a call.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from tissuebert.constants import METH_M, METH_U
from tissuebert.errors import InputFormatError
from tissuebert.simulate.truth import Truth


def oracle_loglik(truth: Truth, cpg_index: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """(R, K) genome-wide 1-based CpG indices (0 = padding) and calls (0 U, 1 M, 2 none)
    -> (R, T) float64 log p(calls | tissue), tissues in ``truth.tissues`` order."""
    cpg_index = np.asarray(cpg_index, dtype=np.int64)
    calls = np.asarray(calls)
    if cpg_index.shape != calls.shape or cpg_index.ndim != 2:
        raise ValueError(f"cpg_index {cpg_index.shape} and calls {calls.shape} must be the same (R, K) shape")
    n_reads, n_tissues = cpg_index.shape[0], len(truth.tissues)
    used = (cpg_index > 0) & ((calls == METH_U) | (calls == METH_M))
    read_of, col = np.nonzero(used)
    j = cpg_index[read_of, col] - 1
    if j.size and (j.max() >= truth.n_cpgs):
        raise InputFormatError(f"CpG index {int(j.max()) + 1} is beyond the simulated genome ({truth.n_cpgs} CpGs)",
                               hint="use the truth of the cohort these reads came from")
    meth = calls[read_of, col] == METH_M
    p_m = truth.observed_meth_prob()[j]  # (N, 3)
    logp = np.log(np.where(meth[:, None], p_m, 1.0 - p_m))  # (N, 3) per call and state
    block = truth.cpg_block[j]
    out = np.zeros((n_reads, n_tissues))
    bg = block < 0
    # background CpGs ignore tissue and state: every column of q is equal, take state 0
    np.add.at(out, read_of[bg], np.broadcast_to(logp[bg, :1], (int(bg.sum()), n_tissues)))
    ins = ~bg
    if ins.any():
        # one group per (read, block): the calls that share a fragment state
        n_blocks = truth.n_blocks
        keys = read_of[ins].astype(np.int64) * n_blocks + block[ins]
        uniq, group = np.unique(keys, return_inverse=True)
        state_ll = np.zeros((uniq.size, 3))
        np.add.at(state_ll, group, logp[ins])
        g_block = uniq % n_blocks
        g_read = uniq // n_blocks
        with np.errstate(divide="ignore"):
            log_pi = np.log(truth.pi[g_block])  # (G, T, 3)
        g_ll = logsumexp(log_pi + state_ll[:, None, :], axis=-1)  # (G, T)
        np.add.at(out, g_read, g_ll)
    return out


def oracle_posterior(loglik: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """(R, T) log-likelihoods -> (R, T) posteriors under ``prior`` (uniform by default)."""
    loglik = np.asarray(loglik, dtype=np.float64)
    log_prior = np.zeros(loglik.shape[1]) if prior is None else np.log(np.asarray(prior, dtype=np.float64))
    joint = loglik + log_prior
    return np.exp(joint - logsumexp(joint, axis=1, keepdims=True))


def oracle_proportions(loglik: np.ndarray, max_iter: int = 1000, tol: float = 1e-8) -> np.ndarray:
    """Maximum-likelihood mixture proportions (T,) of reads with these true log-likelihoods, by EM."""
    loglik = np.asarray(loglik, dtype=np.float64)
    n_reads, n_tissues = loglik.shape
    if n_reads == 0:
        return np.full(n_tissues, 1.0 / n_tissues)
    # scale each read by its best tissue: EM only needs likelihood ratios within a read
    lik = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    props = np.full(n_tissues, 1.0 / n_tissues)
    for _ in range(max_iter):
        weighted = lik * props
        resp = weighted / weighted.sum(axis=1, keepdims=True)
        new = resp.mean(axis=0)
        done = np.abs(new - props).max() < tol
        props = new
        if done:
            break
    return props

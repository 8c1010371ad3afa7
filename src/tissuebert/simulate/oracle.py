"""The Bayes-optimal read classifier and deconvolver: exact likelihoods under the simulator.

For a read's calls inside one window, CpGs group by methylation block; a fragment's CpGs in one
block share one state, drawn independently per block, so

    log p(calls | t) = sum_blocks log sum_s pi[b, t, s] prod_j p(call_j | s)
                       + sum_background log p(call_j)

with p(call | s) the per-CpG methylation probability after non-conversion and sequencing error,
conditioned on a call being made (no-calls and uncovered CpGs are marginalised out). This is the
probability of the observed calls given which CpGs carry a call.

With latent fragment structure (a cell subtype and an allele per fragment, ``Truth.latent``),
block states are independent only given the fragment's latent class c, so

    log p(calls | t) = logsumexp_c [ log w[t, c] + sum_blocks log sum_s pi_c[b, t, s] prod_j p(call_j | s) ]
                       + sum_background log p(call_j)

which is again exact for any subset of a fragment's CpGs (a read clipped to a window).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from tissuebert.constants import METH_M, METH_U
from tissuebert.errors import InputFormatError
from tissuebert.simulate.truth import Truth

# with latent classes, reads are scored in steps of at most this many (CpG slots x tissues x
# classes x states) values: a read has at most as many blocks as CpG slots, so this bounds the
# (groups, T, L, 3) temporaries (64 MB each in float64)
_LATENT_CELLS = 8_000_000


def oracle_loglik(truth: Truth, cpg_index: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """(R, K) genome-wide 1-based CpG indices (0 = padding) and calls (0 U, 1 M, 2 none)
    -> (R, T) float64 log p(calls | tissue), tissues in ``truth.tissues`` order."""
    cpg_index = np.asarray(cpg_index, dtype=np.int64)
    calls = np.asarray(calls)
    if cpg_index.shape != calls.shape or cpg_index.ndim != 2:
        raise ValueError(f"cpg_index {cpg_index.shape} and calls {calls.shape} must be the same (R, K) shape")
    if not truth.has_latent:
        return _loglik_independent(truth, cpg_index, calls)
    class_w, class_pi = truth.latent()
    p_obs = truth.observed_meth_prob()
    per_read = max(1, cpg_index.shape[1]) * class_pi.shape[1] * class_pi.shape[2] * 3
    step = max(1, _LATENT_CELLS // per_read)
    parts = [_loglik_latent(truth, p_obs, class_w, class_pi, cpg_index[lo:lo + step], calls[lo:lo + step])
             for lo in range(0, cpg_index.shape[0], step)]
    return np.concatenate(parts) if parts else np.zeros((0, len(truth.tissues)))


def _call_logp(truth: Truth, p_obs: np.ndarray, cpg_index: np.ndarray, calls: np.ndarray):
    """Called CpGs of the reads: (read, 0-based CpG, (N, 3) log p(call | state)); ``p_obs`` is
    ``truth.observed_meth_prob()``."""
    used = (cpg_index > 0) & ((calls == METH_U) | (calls == METH_M))
    read_of, col = np.nonzero(used)
    j = cpg_index[read_of, col] - 1
    if j.size and (j.max() >= truth.n_cpgs):
        raise InputFormatError(f"CpG index {int(j.max()) + 1} is beyond the simulated genome ({truth.n_cpgs} CpGs)",
                               hint="use the truth of the cohort these reads came from")
    meth = calls[read_of, col] == METH_M
    p_m = p_obs[j]  # (N, 3)
    return read_of, j, np.log(np.where(meth[:, None], p_m, 1.0 - p_m))


def _loglik_latent(truth: Truth, p_obs: np.ndarray, class_w: np.ndarray, class_pi: np.ndarray,
                   cpg_index: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """Exact log-likelihoods with latent classes: per (read, block) group and class c,
    log sum_s pi_c[b, t, s] prod_j p(call_j | s); summed over a read's groups per class, then
    logsumexp over the classes weighted by w[t, c]. Background CpGs ignore tissue, state and class."""
    n_reads, n_tissues, n_classes = cpg_index.shape[0], len(truth.tissues), class_w.shape[1]
    read_of, j, logp = _call_logp(truth, p_obs, cpg_index, calls)
    block = truth.cpg_block[j]
    bg = block < 0
    background = np.zeros(n_reads)
    np.add.at(background, read_of[bg], logp[bg, 0])
    by_class = np.zeros((n_reads, n_tissues, n_classes))
    ins = ~bg
    if ins.any():
        keys = read_of[ins].astype(np.int64) * truth.n_blocks + block[ins]
        uniq, group = np.unique(keys, return_inverse=True)
        state_ll = np.zeros((uniq.size, 3))
        np.add.at(state_ll, group, logp[ins])
        with np.errstate(divide="ignore"):
            log_pi = np.log(class_pi[uniq % truth.n_blocks])  # (G, T, L, 3)
        g_ll = logsumexp(log_pi + state_ll[:, None, None, :], axis=-1)  # (G, T, L)
        np.add.at(by_class, uniq // truth.n_blocks, g_ll)
    with np.errstate(divide="ignore"):
        log_w = np.log(class_w)  # (T, L)
    return logsumexp(by_class + log_w[None], axis=-1) + background[:, None]


def _loglik_independent(truth: Truth, cpg_index: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """Exact log-likelihoods when every block's state is drawn independently (no latent class)."""
    n_reads, n_tissues = cpg_index.shape[0], len(truth.tissues)
    read_of, j, logp = _call_logp(truth, truth.observed_meth_prob(), cpg_index, calls)  # logp (N, 3)
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

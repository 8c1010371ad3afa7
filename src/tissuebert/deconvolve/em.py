"""Maximum-likelihood mixture proportions over per-read likelihoods (EM), with bootstrap intervals.

A cfDNA sample is modelled as a mixture: read r comes from tissue t with probability pi_t and
then has likelihood L[r, t] = p(read r | tissue t). The log-likelihood of the proportions is

    l(pi) = sum_r w_r log(sum_t pi_t L[r, t])          (w_r = multiplicity of read r)

and EM maximises it with the fixed-point map

    pi_t <- (1 / sum w) * sum_r w_r pi_t L[r, t] / sum_t' pi_t' L[r, t'].

The map is scale-invariant per read, so L only has to be known up to a per-read constant: this
is what lets a classifier's posterior divided by its training prior stand in for L
(:func:`tissuebert.inference.likelihood.likelihoods_from_logits`). EM is accelerated with SQUAREM
(Varadhan & Roland 2008, the SqS3 step length) because close tissues (blood subtypes) make plain
EM crawl; every accepted step is checked to not lower l(pi), so the result is the same maximum
plain EM would reach. docs/deconvolution.md has the derivation.
"""

from __future__ import annotations

import numpy as np

from tissuebert.deconvolve.bootstrap import bootstrap, interval_around, multinomial_draw

__all__ = ["bootstrap_proportions", "em_proportions", "interval_around", "mixture_loglik", "scaled_likelihoods"]

# Rows per chunk of the (R, T) likelihood matrix: bounds the float64 temporaries to ~50 MB at T=22.
_CHUNK = 1 << 18


def scaled_likelihoods(loglik: np.ndarray) -> np.ndarray:
    """log L (R, T) -> L / max_t L per row, float32 (the EM only needs L up to a per-read factor).

    float32 halves the memory of the largest array; every product is accumulated in float64.
    """
    loglik = np.asarray(loglik)
    if loglik.ndim != 2 or loglik.shape[1] < 1:
        raise ValueError(f"loglik must be (R, T), got shape {loglik.shape}")
    if not np.all(np.isfinite(loglik.max(axis=1))):
        raise ValueError("every read needs a finite log-likelihood for at least one tissue")
    out = np.empty(loglik.shape, dtype=np.float32)
    for start in range(0, loglik.shape[0], _CHUNK):
        block = np.asarray(loglik[start:start + _CHUNK], dtype=np.float64)
        out[start:start + _CHUNK] = np.exp(block - block.max(axis=1, keepdims=True))
    return out


class _Mixture:
    """EM map and log-likelihood over scaled likelihoods L (R, T) and read weights w (R,)."""

    def __init__(self, lik: np.ndarray, weights: np.ndarray) -> None:
        keep = weights > 0
        if not keep.all():  # reads a bootstrap replicate or mixture did not draw cost nothing
            lik, weights = lik[keep], weights[keep]
        # small problems: convert to float64 once instead of chunk by chunk in every step
        self.lik = lik.astype(np.float64) if lik.size <= _CHUNK * 16 else lik
        self.weights = weights
        self.total = float(weights.sum())

    def step(self, pi: np.ndarray) -> tuple[np.ndarray, float]:
        """One EM update; also returns l(pi) (computed from the same pass, for free)."""
        acc = np.zeros_like(pi)
        loglik = 0.0
        for start in range(0, self.lik.shape[0], _CHUNK):
            lik = np.asarray(self.lik[start:start + _CHUNK], dtype=np.float64)  # (C, T)
            w = self.weights[start:start + _CHUNK]
            mix = lik @ pi  # (C,) sum_t pi_t L[r, t]
            acc += (w / mix) @ lik
            loglik += float(w @ np.log(mix))
            del lik, mix  # free this chunk before the next is converted: one float64 chunk at a time
        new = pi * acc / self.total
        return new / new.sum(), loglik

    def loglik(self, pi: np.ndarray) -> float:
        return self.step(pi)[1]


def _project(pi: np.ndarray) -> np.ndarray:
    pi = np.clip(pi, 0.0, None)
    total = pi.sum()
    return pi / total if total > 0 else np.full_like(pi, 1.0 / pi.size)


def _run_em(mix: _Mixture, pi: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, int]:
    """SQUAREM-accelerated EM from ``pi``; stops when no proportion moves by more than ``tol``."""
    n_iter = 0
    while n_iter < max_iter:
        pi1, ll0 = mix.step(pi)
        pi2, _ = mix.step(pi1)
        n_iter += 2
        r = pi1 - pi
        v = pi2 - pi1 - r
        if np.max(np.abs(r)) <= tol:
            return pi1, n_iter
        v_norm = np.sqrt(v @ v)
        candidate = pi2
        if v_norm > 0:
            alpha = min(-np.sqrt(r @ r) / v_norm, -1.0)  # SqS3; alpha = -1 is two plain EM steps
            # never step onto the boundary: EM cannot move a proportion off exactly zero again,
            # so a component may shrink at most 1000-fold per accelerated step
            extrapolated = _project(np.maximum(pi - 2 * alpha * r + alpha * alpha * v, pi * 1e-3))
            stabilised, ll_ext = mix.step(extrapolated)
            n_iter += 1
            # keep the extrapolation only if it did not lower the likelihood (EM's monotonicity)
            if np.isfinite(ll_ext) and ll_ext >= ll0:
                candidate = stabilised
        if np.max(np.abs(candidate - pi)) <= tol:
            return candidate, n_iter
        pi = candidate
    return pi, n_iter


def _check_weights(weights: np.ndarray | None, n_reads: int) -> np.ndarray:
    if weights is None:
        return np.ones(n_reads, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_reads,):
        raise ValueError(f"weights must be ({n_reads},), got {w.shape}")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and >= 0")
    if w.sum() <= 0:
        raise ValueError("weights sum to zero: no reads to deconvolve")
    return w


def em_proportions(loglik: np.ndarray, *, weights: np.ndarray | None = None, max_iter: int = 1000,
                   tol: float = 1e-8, init: np.ndarray | None = None, lik: np.ndarray | None = None) -> np.ndarray:
    """Maximum-likelihood proportions (T,) of a mixture given per-read log-likelihoods (R, T).

    ``weights`` are read multiplicities (a collapsed read counted ``k`` times has weight ``k``).
    ``lik`` may pass :func:`scaled_likelihoods` of ``loglik`` already computed (the bootstrap
    reuses it); ``init`` is the starting point (uniform by default).
    """
    if lik is None:
        lik = scaled_likelihoods(loglik)
    n_reads, n_tissues = lik.shape
    if n_reads == 0:
        raise ValueError("no reads to deconvolve")
    w = _check_weights(weights, n_reads)
    pi = np.full(n_tissues, 1.0 / n_tissues) if init is None else _project(np.asarray(init, np.float64))
    # a warm start exactly on the boundary could never leave it (EM keeps zeros at zero)
    pi = _project(np.maximum(pi, 1e-6))
    return _run_em(_Mixture(lik, w), pi, max_iter, tol)[0]


def mixture_loglik(loglik: np.ndarray, proportions: np.ndarray, *, weights: np.ndarray | None = None) -> float:
    """l(pi) up to the per-read constants dropped by :func:`scaled_likelihoods` (for comparisons)."""
    lik = scaled_likelihoods(loglik)
    return _Mixture(lik, _check_weights(weights, lik.shape[0])).loglik(np.asarray(proportions, np.float64))


def bootstrap_proportions(loglik: np.ndarray | None, *, weights: np.ndarray | None = None, n_boot: int = 200,
                          ci_level: float = 0.95, seed: int = 0, max_iter: int = 1000, tol: float = 1e-6,
                          estimate: np.ndarray | None = None, lik: np.ndarray | None = None,
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap over reads: (low (T,), high (T,), replicates (n_boot, T)); the interval is
    :func:`interval_around` the ``estimate`` when one is given, plain percentiles otherwise.

    The EM over :func:`deconvolve.bootstrap.bootstrap` with a multinomial redraw of the reads'
    multiplicities. Replicates start from ``estimate`` (the point estimate), so they converge in few steps.
    """
    if lik is None:
        lik = scaled_likelihoods(loglik)
    w = _check_weights(weights, lik.shape[0])

    def refit(counts: np.ndarray) -> np.ndarray:
        return em_proportions(None, weights=counts, lik=lik, init=estimate, max_iter=max_iter, tol=tol)

    return bootstrap(refit, multinomial_draw(w), n_out=lik.shape[1], n_boot=n_boot, ci_level=ci_level, seed=seed,
                     estimate=estimate)

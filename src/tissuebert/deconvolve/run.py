"""Reads of one sample -> tissue proportions with intervals, by the model (EM and two simple
read-level estimators) or by the reference baselines (UXM-style, Moss-style NNLS).

Reads come as (window index into the checkpoint's panel, packed calls, multiplicity), the same
arrays a store sample or ``prepare.read_sample_windows(collapse=True)`` gives, so each unique
(window, pattern) is scored by the model once and weighted by its count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import softmax

from tissuebert.constants import CKPT
from tissuebert.deconvolve.baselines import MarkerReference, marker_counts, nnls_proportions, uxm_proportions
from tissuebert.deconvolve.em import em_proportions, interval_around, scaled_likelihoods
from tissuebert.inference.checkpoint import Checkpoint, checkpoint_config
from tissuebert.inference.likelihood import likelihoods_from_logits, read_loglik
from tissuebert.inference.logreg import LogRegFit
from tissuebert.inference.predict import score_rows
from tissuebert.store.panel import Panel

MODEL_METHODS = ("em", "mean-posterior", "argmax")
LOGREG_METHODS = ("logreg",)  # EM over the simple rival's likelihoods, fit on a store's training split
REFERENCE_METHODS = ("uxm", "nnls")
METHODS = MODEL_METHODS + LOGREG_METHODS + REFERENCE_METHODS


@dataclass
class DeconvResult:
    """Proportions of one sample by one method."""

    tissues: list[str]
    method: str
    proportions: np.ndarray  # (T,) sums to 1
    ci_low: np.ndarray  # (T,) NaN when no bootstrap was run
    ci_high: np.ndarray
    reads_used: np.ndarray  # (T,) reads attributed to each tissue (expected counts for em)
    n_reads: int  # reads (with multiplicity) the estimate is based on
    ci_level: float = 0.95
    warnings: list[str] = field(default_factory=list)  # deconvolve.warnings.result_warnings

    def rows(self) -> list[dict[str, Any]]:
        return [{"method": self.method, "tissue": t, "proportion": float(self.proportions[i]),
                 "ci_low": float(self.ci_low[i]), "ci_high": float(self.ci_high[i]),
                 "reads_used": float(self.reads_used[i])} for i, t in enumerate(self.tissues)]


def _weights(counts: np.ndarray | None, n_reads: int) -> np.ndarray:
    if counts is None:
        return np.ones(n_reads)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (n_reads,):
        raise ValueError(f"counts must be ({n_reads},), got {counts.shape}")
    return counts


def _percentile_ci(estimator: Callable[[np.ndarray], np.ndarray], weights: np.ndarray, n_boot: int,
                   ci_level: float, seed: int, n_tissues: int, estimate: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap over reads (multinomial redraw of the multiplicities), interval around the point fit."""
    if n_boot <= 0:
        return np.full(n_tissues, np.nan), np.full(n_tissues, np.nan)
    rng = np.random.default_rng(seed)
    n_total = int(round(weights.sum()))
    probs = weights / weights.sum()
    reps = np.stack([estimator(rng.multinomial(n_total, probs).astype(np.float64)) for _ in range(n_boot)])
    return interval_around(estimate, reps, ci_level)


def proportions_from_loglik(loglik: np.ndarray, counts: np.ndarray | None, tissues: list[str], *,
                            method: str = "em", n_boot: int = 0, ci_level: float = 0.95, seed: int = 0,
                            max_iter: int = 1000, tol: float = 1e-8) -> DeconvResult:
    """Model-based methods on per-read log-likelihoods (R, T) (prior already divided out).

    - ``em``: maximum-likelihood mixture proportions.
    - ``mean-posterior``: average per-read posterior under a uniform prior.
    - ``argmax``: share of reads whose most likely tissue is t.
    """
    weights = _weights(counts, loglik.shape[0])
    n_tissues = len(tissues)
    if method == "em":
        lik = scaled_likelihoods(loglik)
        est = em_proportions(None, weights=weights, lik=lik, max_iter=max_iter, tol=tol)

        def estimator(w: np.ndarray) -> np.ndarray:
            # bootstrap replicates start at the estimate and need only interval precision
            return em_proportions(None, weights=w, lik=lik, init=est, max_iter=max_iter, tol=1e-6)

        resp = lik.astype(np.float64) * est
        resp /= resp.sum(axis=1, keepdims=True)
        used = weights @ resp
    elif method == "mean-posterior":
        post = softmax(loglik, axis=1)

        def estimator(w: np.ndarray) -> np.ndarray:
            return (w @ post) / w.sum()

        est = estimator(weights)
        used = weights @ post
    elif method == "argmax":
        call = np.asarray(loglik).argmax(axis=1)

        def estimator(w: np.ndarray) -> np.ndarray:
            return np.bincount(call, weights=w, minlength=n_tissues) / w.sum()

        est = estimator(weights)
        used = np.bincount(call, weights=weights, minlength=n_tissues)
    else:
        raise ValueError(f"unknown model method {method!r}; choose one of {', '.join(MODEL_METHODS)}")
    low, high = _percentile_ci(estimator, weights, n_boot, ci_level, seed, n_tissues, est)
    return DeconvResult(tissues, method, est, low, high, used, int(round(weights.sum())), ci_level)


def reference_proportions(reference: MarkerReference, panel: Panel, window_idx: np.ndarray, calls: np.ndarray,
                          counts: np.ndarray | None, *, method: str, n_boot: int = 0, ci_level: float = 0.95,
                          seed: int = 0) -> DeconvResult:
    """``uxm`` or ``nnls`` from the reads' per-marker counts against a store-built reference."""
    fit = {"uxm": uxm_proportions, "nnls": nnls_proportions}.get(method)
    if fit is None:
        raise ValueError(f"unknown reference method {method!r}; choose one of {', '.join(REFERENCE_METHODS)}")
    weights = _weights(counts, int(np.asarray(window_idx).shape[0]))

    def estimator(w: np.ndarray) -> np.ndarray:
        keep = w > 0
        return fit(reference, marker_counts(panel, window_idx[keep], calls[keep], w[keep]))

    est = estimator(weights)
    low, high = _percentile_ci(estimator, weights, n_boot, ci_level, seed, len(reference.tissues), est)
    n_reads = int(round(weights.sum()))
    return DeconvResult(list(reference.tissues), method, est, low, high, est * n_reads, n_reads, ci_level)


def score_reads(model_state: dict[str, Any], panel: Panel, window_idx: np.ndarray, calls: np.ndarray, *,
                temperature: float | None = None, batch_size: int | None = None, device: str | None = None,
                precision: str = "auto", model=None) -> tuple[np.ndarray, np.ndarray]:
    """Model logits (R, T) and log-likelihoods (R, T) (training prior divided out; the checkpoint's
    calibration, or ``temperature`` instead when given)."""
    checkpoint = Checkpoint(model_state)
    checkpoint.check_compatible(tissues=checkpoint.tissues, panel_hash=panel.panel_hash(),
                                against="panel of the input")
    logits = score_rows(checkpoint, panel, window_idx, calls, batch_size=batch_size, device=device,
                        precision=precision, model=model)
    return logits, read_loglik(model_state, logits, temperature)


def logreg_loglik(fit: LogRegFit, panel: Panel, window_idx: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """(R, T) float32 log-likelihoods of the reads under a fitted logistic regression: its posterior
    with the class prior of the sampler it was trained under divided out, as for the model."""
    logits = fit.logits(panel, np.asarray(window_idx, np.int64), calls)
    return likelihoods_from_logits(logits, fit.class_prior, 1.0).astype(np.float32)


def deconvolve_reads(model_state: dict[str, Any], window_idx: np.ndarray, calls: np.ndarray,
                     counts: np.ndarray | None = None, *, panel: Panel, method: str = "em",
                     temperature: float | None = None, n_boot: int | None = None, ci_level: float | None = None,
                     seed: int = 0, batch_size: int | None = None, device: str | None = None,
                     precision: str = "auto") -> DeconvResult:
    """Proportions of one sample's reads by a model method (em, mean-posterior, argmax).

    ``panel`` is the panel the reads' window indices refer to (the store's, or the one rebuilt from
    the checkpoint's window coordinates); it must hash to the checkpoint's panel. Temperature,
    bootstrap size and interval level default to the checkpoint's (calibrated T, eval config).
    """
    config = checkpoint_config(model_state)
    _, loglik = score_reads(model_state, panel, window_idx, calls, temperature=temperature,
                            batch_size=batch_size, device=device, precision=precision)
    return proportions_from_loglik(loglik, counts, list(model_state[CKPT.TISSUES]), method=method,
                                   n_boot=config.eval.bootstrap if n_boot is None else n_boot,
                                   ci_level=config.eval.ci_level if ci_level is None else ci_level, seed=seed,
                                   max_iter=config.eval.em_max_iter, tol=config.eval.em_tol)

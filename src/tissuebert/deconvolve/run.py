"""Reads of one sample -> tissue proportions with intervals, by the model (EM and two simple
read-level estimators) or by the reference baselines (UXM-style, Moss-style NNLS).

Reads come as (window index into the checkpoint's panel, packed calls, multiplicity), the same
arrays a store sample or ``prepare.read_sample_windows(collapse=True)`` gives, so each unique
(window, pattern) is scored by the model once and weighted by its count. The methods themselves
are the table of deconvolve/methods.py; this module scores reads and keeps the one-sample entry points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tissuebert.constants import CKPT
from tissuebert.deconvolve.baselines import MarkerReference
from tissuebert.deconvolve.methods import NEEDS, REGISTRY, Evidence, method_names, run_method
from tissuebert.deconvolve.result import DeconvResult
from tissuebert.inference.checkpoint import Checkpoint, checkpoint_config
from tissuebert.inference.likelihood import likelihoods_from_logits, read_loglik
from tissuebert.inference.logreg import LogRegFit
from tissuebert.inference.predict import score_rows
from tissuebert.store.panel import Panel

# The names by evidence kind, as the table (deconvolve/methods.py) has them when this is imported.
MODEL_METHODS = method_names(NEEDS.MODEL)
LOGREG_METHODS = method_names(NEEDS.LOGREG)  # EM over the simple rival's likelihoods, fit on a store's training split
REFERENCE_METHODS = method_names(NEEDS.MARKERS)
METHODS = method_names()

__all__ = ["METHODS", "DeconvResult", "deconvolve_reads", "logreg_loglik", "proportions_from_loglik",
           "reference_proportions", "score_reads"]


def _weights(counts: np.ndarray | None, n_reads: int) -> np.ndarray:
    if counts is None:
        return np.ones(n_reads)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (n_reads,):
        raise ValueError(f"counts must be ({n_reads},), got {counts.shape}")
    return counts


def proportions_from_loglik(loglik: np.ndarray, counts: np.ndarray | None, tissues: list[str], *,
                            method: str = "em", n_boot: int = 0, ci_level: float = 0.95, seed: int = 0,
                            max_iter: int = 1000, tol: float = 1e-8) -> DeconvResult:
    """A model method of the table on per-read log-likelihoods (R, T) (prior already divided out):
    ``em`` (maximum likelihood), ``mean-posterior``, ``argmax`` (deconvolve/methods.py)."""
    entry = REGISTRY.get(method)
    if entry is None or entry.needs != NEEDS.MODEL:
        raise ValueError(f"unknown model method {method!r}; choose one of {', '.join(method_names(NEEDS.MODEL))}")
    weights = _weights(counts, loglik.shape[0])
    return run_method(entry, Evidence(tissues, loglik=loglik), weights, n_boot=n_boot, ci_level=ci_level, seed=seed,
                      max_iter=max_iter, tol=tol)


def reference_proportions(reference: MarkerReference, panel: Panel, window_idx: np.ndarray, calls: np.ndarray,
                          counts: np.ndarray | None, *, method: str, n_boot: int = 0, ci_level: float = 0.95,
                          seed: int = 0) -> DeconvResult:
    """``uxm`` or ``nnls`` from the reads' per-marker counts against a store-built reference."""
    entry = REGISTRY.get(method)
    if entry is None or entry.needs != NEEDS.MARKERS:
        raise ValueError(f"unknown reference method {method!r}; choose one of "
                         f"{', '.join(method_names(NEEDS.MARKERS))}")
    window_idx = np.asarray(window_idx)
    evidence = Evidence(reference.tissues, reads=(panel, window_idx, calls), reference=reference)
    return run_method(entry, evidence, _weights(counts, int(window_idx.shape[0])), n_boot=n_boot,
                      ci_level=ci_level, seed=seed)


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

"""Logits -> calibrated posteriors -> per-read likelihoods: what a checkpoint's calibration means.

A classifier trained under a class distribution p_train gives posteriors p(t | read); EM and the
per-sample calls of evaluate need likelihoods p(read | t), which are the posteriors with p_train
divided out (Bayes). ``tissuebert calibrate`` stores a temperature and, for deconvolution, a
per-tissue bias in the checkpoint; :func:`calibrated` applies them. Evaluate, predict, deconvolve
and the benchmark all go through :func:`read_loglik`, so a read gets the same likelihood in each.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tissuebert.constants import CKPT


def class_prior(state: dict[str, Any]) -> np.ndarray:
    """The training sampler's class distribution (uniform when the checkpoint does not say)."""
    n_tissues = len(state[CKPT.TISSUES])
    prior = state.get(CKPT.CLASS_PRIOR)
    if prior is None:
        return np.full(n_tissues, 1.0 / n_tissues)
    prior = np.asarray(prior, dtype=np.float64)
    return prior / prior.sum()


def temperature_of(state: dict[str, Any]) -> float:
    """The plain temperature ``calibrate`` fitted (1 for an uncalibrated checkpoint)."""
    return float(state.get(CKPT.TEMPERATURE) or 1.0)


def calibrated(state: dict[str, Any], logits: np.ndarray) -> tuple[np.ndarray, float, np.ndarray | None]:
    """(logits', T, bias): the checkpoint's calibration applied so that softmax(logits' / T) is the
    calibrated posterior. With the bias-corrected calibration of ``tissuebert calibrate``
    (CKPT.CLASS_BIAS: T' and a per-tissue bias b fitted on held-out reads) logits' = logits + T' b,
    which removes the model's per-tissue lean from every decision (argmax, per-sample sums, EM);
    otherwise the plain temperature (1 for an uncalibrated checkpoint) and no bias."""
    corrected = state.get(CKPT.CLASS_BIAS)
    if not corrected:
        return logits, temperature_of(state), None
    temp = float(corrected["temperature"])
    bias = np.asarray(corrected["bias"], dtype=np.float64)
    return (logits + temp * bias[None, :]).astype(logits.dtype), temp, bias


def likelihoods_from_logits(logits: np.ndarray, class_prior: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(R, T) logits -> (R, T) float64 log-likelihoods log p(read | tissue), up to a per-read constant.

    Bayes: p(t | read) = p(read | t) p_train(t) / p(read), so p(read | t) ∝ p(t | read) / p_train(t),
    where p_train is the class distribution the classifier was trained under (its sampler's).
    """
    logits = np.asarray(logits, dtype=np.float64)
    prior = np.asarray(class_prior, dtype=np.float64)
    if logits.ndim != 2 or prior.shape != (logits.shape[1],):
        raise ValueError(f"logits must be (R, T) and class_prior (T,); got {logits.shape} and {prior.shape}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if np.any(prior <= 0):
        raise ValueError("class_prior must be positive for every tissue")
    scaled = logits / temperature
    log_post = scaled - _logsumexp_rows(scaled)[:, None]  # (R, T) log softmax
    return log_post - np.log(prior / prior.sum())[None, :]


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


def read_loglik(state: dict[str, Any], logits: np.ndarray, temperature: float | None = None) -> np.ndarray:
    """(R, T) float32 log-likelihoods of reads from the model's raw logits: the checkpoint's
    calibration (bias-corrected when calibrate wrote one) or, when given, a plain ``temperature``
    instead; then the training prior divided out."""
    if temperature is None:
        logits, temperature, _ = calibrated(state, logits)
    # float32 halves the largest array; EM rescales each row in float64 before using it
    return likelihoods_from_logits(logits, class_prior(state), temperature).astype(np.float32)

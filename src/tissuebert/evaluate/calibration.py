"""Probability calibration: expected calibration error, reliability bins, temperature scaling."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax


def softmax_probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(R, T) logits -> (R, T) float64 probabilities at ``temperature``."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true class at ``temperature``."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(targets)), targets].mean())


def reliability_bins(probs: np.ndarray, targets: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-width confidence bins over the top-class probability: count, confidence, accuracy."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    # bin b holds confidences in (b/n, (b+1)/n]; a confidence of exactly 0 joins bin 0
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"edges": np.linspace(0.0, 1.0, n_bins + 1), "count": count,
                "confidence": np.where(count > 0, conf_sum / count, np.nan),
                "accuracy": np.where(count > 0, acc_sum / count, np.nan)}


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, n_bins: int = 15) -> float:
    """ECE = sum_b (n_b / N) |accuracy_b - confidence_b| over equal-width confidence bins."""
    bins = reliability_bins(probs, targets, n_bins)
    keep = bins["count"] > 0
    weights = bins["count"][keep] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"][keep] - bins["confidence"][keep])))


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature T minimising the NLL of ``targets`` under softmax(logits / T).

    The NLL is convex in beta = 1/T (a log-sum-exp minus a linear term), so a bounded scalar
    search over beta finds the global minimum. T = 1 is kept whenever the search does not beat
    it, which guarantees calibration never increases the NLL on the data it was fitted on.
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if logits.shape[0] == 0:
        raise ValueError("no reads to fit a temperature on")
    res = minimize_scalar(lambda beta: nll(logits, targets, 1.0 / beta), bounds=(1e-3, 100.0),
                          method="bounded", options={"xatol": 1e-6})
    best_t = 1.0 / float(res.x)
    return best_t if nll(logits, targets, best_t) < nll(logits, targets, 1.0) else 1.0


def fit_bias_corrected(logits: np.ndarray, targets: np.ndarray, n_classes: int) -> tuple[float, np.ndarray]:
    """Bias-corrected temperature scaling: (T, b) minimising the tissue-balanced NLL of
    softmax(logits / T + b), b (C,) with mean 0.

    A temperature alone cannot remove a class the model leans to on reads that carry no
    information; over the ~100,000 reads of a sample such a lean adds up and EM moves mass to
    that class. A per-class bias fitted on held-out reads removes it (Alexandari, Kundaje and
    Shrikumar 2020: maximum likelihood label-shift estimation needs exactly this calibration).
    Reads are weighted so that each tissue counts equally, the uniform class prior the
    deconvolution divides out. The objective is convex in (1/T, b); L-BFGS from (1, 0).
    """
    from scipy.optimize import minimize

    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if logits.shape[0] == 0:
        raise ValueError("no reads to fit a calibration on")
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    weights = 1.0 / counts[targets]
    weights /= weights.sum()
    rows = np.arange(targets.shape[0])

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        beta, bias = params[0], params[1:]
        z = beta * logits + bias  # (R, C)
        z = z - z.max(axis=1, keepdims=True)
        probs = np.exp(z)
        norm = probs.sum(axis=1, keepdims=True)
        probs /= norm
        loss = float(-(weights * (z[rows, targets] - np.log(norm[:, 0]))).sum())
        resid = probs.copy()
        resid[rows, targets] -= 1.0
        resid *= weights[:, None]
        return loss, np.concatenate([[float((resid * logits).sum())], resid.sum(axis=0)])

    start = np.concatenate([[1.0], np.zeros(n_classes)])
    res = minimize(objective, start, jac=True, method="L-BFGS-B",
                   bounds=[(1e-3, 100.0)] + [(None, None)] * n_classes)
    beta, bias = float(res.x[0]), res.x[1:] - res.x[1:].mean()
    if objective(np.concatenate([[beta], bias]))[0] >= objective(start)[0]:
        return 1.0, np.zeros(n_classes)  # never worse than the raw logits on the data it was fitted on
    return 1.0 / beta, bias

"""Accuracy of estimated proportions against the truth, and limits of detection."""

from __future__ import annotations

import numpy as np


def accuracy_metrics(estimates: np.ndarray, truth: np.ndarray, tissues: list[str]) -> dict:
    """(N, T) estimates vs (N, T) truths over N mixtures.

    mae / rmse: over every (mixture, tissue) entry; pearson_r: of the flattened entries;
    bias: per tissue, mean(estimate - truth); fp_mass: mean over mixtures of the estimated
    proportion given to tissues absent from the mixture.
    """
    diff = estimates - truth
    flat_e, flat_t = estimates.ravel(), truth.ravel()
    r = float(np.corrcoef(flat_e, flat_t)[0, 1]) if flat_e.std() > 0 and flat_t.std() > 0 else float("nan")
    return {"n_mixtures": int(estimates.shape[0]), "mae": float(np.abs(diff).mean()),
            "rmse": float(np.sqrt((diff ** 2).mean())), "pearson_r": r,
            "bias": {t: float(diff[:, i].mean()) for i, t in enumerate(tissues)},
            "fp_mass": float(np.where(truth == 0, estimates, 0.0).sum(axis=1).mean())}


def limit_of_detection(levels: np.ndarray, estimates: np.ndarray, *, blank_quantile: float = 0.95,
                       detect_rate: float = 0.95) -> dict:
    """Lowest spike-in level whose estimates exceed the ``blank_quantile`` of the blanks (level 0)
    in at least ``detect_rate`` of its replicates; ``lod`` is None when no level qualifies.

    ``levels`` (N,) and ``estimates`` (N,) are the spiked tissue's true level and estimate per
    replicate mixture of one series.
    """
    blanks = estimates[levels == 0]
    if blanks.size == 0:
        raise ValueError("a spike-in series needs level-0 blanks")
    threshold = float(np.quantile(blanks, blank_quantile))
    rates = {}
    lod = None
    for level in np.unique(levels[levels > 0]):
        rate = float(np.mean(estimates[levels == level] > threshold))
        rates[float(level)] = rate
        if lod is None and rate >= detect_rate:
            lod = float(level)
    return {"lod": lod, "blank_threshold": threshold, "detection_rate": rates}

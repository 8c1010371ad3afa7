"""Benchmark metrics on hand-made estimates."""

from __future__ import annotations

import numpy as np

from tissuebert.benchmark.metrics import accuracy_metrics, limit_of_detection


def test_accuracy_metrics_by_hand():
    truth = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    est = np.array([[0.4, 0.5, 0.1], [0.8, 0.1, 0.1]])
    m = accuracy_metrics(est, truth, ["a", "b", "c"])
    assert np.isclose(m["mae"], (0.1 + 0 + 0.1 + 0.2 + 0.1 + 0.1) / 6)
    assert np.isclose(m["rmse"], np.sqrt((0.01 + 0 + 0.01 + 0.04 + 0.01 + 0.01) / 6))
    assert np.isclose(m["bias"]["a"], -0.15) and np.isclose(m["bias"]["c"], 0.1)
    assert np.isclose(m["fp_mass"], (0.1 + 0.2) / 2)  # c in the first; b and c in the second
    assert np.isclose(m["pearson_r"], np.corrcoef(est.ravel(), truth.ravel())[0, 1])


def test_limit_of_detection_by_hand():
    # blanks 0..0.009 (95th percentile 0.00855); at 1% 9 of 10 replicates exceed it (90% < 95%),
    # at 2% all do -> LoD 2%
    levels = np.repeat([0.0, 0.01, 0.02], 10)
    est = np.concatenate([np.arange(10) * 0.001, [0.0] + [0.012] * 9, np.full(10, 0.02)])
    lod = limit_of_detection(levels, est)
    assert np.isclose(lod["blank_threshold"], 0.00855)
    assert lod["detection_rate"] == {0.01: 0.9, 0.02: 1.0}
    assert lod["lod"] == 0.02
    assert limit_of_detection(levels[:20], est[:20])["lod"] is None

"""Benchmark metrics on hand-made estimates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

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


def test_accuracy_metrics_counts_mixtures_not_tissues():
    truth = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])  # 2 mixtures of 3 tissues
    assert accuracy_metrics(truth + 0.01, truth, ["a", "b", "c"])["n_mixtures"] == 2


def test_a_constant_truth_gives_no_correlation_and_no_warning():
    # every mixture the same truth vector entry: r is undefined; numpy would warn dividing by 0
    truth = np.full((2, 2), 0.5)
    est = np.array([[0.4, 0.6], [0.7, 0.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = accuracy_metrics(est, truth, ["a", "b"])
    assert np.isnan(m["pearson_r"]) and np.isclose(m["mae"], 0.15)


def test_an_estimate_equal_to_the_blank_threshold_is_not_a_detection():
    levels = np.repeat([0.0, 0.01], 4)
    est = np.zeros(8)  # blanks all 0 -> threshold 0; the spiked replicates only reach it
    lod = limit_of_detection(levels, est)
    assert lod["blank_threshold"] == 0.0
    assert lod["detection_rate"] == {0.01: 0.0} and lod["lod"] is None


def test_a_series_without_blanks_is_refused():
    with pytest.raises(ValueError, match="needs level-0 blanks"):
        limit_of_detection(np.array([0.01, 0.02]), np.array([0.01, 0.02]))


def test_constant_estimates_give_no_correlation_and_no_warning():
    # the estimates are the constant side here (the test above holds the truth constant)
    truth = np.array([[0.2, 0.8], [0.6, 0.4]])
    est = np.full((2, 2), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = accuracy_metrics(est, truth, ["a", "b"])
    assert np.isnan(m["pearson_r"]) and np.isclose(m["mae"], 0.2)


def test_a_detection_rate_exactly_at_the_target_is_the_limit():
    # 20 replicates at 0.01, 19 above the blanks' threshold: 19 / 20 = 0.95 = detect_rate
    levels = np.repeat([0.0, 0.01, 0.02], 20)
    est = np.concatenate([np.linspace(0.0, 0.001, 20), np.r_[np.full(19, 0.01), 0.0], np.full(20, 0.02)])
    lod = limit_of_detection(levels, est)
    assert lod["detection_rate"][0.01] == 0.95 and lod["lod"] == 0.01

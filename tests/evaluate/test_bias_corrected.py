"""Bias-corrected calibration recovers a known per-class lean and scale from scored reads."""

from __future__ import annotations

import numpy as np

from tissuebert.evaluate.calibration import fit_bias_corrected


def test_recovers_the_scale_and_lean_of_a_known_model():
    """Logits = 2 x the true log-posterior + a lean (+0.5 on class 1): the fit gives T = 2 and
    b = -lean (mean 0) up to sampling noise."""
    rng = np.random.default_rng(0)
    n, n_classes = 60_000, 4
    true_logp = rng.normal(0, 1.0, size=(n, n_classes))
    probs = np.exp(true_logp) / np.exp(true_logp).sum(1, keepdims=True)
    labels = (rng.random(n)[:, None] > np.cumsum(probs, 1)).sum(1)
    lean = np.array([0.0, 0.5, 0.0, 0.0])
    logits = 2.0 * true_logp + 2.0 * lean
    temperature, bias = fit_bias_corrected(logits, labels, n_classes)
    assert abs(temperature - 2.0) < 0.05
    np.testing.assert_allclose(bias, -(lean - lean.mean()), atol=0.04)
    assert abs(bias.sum()) < 1e-9


def test_uninformative_model_keeps_the_raw_logits():
    """Nothing to fit (constant logits, balanced labels): T = 1 and no bias, never a worse NLL."""
    labels = np.repeat(np.arange(3), 100)
    temperature, bias = fit_bias_corrected(np.zeros((300, 3)), labels, 3)
    assert temperature == 1.0 and np.all(bias == 0.0)

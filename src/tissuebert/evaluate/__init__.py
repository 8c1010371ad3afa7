"""Evaluation and calibration of a trained checkpoint on a store split."""

from tissuebert.evaluate.calibrate import calibrate_checkpoint
from tissuebert.evaluate.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
    softmax_probs,
)
from tissuebert.evaluate.evaluate import evaluate_split, score_split

__all__ = ["calibrate_checkpoint", "evaluate_split",
           "expected_calibration_error", "fit_temperature", "nll", "reliability_bins", "score_split",
           "softmax_probs"]

"""Inference: from a checkpoint to per-read logits and likelihoods, in one place.

The road from a checkpoint to proportions is checkpoint -> model -> scores -> likelihoods;
evaluate, deconvolve and the benchmark all walk it through this package and never through
``train/`` (which imports the checkpoint functions from here to write what inference reads).

- checkpoint: :class:`Checkpoint` (load, save, compatibility with a panel and tissue list, the model)
- device: the one device rule and the one precision rule
- predict: batched scoring of (window, pattern) rows, each distinct row once
- likelihood: calibration (temperature, per-tissue bias), training prior, logits -> likelihoods
- logreg: the simple rival (logistic regression), fitted on demand and scored like the model
"""

from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.inference.device import resolve_device, resolve_precision
from tissuebert.inference.likelihood import calibrated, class_prior, likelihoods_from_logits, read_loglik
from tissuebert.inference.predict import predict_logits, score_rows

__all__ = ["Checkpoint", "calibrated", "class_prior", "likelihoods_from_logits", "predict_logits", "read_loglik",
           "resolve_device", "resolve_precision", "score_rows"]

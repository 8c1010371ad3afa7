"""Deconvolution: per-read likelihoods -> tissue proportions (EM), intervals, baselines."""

from tissuebert.deconvolve.baselines import (
    MarkerCounts, MarkerReference, build_references, marker_counts, nnls_mixture, nnls_proportions, uxm_proportions,
)
from tissuebert.deconvolve.em import bootstrap_proportions, em_proportions, mixture_loglik, scaled_likelihoods
from tissuebert.deconvolve.run import (
    METHODS, DeconvResult, deconvolve_reads, proportions_from_loglik, reference_proportions, score_reads,
)

from tissuebert.inference.likelihood import likelihoods_from_logits

__all__ = ["METHODS", "DeconvResult", "MarkerCounts", "MarkerReference", "bootstrap_proportions",
           "build_references", "deconvolve_reads", "em_proportions", "likelihoods_from_logits", "marker_counts",
           "mixture_loglik", "nnls_mixture", "nnls_proportions", "proportions_from_loglik",
           "reference_proportions", "scaled_likelihoods", "score_reads", "uxm_proportions"]

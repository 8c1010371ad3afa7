"""Deconvolution: per-read likelihoods -> tissue proportions (EM), intervals, baselines.

The methods are one table (deconvolve/methods.py). Names are loaded on first use (PEP 562): the
CLI reads the table for its help text, and that must not pull in torch through deconvolve/run.py.
"""

from importlib import import_module

_WHERE = {
    "tissuebert.deconvolve.baselines": ("MarkerCounts", "MarkerReference", "build_references", "marker_counts",
                                        "nnls_mixture", "nnls_proportions", "uxm_proportions"),
    "tissuebert.deconvolve.em": ("bootstrap_proportions", "em_proportions", "mixture_loglik", "scaled_likelihoods"),
    "tissuebert.deconvolve.run": ("METHODS", "DeconvResult", "deconvolve_reads", "proportions_from_loglik",
                                  "reference_proportions", "score_reads"),
    "tissuebert.inference.likelihood": ("likelihoods_from_logits",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = ["METHODS", "DeconvResult", "MarkerCounts", "MarkerReference", "bootstrap_proportions",
           "build_references", "deconvolve_reads", "em_proportions", "likelihoods_from_logits", "marker_counts",
           "mixture_loglik", "nnls_mixture", "nnls_proportions", "proportions_from_loglik",
           "reference_proportions", "scaled_likelihoods", "score_reads", "uxm_proportions"]


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # once
    return value

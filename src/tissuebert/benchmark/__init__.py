"""In-silico mixture benchmark: every deconvolution method on mixtures of held-out reads."""

from tissuebert.benchmark.design import Mixture, background_weights, design_mixtures
from tissuebert.benchmark.metrics import accuracy_metrics, limit_of_detection
from tissuebert.benchmark.run import run_benchmark

__all__ = ["Mixture", "accuracy_metrics", "background_weights", "design_mixtures", "limit_of_detection",
           "run_benchmark"]

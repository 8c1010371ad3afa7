"""Simulated methylome cohorts in real file formats, with their generative truth and the
Bayes-optimal oracle (exact read likelihoods, posteriors and mixture proportions)."""

from tissuebert.simulate.cohort import simulate_cohort
from tissuebert.simulate.mixture import simulate_mixture
from tissuebert.simulate.oracle import oracle_loglik, oracle_posterior, oracle_proportions
from tissuebert.simulate.params import PRESETS, SimConfig
from tissuebert.simulate.truth import Truth, load_truth

__all__ = ["PRESETS", "SimConfig", "Truth", "load_truth", "oracle_loglik", "oracle_posterior",
           "oracle_proportions", "simulate_cohort", "simulate_mixture"]

"""Choosing the fragment-state atlas's emissions (``train.state_tissue_prior = auto``): shared by
the tissues or each tissue's own, by how well each fit deconvolves pseudo-mixtures of held-out
reads (docs/training.md, "Per-tissue emissions"). Here, not in data/state_atlas.py, because it
runs the deconvolution's EM (deconvolve/em.py), which the data layer does not import.
"""

from __future__ import annotations

import numpy as np

from tissuebert.data.state_atlas import atlas_loglik, atlas_tissue_loglik, fit_state_atlas, split_reads
from tissuebert.deconvolve.em import em_proportions
from tissuebert.progress import get_logger

log = get_logger("train")


def mixture_error(loglik: np.ndarray, reads: tuple, n_tissues: int, *, mixtures: int = 24, seed: int = 0) -> float:
    """Mean absolute error of the EM proportions of held-out pseudo-mixtures at infinite depth.

    Each mixture draws proportions p (a sparse Dirichlet over the tissues with reads) and weighs
    every held-out read of tissue t by p[t] / (reads of t), so EM (deconvolve/em.py) sees the
    mixture's expected read counts: a perfect atlas gives p back exactly, and what it returns
    instead is the bias of the atlas's likelihood ratios, the part of a deconvolution's error that
    depth does not average away. ``loglik``: (N, T) of :func:`atlas_tissue_loglik`."""
    cell, weight = reads[0], reads[4]
    tissue = cell % n_tissues
    per_tissue = np.bincount(tissue, weights=weight, minlength=n_tissues)
    present = np.flatnonzero(per_tissue > 0)
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(mixtures):
        p = np.zeros(n_tissues)
        p[present] = rng.dirichlet(np.full(present.size, 0.5))
        w = weight * p[tissue] / np.maximum(per_tissue[tissue], 1e-300)
        errors.append(np.abs(em_proportions(loglik, weights=w) - p).mean())
    return float(np.mean(errors))


# auto: shared emissions or per-tissue ones shrunk by 100 pseudo-calls. A finer grid (300 / 100 / 30)
# chose by noise on `structured` (validation error 0.0110 / 0.0120 / 0.0101, benchmark error of the
# atlas alone 0.0118 at 100, 0.0142 at 30: docs/training.md)
TISSUE_PRIORS = (100.0,)


def choose_state_atlas(sampler, held_out, n_states: int, *, priors: tuple = TISSUE_PRIORS, iterations: int = 40
                       ) -> tuple[np.ndarray, np.ndarray, float | None, dict]:
    """Fit the atlas with shared emissions, then with per-tissue ones at each prior in ``priors``
    (each continuing from the shared fit for half as many iterations), on ``sampler``'s split;
    score each by :func:`mixture_error` on ``held_out``'s reads (another split of the same store:
    validation), and keep the one with the smallest: (theta, pi, its prior (None = shared),
    {prior: (held-out mixture error, held-out mean log-likelihood per read)}).

    Why mixtures and not the held-out likelihood: on ``structured`` the likelihood kept improving
    down to 10 pseudo-calls while the mixture error of the fit was best near 100
    (docs/training.md): a smaller prior fits each tissue's reads better and its likelihood
    *ratios*, which are what a deconvolution uses, worse."""
    reads = split_reads(sampler)
    test = split_reads(held_out)
    n_tissues = len(sampler.store.tissues)
    shared = fit_state_atlas(sampler, n_states, iterations=iterations, reads=reads)
    best, scores = None, {}
    for a in (None, *priors):
        theta, pi = shared if a is None else fit_state_atlas(
            sampler, n_states, iterations=max(1, iterations // 2), tissue_prior=a, reads=reads, start=shared)
        error = mixture_error(atlas_tissue_loglik(theta, pi, test), test, n_tissues)
        scores[a] = (error, atlas_loglik(theta, pi, test))
        log.info("fragment-state atlas, %s emissions: held-out mixture error %.5f, log-likelihood per read %.4f",
                 "shared" if a is None else f"per-tissue (prior {a:g})", *scores[a])
        if best is None or error < best[3]:
            best = (theta, pi, a, error)
    return best[0], best[1], best[2], scores

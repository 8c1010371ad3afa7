"""Choosing the fragment-state atlas: its number of states (``model.fragment_states = auto``) and
its emissions (``train.state_tissue_prior = auto``: shared by the tissues or each tissue's own), by
how well each fit deconvolves pseudo-mixtures of held-out reads (docs/training.md, "Per-tissue
emissions" and "How many states"). Here, not in data/state_atlas.py, because it
runs the deconvolution's EM (deconvolve/em.py), which the data layer does not import.
"""

from __future__ import annotations

from dataclasses import dataclass

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
# model.fragment_states = auto: the Ks tried, each fitted on the whole training split (8 fits with
# per-tissue emissions: 26 s on `demo`, ~3 min on `structured`, ~45 min on `small`'s 2.65 M distinct
# rows on one thread). The validation mixture error chose K = 2 on `demo` and 8 on `structured`, and
# the model at that K beat K = 3 on both; on `small` it ranks K = 3 ahead of 8, as the model does.
# Choosing on a subset of the windows to save time picked 8 there and lost (docs/training.md,
# "How many states")
STATE_CANDIDATES = (2, 3, 5, 8)


@dataclass
class StateChoice:
    """The atlas a choice kept and what every candidate scored on the held-out reads."""

    n_states: int
    theta: np.ndarray
    pi: np.ndarray
    prior: float | None  # None = shared emissions
    scores: dict[tuple[int, float | None], tuple[float, float]]  # (K, prior) -> (mixture error, log-lik per read)

    def describe(self) -> str:
        return (f"{self.n_states} states, " + ("shared emissions" if self.prior is None
                                                else f"per-tissue emissions (prior {self.prior:g})"))


def choose_states(sampler, held_out, candidates: tuple[int, ...], *,
                  emissions: tuple[float | None, ...] = (None, *TISSUE_PRIORS), iterations: int = 40) -> StateChoice:
    """For each K in ``candidates``: fit the atlas with shared emissions, then with per-tissue ones
    at each prior of ``emissions`` (None there = the shared fit itself; each per-tissue fit continues
    from the shared one for half as many iterations), on ``sampler``'s split; score each fit by
    :func:`mixture_error` on ``held_out``'s reads (another split of the same store: validation),
    and keep the one with the smallest error (the first on a tie: the fewer states, then shared).

    Why mixtures and not the held-out likelihood: on ``structured`` the likelihood kept improving
    down to 10 pseudo-calls while the mixture error of the fit was best near 100
    (docs/training.md): a smaller prior fits each tissue's reads better and its likelihood
    *ratios*, which are what a deconvolution uses, worse. The same holds for K: more states always
    fit the reads better, and past the window's number of distinct fragment kinds they fit noise."""
    if not candidates or any(k < 2 for k in candidates):
        raise ValueError(f"every candidate number of states must be >= 2, got {candidates}")
    if not emissions:
        raise ValueError("choose_states needs at least one kind of emissions to score")
    reads = split_reads(sampler)
    test = split_reads(held_out)
    n_tissues = len(sampler.store.tissues)
    best, scores = None, {}
    for k in candidates:
        shared = fit_state_atlas(sampler, k, iterations=iterations, reads=reads)
        for a in emissions:
            theta, pi = shared if a is None else fit_state_atlas(
                sampler, k, iterations=max(1, iterations // 2), tissue_prior=a, reads=reads, start=shared)
            error = mixture_error(atlas_tissue_loglik(theta, pi, test), test, n_tissues)
            scores[(k, a)] = (error, atlas_loglik(theta, pi, test))
            log.info("fragment-state atlas, %d states, %s emissions: held-out mixture error %.5f, log-likelihood "
                     "per read %.4f", k, "shared" if a is None else f"per-tissue (prior {a:g})", *scores[(k, a)])
            if best is None or error < best[4]:
                best = (k, theta, pi, a, error)
    return StateChoice(best[0], best[1], best[2], best[3], scores)


def choose_state_atlas(sampler, held_out, n_states: int, *, priors: tuple = TISSUE_PRIORS, iterations: int = 40
                       ) -> tuple[np.ndarray, np.ndarray, float | None, dict]:
    """:func:`choose_states` at one K: (theta, pi, the prior kept (None = shared),
    {prior: (held-out mixture error, held-out mean log-likelihood per read)})."""
    choice = choose_states(sampler, held_out, (n_states,), emissions=(None, *priors), iterations=iterations)
    return choice.theta, choice.pi, choice.prior, {a: v for (_, a), v in choice.scores.items()}

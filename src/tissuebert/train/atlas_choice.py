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
# model.fragment_states = auto: the Ks tried. The validation mixture error chose K = 2 on `demo`
# (one block per window) and 5-8 on `structured` (several blocks per window), and the model trained
# at the chosen K beat the one at K = 3 on both (docs/training.md, "How many states")
STATE_CANDIDATES = (2, 3, 5, 8)
# the choice fits every candidate: on a larger split it fits them on a random subset of the windows
# holding at most this many distinct training rows (the atlas's windows are fitted independently of
# each other, so a window's fit is the same in the subset as in the whole panel), then the kept
# K is fitted on every window. `structured` (298,074 rows) is chosen on whole; `small` (2.65 M rows,
# ~45 min for the 8 fits of the whole split) on about a ninth of its windows
MAX_CHOICE_ROWS = 300_000


@dataclass
class StateChoice:
    """The atlas a choice kept and what every candidate scored on the held-out reads."""

    n_states: int
    theta: np.ndarray
    pi: np.ndarray
    prior: float | None  # None = shared emissions
    scores: dict[tuple[int, float | None], tuple[float, float]]  # (K, prior) -> (mixture error, log-lik per read)
    windows: np.ndarray | None = None  # the windows fitted and scored (None = all): the tables hold only them

    def describe(self) -> str:
        return (f"{self.n_states} states, " + ("shared emissions" if self.prior is None
                                                else f"per-tissue emissions (prior {self.prior:g})"))


def choose_states(sampler, held_out, candidates: tuple[int, ...], *,
                  emissions: tuple[float | None, ...] = (None, *TISSUE_PRIORS), iterations: int = 40,
                  max_rows: int | None = MAX_CHOICE_ROWS, seed: int = 0) -> StateChoice:
    """For each K in ``candidates``: fit the atlas with shared emissions, then with per-tissue ones
    at each prior of ``emissions`` (None there = the shared fit itself; each per-tissue fit continues
    from the shared one for half as many iterations), on ``sampler``'s split; score each fit by
    :func:`mixture_error` on ``held_out``'s reads (another split of the same store: validation),
    and keep the one with the smallest error (the first on a tie: the fewer states, then shared).
    With more than ``max_rows`` distinct training rows, all of it on a random subset of the windows
    (``seed``; :func:`window_subset`): the choice's ``windows`` then says which, and only their
    rows of the tables are fitted.

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
    windows = window_subset(reads[0] // n_tissues, max_rows, seed=seed) if max_rows else None
    if windows is not None:
        log.info("choosing the atlas on %d of %d windows (%d of %d distinct training rows; the kept one is then "
                 "fitted on all)", windows.size, sampler.store.panel.n_windows,
                 int(np.isin(reads[0] // n_tissues, windows).sum()), reads[0].size)
        reads, test = rows_in(reads, windows, n_tissues), rows_in(test, windows, n_tissues)
    best, scores = None, {}
    for k in candidates:
        shared = None
        for a in emissions:
            theta, pi, shared = fit_emissions(sampler, k, a, reads=reads, iterations=iterations, shared=shared)
            error = mixture_error(atlas_tissue_loglik(theta, pi, test), test, n_tissues)
            scores[(k, a)] = (error, atlas_loglik(theta, pi, test))
            log.info("fragment-state atlas, %d states, %s emissions: held-out mixture error %.5f, log-likelihood "
                     "per read %.4f", k, "shared" if a is None else f"per-tissue (prior {a:g})", *scores[(k, a)])
            if best is None or error < best[4]:
                best = (k, theta, pi, a, error)
    return StateChoice(best[0], best[1], best[2], best[3], scores, windows)


def fit_emissions(sampler, n_states: int, prior: float | None, *, reads: tuple | None = None, iterations: int = 40,
                  shared: tuple | None = None) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The atlas of one candidate: shared emissions fitted for ``iterations`` (or ``shared``, that fit
    already made), then, for a ``prior``, per-tissue ones continuing from it for half as many.
    Returns (theta, pi, the shared fit)."""
    if shared is None:
        shared = fit_state_atlas(sampler, n_states, iterations=iterations, reads=reads)
    if prior is None:
        return shared[0], shared[1], shared
    theta, pi = fit_state_atlas(sampler, n_states, iterations=max(1, iterations // 2), tissue_prior=prior,
                                reads=reads, start=shared)
    return theta, pi, shared


def window_subset(window: np.ndarray, max_rows: int, *, seed: int = 0) -> np.ndarray | None:
    """The windows of ``window`` (each row's window) in a random order (``seed``) up to the last one
    whose rows still fit in ``max_rows`` with those before it, sorted; at least one window. None
    when every row fits."""
    if window.size <= max_rows:
        return None
    per_window = np.bincount(window)
    order = np.random.default_rng(seed).permutation(np.flatnonzero(per_window))
    taken = int(np.searchsorted(np.cumsum(per_window[order]), max_rows, side="right"))
    return np.sort(order[:max(1, taken)])


def rows_in(reads: tuple, windows: np.ndarray, n_tissues: int) -> tuple:
    """The :func:`split_reads` rows of ``windows``."""
    keep = np.isin(reads[0] // n_tissues, windows)
    return tuple(a[keep] for a in reads)


def choose_state_atlas(sampler, held_out, n_states: int, *, priors: tuple = TISSUE_PRIORS, iterations: int = 40
                       ) -> tuple[np.ndarray, np.ndarray, float | None, dict]:
    """:func:`choose_states` at one K, on every window: (theta, pi, the prior kept (None = shared),
    {prior: (held-out mixture error, held-out mean log-likelihood per read)})."""
    choice = choose_states(sampler, held_out, (n_states,), emissions=(None, *priors), iterations=iterations,
                           max_rows=None)
    return choice.theta, choice.pi, choice.prior, {a: v for (_, a), v in choice.scores.items()}

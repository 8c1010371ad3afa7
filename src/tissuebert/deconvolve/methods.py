"""The table of read-level deconvolution methods: a method is one row here and one function.

Every route that estimates proportions from reads -- `tissuebert deconvolve` (one sample or a
cohort), the benchmark's in-silico mixtures, the CLI's method lists -- reads this table, so
adding a method touches nothing else. A row says:

- ``needs``: which evidence about the reads its context must prepare (:data:`NEEDS`): the model's
  likelihoods, logreg's, the simulator's exact ones (oracle), or per-read marker statistics and
  a marker reference (uxm, nnls). Contexts prepare each kind once and share it between methods.
- ``fit(evidence, weights, *, max_iter, tol, init)``: proportions (T,) of the reads weighted by
  their multiplicities. The same call serves the point estimate and every bootstrap replicate,
  which is why the bootstrap (a multinomial redraw of the weights) is the same for all methods.
- ``attributed``: the reads credited to each tissue (``reads_used`` of the outputs).

Only the evidence kinds are fixed here (each needs its own preparation: a forward pass, a logreg
fit, a reference); a new method over an existing kind is a row and a function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from tissuebert.deconvolve.bootstrap import bootstrap, multinomial_draw
from tissuebert.deconvolve.em import em_proportions, scaled_likelihoods
from tissuebert.deconvolve.result import DeconvResult
from tissuebert.errors import TissueBertError

if TYPE_CHECKING:
    from tissuebert.deconvolve.baselines import MarkerReference, ReadMarkerStats
    from tissuebert.store.panel import Panel

# What a method reads about a sample; the value is also the name of the source in messages.
NEEDS = SimpleNamespace(MODEL="model", LOGREG="logreg", ORACLE="oracle", MARKERS="markers")
BOOT_TOL = 1e-6  # replicates start at the estimate and need only interval precision
NO_REFERENCE_HINT = "pass --store STORE (or --atlas ATLAS.tsv for uxm on a .pat or BAM input)"


class Evidence:
    """What a method may read about one sample's R reads, derived on first use so that a method
    pays only for what it reads: scaled likelihoods, posteriors, argmax calls, marker stats.

    Built from log-likelihoods (deconvolve); the benchmark's pool subclasses it to index arrays it
    scored once (benchmark/pool.py).
    """

    def __init__(self, tissues: list[str], *, loglik: np.ndarray | None = None,
                 reads: tuple[Panel, np.ndarray, np.ndarray] | None = None,
                 reference: MarkerReference | None = None) -> None:
        self.tissues = list(tissues)
        self.loglik = loglik  # (R, T) log-likelihoods, training prior divided out
        self.reads = reads  # (panel, window_idx (R,), packed calls (R, B)) for the marker statistics
        self.reference = reference  # per-marker atlases of the reference methods

    @cached_property
    def lik(self) -> np.ndarray:
        """(R, T) likelihoods scaled per read (the EM's input)."""
        return scaled_likelihoods(self.loglik)

    @cached_property
    def post(self) -> np.ndarray:
        """(R, T) per-read posteriors under a uniform prior."""
        from scipy.special import softmax

        return softmax(self.loglik, axis=1)

    @cached_property
    def call(self) -> np.ndarray:
        """(R,) each read's most likely tissue."""
        return np.asarray(self.loglik).argmax(axis=1)

    @cached_property
    def markers(self) -> ReadMarkerStats:
        """Per-read contributions to the marker counts (summed with any weights by the method)."""
        from tissuebert.deconvolve.baselines import read_marker_stats

        return read_marker_stats(*self.reads)


Fit = Callable[..., np.ndarray]  # fit(evidence, weights (R,), *, max_iter, tol, init=None) -> (T,)


def _share_of_reads(evidence: Evidence, weights: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    return estimate * _all_reads(evidence, weights)


def _all_reads(evidence: Evidence, weights: np.ndarray) -> int:
    return int(round(weights.sum()))


def _called_in_markers(evidence: Evidence, weights: np.ndarray) -> int:
    """nnls: the reads with a call in a marker (what its per-marker levels are made of)."""
    return int(round(weights @ (evidence.markers.n_called > 0)))


def _informative(evidence: Evidence, weights: np.ndarray) -> int:
    """uxm: the informative fragments (>= UXM_MIN_CPGS calls in a marker), not the file's reads."""
    return int(round(weights @ evidence.markers.informative))


@dataclass(frozen=True)
class Method:
    """One deconvolution method: what it needs, how it estimates, how its interval is drawn."""

    name: str
    needs: str  # one of NEEDS: the evidence its context prepares
    fit: Fit  # (evidence, weights, *, max_iter, tol, init) -> proportions (T,) summing to 1
    attributed: Callable[[Evidence, np.ndarray, np.ndarray], np.ndarray] = _share_of_reads  # reads_used (T,)
    used: Callable[[Evidence, np.ndarray], int] = _all_reads  # n_reads: the reads the estimate rests on
    bootstrap: bool = True  # intervals by redrawing the reads (multinomial over the weights); False: none
    listed: bool = True  # offered by deconvolve and run by default in the benchmark (oracle: benchmark only)
    cli_note: str = ""  # shown after the name in `deconvolve --help`
    from_atlas: Callable[..., DeconvResult] | None = None  # its route with --atlas (a published atlas file)


# -- the estimators -------------------------------------------------------------------------------

def _em(ev: Evidence, weights: np.ndarray, *, max_iter: int, tol: float, init: np.ndarray | None = None
        ) -> np.ndarray:
    """Maximum-likelihood mixture proportions over the reads' likelihoods (deconvolve/em.py)."""
    return em_proportions(None, weights=weights, lik=ev.lik, init=init, max_iter=max_iter, tol=tol)


def _em_attributed(ev: Evidence, weights: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Expected reads of each tissue: the weights times each read's responsibilities at the estimate."""
    resp = ev.lik.astype(np.float64) * estimate
    resp /= resp.sum(axis=1, keepdims=True)
    return weights @ resp


def _mean_posterior(ev: Evidence, weights: np.ndarray, **_: Any) -> np.ndarray:
    """Average per-read posterior under a uniform prior."""
    return (weights @ ev.post) / weights.sum()


def _argmax(ev: Evidence, weights: np.ndarray, **_: Any) -> np.ndarray:
    """Share of reads whose most likely tissue is t."""
    return np.bincount(ev.call, weights=weights, minlength=len(ev.tissues)) / weights.sum()


def _uxm(ev: Evidence, weights: np.ndarray, **_: Any) -> np.ndarray:
    from tissuebert.deconvolve.baselines import uxm_proportions

    return uxm_proportions(ev.reference, ev.markers.counts(weights))


def _nnls(ev: Evidence, weights: np.ndarray, **_: Any) -> np.ndarray:
    from tissuebert.deconvolve.baselines import nnls_proportions

    return nnls_proportions(ev.reference, ev.markers.counts(weights))


def _uxm_on_atlas(*args: Any, **kwargs: Any) -> DeconvResult:
    """UXM against a published atlas from .pat or BAM fragments (deconvolve/sample.py)."""
    from tissuebert.deconvolve.sample import _atlas_uxm  # sample.py imports this module's users

    return _atlas_uxm(*args, **kwargs)


REGISTRY: dict[str, Method] = {m.name: m for m in (
    Method("em", NEEDS.MODEL, _em, _em_attributed),
    Method("mean-posterior", NEEDS.MODEL, _mean_posterior, lambda ev, w, est: w @ ev.post),
    Method("argmax", NEEDS.MODEL, _argmax,
           lambda ev, w, est: np.bincount(ev.call, weights=w, minlength=len(ev.tissues))),
    # EM over the simple rival's likelihoods, fit on a store's training split
    Method("logreg", NEEDS.LOGREG, _em, _em_attributed, cli_note="needs --store"),
    Method("uxm", NEEDS.MARKERS, _uxm, lambda ev, w, est: est * _informative(ev, w), _informative,
           from_atlas=_uxm_on_atlas),
    Method("nnls", NEEDS.MARKERS, _nnls, lambda ev, w, est: est * _called_in_markers(ev, w), _called_in_markers),
    # EM over the simulator's exact likelihoods: the benchmark's ceiling on simulated data
    Method("oracle", NEEDS.ORACLE, _em, _em_attributed, listed=False),
)}


def method_names(needs: str | None = None) -> tuple[str, ...]:
    """Names of the listed methods in table order (of one evidence kind when ``needs`` is given)."""
    return tuple(m.name for m in REGISTRY.values() if m.listed and (needs is None or m.needs == needs))


def method_help(default: str = "em") -> str:
    """The ``--method`` list of `deconvolve --help`, with each method's note."""
    return ", ".join(name + (" (default)" if name == default else "")
                     + (f" ({REGISTRY[name].cli_note})" if REGISTRY[name].cli_note else "") for name in method_names())


def check_available(names: list[str], *, checkpoint: bool, store: bool, atlas: bool) -> list[Method]:
    """The methods asked for, or the first reason one cannot run with what was given."""
    unknown = [n for n in names if n not in method_names()]
    if unknown:
        raise TissueBertError(f"unknown method {unknown[0]!r}; choose from {', '.join(method_names())}")
    chosen = [REGISTRY[n] for n in names]
    model = [m.name for m in chosen if m.needs == NEEDS.MODEL]
    if model and not checkpoint:
        raise TissueBertError(f"method(s) {', '.join(model)} need --checkpoint")
    if not store:
        rival = [m.name for m in chosen if m.needs == NEEDS.LOGREG]
        if rival:
            raise TissueBertError(f"method {rival[0]} is fit on a store's training split", hint="pass --store STORE")
        # a method with an atlas route is named last: the other cannot run at all without a store
        stranded = sorted((m for m in chosen if m.needs == NEEDS.MARKERS and not (atlas and m.from_atlas)),
                          key=lambda m: m.from_atlas is not None)
        if stranded:
            raise TissueBertError(f"method {stranded[0].name} builds its reference from a store's training split",
                                  hint=NO_REFERENCE_HINT)
    return chosen


def run_method(method: Method, evidence: Evidence, weights: np.ndarray, *, n_boot: int = 0, ci_level: float = 0.95,
               seed: int = 0, max_iter: int = 1000, tol: float = 1e-8) -> DeconvResult:
    """One sample's proportions by ``method``, with the reads' bootstrap interval (NaN when none)."""
    weights = np.asarray(weights, dtype=np.float64)
    estimate = method.fit(evidence, weights, max_iter=max_iter, tol=tol)

    def refit(w: np.ndarray) -> np.ndarray:
        return method.fit(evidence, w, max_iter=max_iter, tol=BOOT_TOL, init=estimate)

    low, high, _ = bootstrap(refit, multinomial_draw(weights), n_out=len(evidence.tissues),
                             n_boot=n_boot if method.bootstrap and n_boot > 0 else 0, ci_level=ci_level, seed=seed,
                             estimate=estimate)
    return DeconvResult(evidence.tissues, method.name, estimate, low, high,
                        method.attributed(evidence, weights, estimate), method.used(evidence, weights), ci_level)

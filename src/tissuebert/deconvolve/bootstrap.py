"""The one bootstrap of every deconvolution: refit on resampled units, interval around the point fit.

Every method's interval is the same recipe: redraw the sample's independent units, refit, and
place the refits' spread around the point estimate (:func:`interval_around`). Only the unit
differs, so it is a small object (a *draw*) handed to :func:`bootstrap`:

- :func:`multinomial_draw`: reads with multiplicities. Redrawing N reads with replacement is,
  for collapsed reads, a multinomial draw of new multiplicities over the unique reads (same
  distribution, no copies). The estimator gets the new multiplicities (R,).
- :func:`index_draw`: units drawn by index with replacement (regions of a count table, whose
  calls are not independent). The estimator gets the drawn indices (n,).

A seed or a running ``np.random.Generator`` may be passed: the count tables draw every method of
a sample from one generator, reads start a fresh one per result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Draw = Callable[[np.random.Generator], np.ndarray]


def interval_around(estimate: np.ndarray, reps: np.ndarray, ci_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the bootstrap refits' deviations, placed around the point fit.

    ``[est + q_a(reps) - median(reps), est + q_(1-a)(reps) - median(reps)]``, clipped to [0, 1].
    Plain percentiles ``[q_a, q_(1-a)]`` of the refits can miss the estimate they describe: refits
    started from the estimate stop at a looser tolerance, and at a proportion near 0 or 1 the
    refits pile up on one side (a pure sample gave 1.000000 with 0.999993-0.999994). Shifting by
    the refits' median keeps their spread (the sampling error) and always contains the estimate.
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    alpha = (1.0 - ci_level) / 2.0
    q_low, median, q_high = np.nanquantile(reps, [alpha, 0.5, 1.0 - alpha], axis=0)
    low = np.clip(estimate + (q_low - median), 0.0, 1.0)
    high = np.clip(estimate + (q_high - median), 0.0, 1.0)
    return np.minimum(low, estimate), np.maximum(high, estimate)


def multinomial_draw(weights: np.ndarray) -> Draw:
    """Resample the N = sum(weights) reads: new multiplicities (R,) float64 over the same rows."""
    weights = np.asarray(weights, dtype=np.float64)
    n_total = int(round(weights.sum()))
    probs = weights / weights.sum()
    return lambda rng: rng.multinomial(n_total, probs).astype(np.float64)


def index_draw(n_units: int) -> Draw:
    """Resample ``n_units`` units by index, with replacement: (n_units,) int64 indices."""
    return lambda rng: rng.integers(0, n_units, n_units)


def bootstrap(estimator: Callable[[np.ndarray], np.ndarray], draw: Draw, *, n_out: int, n_boot: int,
              ci_level: float = 0.95, seed: int | np.random.Generator = 0, estimate: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low (n_out,), high (n_out,), replicates (n_boot, n_out)) of ``estimator`` over ``draw``'s resamples.

    The interval is :func:`interval_around` the ``estimate`` when one is given (every deconvolution
    does), plain percentiles of the replicates otherwise. No replicate (``n_boot == 0``) gives NaN
    bounds: "no interval", which the outputs write as such.
    """
    rng = np.random.default_rng(seed)  # a Generator passes through unchanged
    reps = np.empty((n_boot, n_out))
    for b in range(n_boot):
        reps[b] = estimator(draw(rng))
    if not n_boot:
        return np.full(n_out, np.nan), np.full(n_out, np.nan), reps
    if estimate is not None:
        low, high = interval_around(estimate, reps, ci_level)
        return low, high, reps
    alpha = (1.0 - ci_level) / 2.0
    return np.quantile(reps, alpha, axis=0), np.quantile(reps, 1.0 - alpha, axis=0), reps

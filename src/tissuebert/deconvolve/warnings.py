"""Checks on a deconvolution result that cannot be right, or that a reader should not trust at a
glance. Each is one sentence; the CLI prints it on stderr and run.json lists it."""

from __future__ import annotations

import numpy as np

# A cfDNA sample is never one tissue alone; a pure sample of one cell type is the only honest case.
ONE_TISSUE_SHARE = 0.99


def result_warnings(result) -> list[str]:
    """Sentences on a DeconvResult: all mass on one tissue; an estimate outside its own interval."""
    out: list[str] = []
    props = np.asarray(result.proportions, dtype=np.float64)
    top = int(np.argmax(props))
    if props[top] >= ONE_TISSUE_SHARE:
        out.append(f"all mass on one tissue ({result.tissues[top]} {props[top]:.4f}): a pure sample of that tissue, "
                   "or a model / reference that cannot tell the tissues of this input apart")
    low, high = np.asarray(result.ci_low), np.asarray(result.ci_high)
    have = np.isfinite(low) & np.isfinite(high)
    # the tolerance is the 6 decimals the tables print
    outside = have & ((props < low - 1e-6) | (props > high + 1e-6))
    for t in np.flatnonzero(outside):
        out.append(f"the estimate of {result.tissues[t]} ({props[t]:.6f}) lies outside its own interval "
                   f"({low[t]:.6f}-{high[t]:.6f})")
    return out

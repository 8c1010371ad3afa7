"""One sample's proportions by one method: what every deconvolution route returns and writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class DeconvResult:
    """Proportions of one sample by one method."""

    tissues: list[str]
    method: str
    proportions: np.ndarray  # (T,) sums to 1
    ci_low: np.ndarray  # (T,) NaN when no bootstrap was run
    ci_high: np.ndarray
    reads_used: np.ndarray  # (T,) reads attributed to each tissue (expected counts for em)
    n_reads: int  # reads (with multiplicity) the estimate is based on: for uxm its informative fragments
    ci_level: float = 0.95
    warnings: list[str] = field(default_factory=list)  # deconvolve.warnings.result_warnings

    def rows(self) -> list[dict[str, Any]]:
        used = whole_reads(self.reads_used)
        return [{"method": self.method, "tissue": t, "proportion": float(self.proportions[i]),
                 "ci_low": float(self.ci_low[i]), "ci_high": float(self.ci_high[i]),
                 "reads_used": int(used[i])} for i, t in enumerate(self.tissues)]


def whole_reads(expected: np.ndarray) -> np.ndarray:
    """Expected reads per tissue (fractional for em) as whole reads that add up to the rounded
    total: each tissue gets its floor, and the reads left over go to the largest remainders."""
    expected = np.clip(np.nan_to_num(np.asarray(expected, dtype=np.float64)), 0.0, None)
    floor = np.floor(expected)
    short = int(round(expected.sum() - floor.sum()))
    order = np.argsort(-(expected - floor), kind="stable")[:max(short, 0)]
    floor[order] += 1
    return floor.astype(np.int64)

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
    n_reads: int  # reads (with multiplicity) the estimate is based on
    ci_level: float = 0.95
    warnings: list[str] = field(default_factory=list)  # deconvolve.warnings.result_warnings

    def rows(self) -> list[dict[str, Any]]:
        return [{"method": self.method, "tissue": t, "proportion": float(self.proportions[i]),
                 "ci_low": float(self.ci_low[i]), "ci_high": float(self.ci_high[i]),
                 "reads_used": float(self.reads_used[i])} for i, t in enumerate(self.tissues)]

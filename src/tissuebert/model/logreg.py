"""ReadLogReg: the simple rival, a read-level multinomial logistic regression.

Every (panel CpG, call) pair is one binary feature with its own weight vector over the tissues,
so a read's logits are the bias plus the sum of the weight vectors of the calls it carries:

    logits[t] = b[t] + sum_{CpG c called in the read} W[2 * c + call, t]        (call 0 = U, 1 = M)

CpGs the read does not call add nothing. The features are one-hot in (window, CpG slot, call),
the probe of issue 11 that reaches 93-97% of the oracle on the demo cohort; the module is pure
torch and knows nothing about stores or panels (``data.features`` builds its inputs).
"""

from __future__ import annotations

import torch
from torch import nn


class ReadLogReg(nn.Module):
    """Multinomial logistic regression over one-hot (panel CpG, call) features.

    Args:
        n_cpgs: CpGs of the panel (the features are ``2 * n_cpgs``).
        n_tissues: classes.
    """

    def __init__(self, *, n_cpgs: int, n_tissues: int) -> None:
        super().__init__()
        if n_cpgs < 1:
            raise ValueError(f"n_cpgs must be >= 1, got {n_cpgs}")
        if n_tissues < 2:
            raise ValueError(f"n_tissues must be >= 2, got {n_tissues}")
        self.n_cpgs = int(n_cpgs)
        self.n_tissues = int(n_tissues)
        # the objective is convex: zero start is the maximum-entropy (uniform) classifier
        self.weight = nn.EmbeddingBag(2 * self.n_cpgs, self.n_tissues, mode="sum")
        nn.init.zeros_(self.weight.weight)
        self.bias = nn.Parameter(torch.zeros(self.n_tissues))

    @property
    def n_features(self) -> int:
        return 2 * self.n_cpgs

    def forward(self, feature_idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, K) feature ids + (B, K) validity -> (B, T) logits; invalid slots contribute nothing."""
        if feature_idx.shape != valid.shape or feature_idx.dim() != 2:
            raise ValueError(f"feature_idx and valid must both be (B, K); got {tuple(feature_idx.shape)} "
                             f"and {tuple(valid.shape)}")
        # invalid slots may hold any id: point them at feature 0 with weight 0
        idx = torch.where(valid, feature_idx, torch.zeros_like(feature_idx))  # (B, K)
        summed = self.weight(idx, per_sample_weights=valid.to(self.weight.weight.dtype))  # (B, T)
        return summed + self.bias

"""Reads -> model tokens, vectorised over a whole batch (no per-read Python)."""

from __future__ import annotations

import numpy as np

from tissuebert.constants import METH_NONE, N_TOKENS
from tissuebert.store.panel import Panel
from tissuebert.store.sample import unpack_calls


class TokenTables:
    """Per-panel lookup tables: DNA tokens and the token position of each window's CpGs."""

    def __init__(self, panel: Panel) -> None:
        self.dna = np.ascontiguousarray(panel.dna)  # (W, 148) uint8
        self.offsets = panel.padded_offsets()  # (W, K), padding -> dump column 148
        self.max_cpgs = self.offsets.shape[1]

    def meth_tokens(self, window_idx: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(B,) windows + (B, >=K) call codes -> (B, 148) methylation tokens (uint8)."""
        n_reads = window_idx.shape[0]
        meth = np.full((n_reads, N_TOKENS + 1), METH_NONE, dtype=np.uint8)  # +1: dump column
        np.put_along_axis(meth, self.offsets[window_idx], codes[:, : self.max_cpgs], axis=1)
        return meth[:, :N_TOKENS]

    def batch(self, window_idx: np.ndarray, packed_calls: np.ndarray,
              dropout: float = 0.0, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Tokens for reads given as (window index, packed calls): ((B, 148) dna, (B, 148) meth).

        ``dropout`` sets that fraction of real calls (0/1) to 'no call' (CpG dropout, training only).
        """
        window_idx = np.asarray(window_idx, dtype=np.int64)
        codes = unpack_calls(packed_calls, self.max_cpgs)  # (B, K)
        if dropout > 0.0:
            if rng is None:
                raise ValueError("CpG dropout needs an rng")
            drop = rng.random(codes.shape) < dropout
            codes = np.where(drop & (codes != METH_NONE), np.uint8(METH_NONE), codes)
        return self.dna[window_idx], self.meth_tokens(window_idx, codes)

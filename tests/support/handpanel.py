"""A hand-made panel of three windows with 2, 0 and 3 CpGs (5 panel CpGs, so each panel table has
2 x 5 + 1 = 11 rows) at hand-picked token positions, for the model's panel-bound parts."""

from __future__ import annotations

import numpy as np

from tissuebert.constants import N_TOKENS


class HandPanel:
    cpg_ptr = np.array([0, 2, 2, 5])
    cpg_offset = np.array([3, 100, 0, 7, 147], dtype=np.uint8)

    def padded_offsets(self) -> np.ndarray:
        out = np.full((3, 3), N_TOKENS, dtype=np.int64)
        out[0, :2] = [3, 100]
        out[2, :3] = [0, 7, 147]
        return out

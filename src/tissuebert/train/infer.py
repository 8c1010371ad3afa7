"""Batched inference over reads given as (window index, packed calls)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from tissuebert.data.tokens import TokenTables
from tissuebert.model.tissuebert import TissueBERT

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(device: torch.device, precision: str):
    """Autocast for bf16/fp16 (fp16 only on CUDA; on CPU it falls back to bf16), nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = _AUTOCAST[precision]
    if device.type == "cpu" and dtype is torch.float16:
        dtype = torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def predict_logits(model: TissueBERT, tables: TokenTables, window_idx: np.ndarray, calls: np.ndarray, *,
                   batch_size: int = 256, device: torch.device | str = "cpu", precision: str = "fp32",
                   progress=None) -> np.ndarray:
    """(R,) windows + (R, B) packed calls -> (R, n_tissues) float32 logits (model in eval mode)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    n_reads = int(window_idx.shape[0])
    out = np.empty((n_reads, model.n_tissues), dtype=np.float32)
    for start in range(0, n_reads, batch_size):
        stop = min(start + batch_size, n_reads)
        dna, meth = tables.batch(window_idx[start:stop], calls[start:stop])
        dna_t = torch.from_numpy(dna.astype(np.int64)).to(device)
        meth_t = torch.from_numpy(meth.astype(np.int64)).to(device)
        with autocast_context(device, precision):
            logits = model(dna_t, meth_t)
        out[start:stop] = logits.float().cpu().numpy()
        if progress is not None:
            progress(stop - start)
    model.train(was_training)
    return out

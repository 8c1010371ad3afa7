"""Batched inference over reads given as (window index, packed calls)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from tissuebert.constants import N_TOKENS
from tissuebert.data.tokens import TokenTables
from tissuebert.errors import ConfigError
from tissuebert.model.tissuebert import TissueBERT

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
INFER_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# On CPU a forward pass is fastest when one chunk's activations (rows x tokens x hidden) stay
# around this many elements: ~20 rows for the paper model, ~160 for the tiny one (measured:
# the paper model scores 167 rows/s in chunks of 32 and 73 rows/s in chunks of 256, bf16).
CPU_CHUNK_ELEMENTS = 1_500_000


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matrix products natively (CUDA bf16, or AMX / AVX512-BF16 CPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
        except AttributeError:  # a torch build without the probes
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> bf16 where the device has native bf16 matrix products, else fp32."""
    if precision not in INFER_PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", hint=f"choose one of {', '.join(INFER_PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(torch.device(device)) else "fp32"


def inference_chunk(model: TissueBERT, batch_size: int, device: torch.device, length: int) -> int:
    """Rows per forward pass: ``batch_size``, capped on CPU so that activations stay cache-sized."""
    if device.type != "cpu":
        return batch_size
    hidden = model.pos_emb.embedding_dim
    return max(8, min(batch_size, CPU_CHUNK_ELEMENTS // (length * hidden)))


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
                   batch_size: int = 256, device: torch.device | str = "cpu", precision: str = "auto",
                   progress=None) -> np.ndarray:
    """(R,) windows + (R, B) packed calls -> (R, n_tissues) float32 logits (model in eval mode).

    ``precision`` ``auto`` is bf16 autocast where the device multiplies bf16 natively (see
    :func:`resolve_precision`); on CPU rows go through the model in cache-sized chunks.
    """
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    batch_size = inference_chunk(model, batch_size, device, N_TOKENS)
    was_training = model.training
    model.eval()
    n_reads = int(window_idx.shape[0])
    out = np.empty((n_reads, model.n_tissues), dtype=np.float32)
    for start in range(0, n_reads, batch_size):
        stop = min(start + batch_size, n_reads)
        dna, meth = tables.batch(window_idx[start:stop], calls[start:stop])
        # tokens cross to the device as uint8 and are widened there
        dna_t = torch.from_numpy(dna).to(device).long()
        meth_t = torch.from_numpy(meth).to(device).long()
        window_t = torch.from_numpy(np.asarray(window_idx[start:stop], dtype=np.int64)).to(device)
        with autocast_context(device, precision):
            logits = model(dna_t, meth_t, window_t)
        out[start:stop] = logits.float().cpu().numpy()
        if progress is not None:
            progress(stop - start)
    model.train(was_training)
    return out

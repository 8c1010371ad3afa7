"""Batched scoring of reads given as (window index, packed calls) rows.

:func:`predict_logits` runs a model over rows in batches; :func:`score_rows` is the one scorer of
evaluate, calibrate, predict, deconvolve and the benchmark: it rebuilds the checkpoint's model,
chooses the device, scores each distinct (window, pattern) row once and hands every row its logits.
Reads repeat (short fragments over a few CpGs take few patterns), so deduplication spares most of
the forward passes, and it changes no number: a row's logits do not depend on the other rows.
"""

from __future__ import annotations

import numpy as np
import torch

from tissuebert.constants import N_TOKENS
from tissuebert.data.tokens import TokenTables
from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.inference.device import autocast_context, resolve_device, resolve_precision
from tissuebert.model.tissuebert import TissueBERT
from tissuebert.progress import counter
from tissuebert.store.panel import Panel

# On CPU a forward pass is fastest when one chunk's activations (rows x tokens x hidden) stay
# around this many elements: ~20 rows for the paper model, ~160 for the tiny one (measured:
# the paper model scores 167 rows/s in chunks of 32 and 73 rows/s in chunks of 256, bf16).
CPU_CHUNK_ELEMENTS = 1_500_000


def inference_chunk(model: TissueBERT, batch_size: int, device: torch.device, length: int) -> int:
    """Rows per forward pass: ``batch_size``, capped on CPU so that activations stay cache-sized."""
    if device.type != "cpu":
        return batch_size
    hidden = model.pos_emb.embedding_dim
    return max(8, min(batch_size, CPU_CHUNK_ELEMENTS // (length * hidden)))


@torch.no_grad()
def predict_logits(model: TissueBERT, tables: TokenTables, window_idx: np.ndarray, calls: np.ndarray, *,
                   batch_size: int = 256, device: torch.device | str = "cpu", precision: str = "auto",
                   progress=None) -> np.ndarray:
    """(R,) windows + (R, B) packed calls -> (R, n_tissues) float32 logits (model in eval mode).

    ``precision`` ``auto`` is bf16 autocast where the device multiplies bf16 natively (see
    :func:`~tissuebert.inference.device.resolve_precision`); on CPU rows go through the model in
    cache-sized chunks.
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


def unique_rows(window_idx: np.ndarray, calls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse) of the distinct (window, packed calls) rows, as ``np.unique`` returns them:
    ``first`` (U,) indexes one copy of each distinct row (in key order), ``inverse`` (R,) says which."""
    window = np.asarray(window_idx).astype("<u8")
    calls = np.asarray(calls, np.uint8)
    # one fixed-width byte string per row (8 bytes of window index + the packed calls): a 1-D
    # unique over void keys is much faster than np.unique(axis=0) over byte columns
    rows = np.ascontiguousarray(np.concatenate([window[:, None].view(np.uint8), calls], axis=1))
    keys = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def score_rows(checkpoint: Checkpoint, panel: Panel, window_idx: np.ndarray, calls: np.ndarray, *,
               batch_size: int | None = None, device: str | None = None, precision: str = "auto",
               model: TissueBERT | None = None, what: str = "scoring reads", unit: str = "rows") -> np.ndarray:
    """(R, T) float32 logits of the checkpoint's model (or ``model``) for rows on ``panel``.

    The caller checks that ``panel`` is the checkpoint's (its error says against what). Distinct
    rows go through the model in order of first appearance, so an input without repeats (a
    cohort's collapsed rows) runs in exactly the batches it would without deduplication.
    """
    window_idx = np.asarray(window_idx, np.int64)
    first, inverse = unique_rows(window_idx, calls)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    first, inverse = first[order], rank[inverse]  # distinct rows in order of first appearance
    dev = resolve_device(device)
    model = (model or checkpoint.model()).to(dev)
    with counter(what, int(first.shape[0]), unit) as advance:
        logits = predict_logits(model, TokenTables(panel), window_idx[first], np.asarray(calls)[first],
                                batch_size=batch_size or checkpoint.config.eval.batch_size, device=dev,
                                precision=precision, progress=advance)
    return logits[inverse]

"""Where and at what precision a model runs: the one device rule and the one precision rule.

Evaluation, deconvolution, the benchmark and training each used to pick their device their own
way; they all ask :func:`resolve_device` now, so ``--device auto`` means the same thing
everywhere, and a torchrun rank gets its own GPU by the same rule.
"""

from __future__ import annotations

import contextlib

import torch

from tissuebert.errors import ConfigError

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
INFER_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str | torch.device | None = "auto", *, local_rank: int | None = None) -> torch.device:
    """``auto`` (or None) -> CUDA when available, else the CPU; anything else as torch reads it.

    ``local_rank``: the torchrun rank on this node, which gets GPU ``cuda:local_rank`` under ``auto``
    (each rank of a multi-GPU run must own one device).
    """
    if device in (None, "auto"):
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda") if local_rank is None else torch.device("cuda", local_rank)
    return torch.device(device)


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


def autocast_context(device: torch.device, precision: str):
    """Autocast for bf16/fp16 (fp16 only on CUDA; on CPU it falls back to bf16), nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = _AUTOCAST[precision]
    if device.type == "cpu" and dtype is torch.float16:
        dtype = torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)

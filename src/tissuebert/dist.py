"""Process group setup for DDP under torchrun (gloo on CPU, NCCL on GPU) and small helpers.

A single process (no torchrun) is world size 1 and every helper is a no-op, so the training
loop has one code path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tissuebert.inference.device import resolve_device
from tissuebert.progress import LOGGER_NAME


@dataclass
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed() -> DistInfo:
    """Read torchrun's environment; initialise the process group when there are several ranks."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device("auto", local_rank=local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if rank != 0:  # only rank 0 reports; the others speak up for warnings and errors only
        logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def teardown_distributed(info: DistInfo, *, clean: bool = True) -> None:
    """Destroy the process group; ``clean``: every rank got here (the caller passed a barrier).

    A rank that exits while its process group is alive can abort at interpreter shutdown
    ("terminate called without an active exception") and turn a finished run into a failed job.
    After an error there is no barrier (the other ranks may never reach it).
    """
    if info.enabled and dist.is_initialized():
        if clean and info.device.type == "cuda":
            torch.cuda.synchronize(info.device)
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a few floats over ranks (float64 so counts stay exact)."""
    if not info.enabled:
        return list(values)
    # gloo reduces CPU tensors; NCCL needs them on the GPU
    tensor = torch.tensor(values, dtype=torch.float64, device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def all_gather_cat(tensors: list[torch.Tensor], info: DistInfo) -> list[torch.Tensor]:
    """Each tensor concatenated (dim 0) over the ranks, in rank order; every rank's must have the same shape."""
    if not info.enabled:
        return list(tensors)
    out = []
    for tensor in tensors:
        parts = [torch.empty_like(tensor) for _ in range(info.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        out.append(torch.cat(parts))
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()

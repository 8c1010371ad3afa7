"""Micro-batches as device tensors, in order, optionally prepared ahead by one thread.

On a GPU a background thread draws the next batches (numpy releases the GIL in its gathers)
into pinned memory while the GPU runs the current step; on the CPU the batch is drawn inline,
because a thread would only compete with the model for the same cores. Worker processes are
never used: copying whole batches between processes costs more than drawing them.
"""

from __future__ import annotations

import queue
import threading

import torch

from tissuebert.data.sampler import TrainSampler

PREFETCH_DEPTH = 3  # batches drawn ahead of the GPU


class BatchStream:
    """Yields (dna, meth, labels, window) tensors for micro-batches first_step .. first_step + n_steps - 1."""

    def __init__(self, sampler: TrainSampler, *, epoch: int, first_step: int, n_steps: int, batch_size: int,
                 rank: int, device: torch.device, prefetch: bool | None = None) -> None:
        self.sampler, self.epoch, self.batch_size, self.rank = sampler, epoch, batch_size, rank
        self.device = device
        self.steps = range(first_step, first_step + n_steps)
        self._cursor = 0
        self.prefetch = device.type == "cuda" if prefetch is None else prefetch
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _make(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = self.sampler.batch(self.epoch, step, self.batch_size, self.rank)
        tensors = (torch.from_numpy(batch.dna), torch.from_numpy(batch.meth), torch.from_numpy(batch.labels),
                   torch.from_numpy(batch.window_idx))
        if self.device.type == "cuda":
            tensors = tuple(t.pin_memory() for t in tensors)
        return tensors

    def _worker(self) -> None:
        try:
            for step in self.steps:
                item = self._make(step)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # surfaced in next() on the training thread
            self._queue.put(exc)

    def __enter__(self) -> "BatchStream":
        if self.prefetch and len(self.steps):
            self._queue = queue.Queue(maxsize=PREFETCH_DEPTH)
            self._thread = threading.Thread(target=self._worker, name="tissuebert-batches", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next micro-batch: (B, 148) dna and meth token ids, (B,) labels, (B,) window indices,
        all int64 on the device."""
        if self._cursor >= len(self.steps):
            raise IndexError("batch stream exhausted")
        if self._queue is not None:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
        else:
            item = self._make(self.steps[self._cursor])
        self._cursor += 1
        # uint8 crosses the bus (8x less than int64); the widening happens on the device
        return tuple(t.to(self.device, non_blocking=True).long() for t in item)

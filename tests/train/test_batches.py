"""The batch stream: same micro-batches in the same order, with or without the prefetch thread."""

from __future__ import annotations

import pytest
import torch

from tissuebert.data.sampler import TrainSampler
from tissuebert.store.store import Store
from tissuebert.train.batches import BatchStream


def test_prefetch_thread_yields_the_inline_batches(marker_store):
    sampler = TrainSampler(Store.open(marker_store), seed=5, cpg_dropout=0.05, in_memory=True)
    kwargs = dict(epoch=1, first_step=6, n_steps=7, batch_size=16, rank=0, device=torch.device("cpu"))
    with BatchStream(sampler, prefetch=False, **kwargs) as inline, BatchStream(sampler, prefetch=True, **kwargs) as ahead:
        for step in range(6, 13):
            a, b = inline.next(), ahead.next()
            expected = sampler.batch(1, step, 16)
            assert torch.equal(a[1], b[1]) and torch.equal(a[1], torch.from_numpy(expected.meth).long())
            assert torch.equal(a[3], b[3]) and torch.equal(a[3], torch.from_numpy(expected.window_idx).long())
            assert a[0].dtype == torch.int64 and a[0].shape == (16, 148)
        with pytest.raises(IndexError):
            inline.next()

"""The vectorised tissue-balanced sampler: purity, balance, reference equality, dropout, filters."""

from __future__ import annotations

import numpy as np
import pytest

from tissuebert.constants import METH_NONE
from tissuebert.data import sampler as sampler_module
from tissuebert.data.sampler import TrainSampler, batch_rng
from tissuebert.store.sample import unpack_calls
from tissuebert.testing.reference import ItemDataset, reference_batch


def test_batch_is_a_pure_function_of_seed_epoch_step_rank(unbalanced):
    first = TrainSampler(unbalanced, seed=7, cpg_dropout=0.05, in_memory=True)
    again = TrainSampler(unbalanced, seed=7, cpg_dropout=0.05, in_memory=True)
    a, b = first.batch(2, 5, 64, rank=1), again.batch(2, 5, 64, rank=1)
    for key in ("dna", "meth", "labels", "file_pos", "window_idx", "row"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    first.batch(0, 0, 64)  # drawing other batches in between changes nothing
    assert np.array_equal(first.batch(2, 5, 64, rank=1).meth, a.meth)
    for other in (first.batch(2, 6, 64, rank=1), first.batch(2, 5, 64, rank=0), first.batch(3, 5, 64, rank=1),
                  TrainSampler(unbalanced, seed=8, in_memory=True).batch(2, 5, 64, rank=1)):
        assert not np.array_equal(other.row, a.row)


def test_tissue_balanced_file_level_draws(unbalanced):
    sampler = TrainSampler(unbalanced, seed=1, in_memory=True)
    assert sampler.class_prior == [0.5, 0.5]
    n = 40_000
    batch = sampler.batch(0, 0, n)
    # binomial sd of a share at n = 40k is <= 0.0025: 0.015 is a 6-sd band
    assert np.mean(batch.labels == 0) == pytest.approx(0.5, abs=0.015)
    files_a = [i for i, rec in enumerate(sampler.samples) if rec.tissue == "a"]
    share = np.bincount(batch.file_pos, minlength=4)[files_a] / n
    assert share == pytest.approx([1 / 6] * 3, abs=0.015)  # each of the 3 files of "a": 1/3 of half
    # windows: uniform among the windows a file covers, whatever their read counts
    only = batch.file_pos == files_a[0]
    covered = np.flatnonzero(np.diff(unbalanced.reads(sampler.samples[files_a[0]]).window_ptr))
    counts = np.bincount(batch.window_idx[only], minlength=12)[covered]
    expected = only.sum() / covered.size
    assert np.all(np.abs(counts - expected) < 6 * np.sqrt(expected))  # Poisson 6-sd band per window
    # reads: uniform within their window
    reads = unbalanced.reads(sampler.samples[files_a[0]])
    w = covered[0]
    in_w = only & (batch.window_idx == w)
    rows = batch.row[in_w]
    assert np.all((rows >= reads.window_ptr[w]) & (rows < reads.window_ptr[w + 1]))
    per_row = np.bincount(rows - reads.window_ptr[w], minlength=int(np.diff(reads.window_ptr)[w]))
    assert per_row.min() > 0  # ~30 reads, ~300 draws: every read is drawn


@pytest.mark.parametrize("in_memory", [True, False])
def test_vectorised_batches_equal_the_per_item_reference(unbalanced, in_memory):
    sampler = TrainSampler(unbalanced, seed=11, in_memory=in_memory)
    dataset = ItemDataset(unbalanced)
    try:
        for epoch, step, rank in ((0, 0, 0), (1, 17, 0), (4, 3, 1)):
            dna, meth, labels = reference_batch(dataset, seed=11, epoch=epoch, step=step, batch_size=96, rank=rank)
            fast = sampler.batch(epoch, step, 96, rank)
            assert np.array_equal(fast.dna, dna) and np.array_equal(fast.meth, meth)
            assert np.array_equal(fast.labels, labels)
    finally:
        dataset.close()


def test_memory_mapped_equals_in_ram(unbalanced):
    ram = TrainSampler(unbalanced, seed=3, cpg_dropout=0.05, in_memory=True)
    mapped = TrainSampler(unbalanced, seed=3, cpg_dropout=0.05, in_memory=False)
    assert isinstance(mapped._calls_per_file[0], np.memmap)
    a, b = ram.batch(1, 2, 500), mapped.batch(1, 2, 500)
    assert np.array_equal(a.meth, b.meth) and np.array_equal(a.row, b.row)


def test_cpg_dropout_only_hides_real_calls(unbalanced):
    clean = TrainSampler(unbalanced, seed=2, cpg_dropout=0.0, in_memory=True).batch(0, 9, 8000)
    dropped = TrainSampler(unbalanced, seed=2, cpg_dropout=0.05, in_memory=True).batch(0, 9, 8000)
    assert np.array_equal(clean.row, dropped.row)  # indices are drawn before the dropout mask
    real = clean.meth != METH_NONE
    changed = clean.meth != dropped.meth
    assert not np.any(changed & ~real)  # 'no call' stays 'no call'
    assert np.all(dropped.meth[changed] == METH_NONE)  # a call is hidden, never flipped
    # ~8000 reads x ~3 calls: the sd of the rate is ~0.0015, the band 0.01 is > 6 sd
    assert changed.sum() / real.sum() == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize("in_memory", [True, False])
def test_min_cpgs_filters_reads(unbalanced, in_memory):
    calls_per_read = []
    for rec in unbalanced.samples("train"):
        codes = unpack_calls(unbalanced.reads(rec).calls)
        calls_per_read.append((codes != METH_NONE).sum(axis=1))
    calls_per_read = np.concatenate(calls_per_read)
    assert (calls_per_read < 3).any() and (calls_per_read >= 3).any()  # the filter has work to do
    sampler = TrainSampler(unbalanced, seed=4, min_cpgs=3, in_memory=in_memory)
    assert sampler.n_reads == int((calls_per_read >= 3).sum())
    batch = sampler.batch(0, 0, 4000)
    assert ((batch.meth != METH_NONE).sum(axis=1) >= 3).all()
    # the drawn rows really are those reads: re-read their calls from the files
    for f in np.unique(batch.file_pos):
        codes = unpack_calls(np.asarray(unbalanced.reads(sampler.samples[f]).calls)[batch.row[batch.file_pos == f]])
        assert ((codes != METH_NONE).sum(axis=1) >= 3).all()


def test_steps_per_epoch_is_one_pass_capped(unbalanced):
    sampler = TrainSampler(unbalanced, seed=0, in_memory=True)
    assert sampler.n_reads == 4 * 400
    assert sampler.steps_per_epoch(batch_size=32, accum_steps=2, world_size=2) == 1600 // 128
    assert sampler.steps_per_epoch(batch_size=1, accum_steps=1, world_size=1) == 1600
    assert sampler.steps_per_epoch(batch_size=4096, accum_steps=4, world_size=1) == 1
    assert sampler.steps_per_epoch(batch_size=8, accum_steps=2, world_size=3) == 1600 // 48
    sampler.n_reads = 10**6  # one pass would be 10**6 steps: capped
    assert sampler.steps_per_epoch(batch_size=1, accum_steps=1, world_size=1) == 5000


def test_batch_rng_takes_the_seed_modulo_2_32():
    # numpy seeds are unbounded; the batch stream keeps the low 32 bits of the run's seed
    draws = batch_rng(2**32 + 5, 1, 2, 3).random(4)
    np.testing.assert_array_equal(draws, np.random.default_rng([5, 1, 2, 3]).random(4))


def test_available_ram_is_free_pages_times_page_size(monkeypatch):
    monkeypatch.setattr(sampler_module.os, "sysconf", {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}.__getitem__)
    assert sampler_module.available_ram_bytes() == 4_096_000

    def unsupported(name):
        raise ValueError(name)

    monkeypatch.setattr(sampler_module.os, "sysconf", unsupported)
    assert sampler_module.available_ram_bytes() == 0  # unknown: memory-map rather than risk RAM


def test_a_cumulative_weight_ending_below_one_never_draws_past_the_last_file(unbalanced):
    sampler = TrainSampler(unbalanced, seed=3, in_memory=True)
    sampler._cum_weight = sampler._cum_weight * 0.5  # the rounding case, exaggerated
    batch = sampler.batch(0, 0, 512)
    assert batch.file_pos.max() == len(sampler.samples) - 1

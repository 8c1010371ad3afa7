"""One rule for which reads count (issue 11 item 5): training and evaluation both count the
read's own calls on its window's CpGs, not the window's CpGs.

Store layout (the tiny panel: 12 windows of 6 CpGs). Each sample holds 60 reads, 12 each with
1, 2, 3, 4 and 6 calls::

    calls   old evaluation rule (window CpGs, 6 >= 3)   training sampler / the rule
    1, 2    kept                                        dropped
    3, 4, 6 kept                                        kept
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import tinystore
from tissuebert.constants import METH_M, METH_NONE, METH_U
from tissuebert.data.eligibility import calls_in_window
from tissuebert.data.eval_set import build_eval_reads
from tissuebert.data.sampler import TrainSampler
from tissuebert.store.builder import add_sample, assemble_manifest, ensure_panel
from tissuebert.store.manifest import SampleRecord
from tissuebert.store.sample import pack_calls
from tissuebert.store.store import Store

MIN_CPGS = 3
KINDS = (1, 2, 3, 4, 6)


def _reads(rng: np.random.Generator, call_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 reads: (R,) window, (R, B) packed calls, (R,) real calls in the window."""
    kinds = [KINDS[i % len(KINDS)] for i in range(60)]
    window = rng.integers(0, tinystore.N_WINDOWS, size=60)
    codes = np.full((60, call_bytes * 4), METH_NONE, dtype=np.uint8)  # (R, 8) slots
    n_real = np.zeros(60, dtype=np.int64)
    for r, k in enumerate(kinds):
        slots = rng.choice(6, size=k, replace=False)
        codes[r, slots] = rng.choice([METH_U, METH_M], size=k)
        n_real[r] = k
    order = np.argsort(window, kind="stable")
    return window[order], pack_calls(codes, call_bytes)[order], n_real[order]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("eligibility") / "store"
    panel = tinystore.make_panel()
    ensure_panel(root, panel)
    rng = np.random.default_rng(4)
    ids, real = [], {}
    for tissue_id, tissue in enumerate(tinystore.TISSUES):
        for split in ("train", "test"):
            sid = f"{tissue}_{split}"
            window, packed, n_real = _reads(rng, panel.call_bytes)
            rec = SampleRecord(sample_id=sid, tissue=tissue, tissue_id=tissue_id, split=split, file="", n_reads=0,
                               n_windows_covered=0, sha256="")
            add_sample(root, panel=panel, record=rec, window_idx=window, calls=packed)
            ids.append(sid)
            real[sid] = n_real
    assemble_manifest(root, tissues=tinystore.TISSUES, sample_ids=ids, min_cpgs=1)
    return Store.open(root), real


def test_calls_in_window_counts_the_reads_own_calls(store):
    store, real = store
    for rec in store.samples():
        reads = store.reads(rec)
        np.testing.assert_array_equal(calls_in_window(store.panel, reads.window_idx, reads.calls), real[rec.sample_id])


def test_evaluation_and_training_count_the_same_reads_at_min_cpgs_3(store):
    store, real = store
    reads = build_eval_reads(store, "test", max_reads_per_sample=None, seed=0, min_cpgs=MIN_CPGS)
    total = sum(store.reads(rec).n_reads for rec in store.samples("test"))
    expected = sum(int((real[rec.sample_id] >= MIN_CPGS).sum()) for rec in store.samples("test"))
    # 36 of each sample's 60 reads count: the old evaluation rule (window CpGs, 6 >= 3) kept all 180
    assert (expected, total) == (108, 180)
    assert reads.n_reads == expected
    assert np.all(calls_in_window(store.panel, reads.window_idx, reads.calls) >= MIN_CPGS)
    for in_memory in (True, False):
        sampler = TrainSampler(store, split="test", min_cpgs=MIN_CPGS, in_memory=in_memory, seed=0)
        assert sampler.n_reads == expected
        batch = sampler.batch(0, 0, 20_000)  # ~185 draws per eligible read: every one is drawn
        drawn = {(pos, int(w), bytes(c)) for pos, w, c in
                 zip(batch.file_pos, batch.window_idx, sampler.gather_calls(batch.file_pos, batch.row))}
        scored = {(int(p), int(w), bytes(c)) for p, w, c in zip(reads.sample_pos, reads.window_idx, reads.calls)}
        # same files in the same order (one test sample per tissue): the same set of reads
        assert [r.sample_id for r in sampler.samples] == [r.sample_id for r in reads.samples]
        assert drawn == scored

"""The sampler's whole-split passes (data/sampler.py: ``split_features``, ``call_tally``), which the
count route and the fragment-state atlas count before step 0, checked against counts made with
dicts and loops straight from the sample files (issue 17: a whole-module mutation run of sampler.py
left 154 mutants of these two functions alive, the map's tests drawing batches only)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.support.atlas import calls_from_files
from tissuebert.data.sampler import TrainSampler
from tissuebert.errors import StoreError
from tissuebert.testing.synthetic import build_marker_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    beta = np.array([[0.9, 0.2, 0.5, 0.1, 0.7], [0.1, 0.8, 0.5, 0.9, 0.3], [0.5, 0.5, 0.1, 0.6, 0.2]])
    return build_marker_store(tmp_path_factory.mktemp("split") / "s", tissues=("a", "b", "c"), n_windows=5,
                              reads_per_sample=40, beta=beta, seed=11, splits={"train": (2, 1, 2), "val": 1})


def _by_hand(store, min_cpgs: int):
    """[(tissue, window, {(panel CpG, call)})] of every training read with >= min_cpgs calls, in file order."""
    return [(t, w, set(calls)) for w, t, calls in calls_from_files(store, "train", min_cpgs)]


@pytest.mark.parametrize("min_cpgs, chunk", [(1, None), (1, 7), (2, 1), (3, 5)])
def test_split_features_yield_every_eligible_read_once(store, min_cpgs, chunk):
    want = _by_hand(store, min_cpgs)
    sampler = TrainSampler(store, min_cpgs=min_cpgs)
    got = []
    for tissue, window, feature, valid in (sampler.split_features() if chunk is None else sampler.split_features(chunk)):
        assert window.shape[0] <= (chunk or 1 << 16) and feature.shape == valid.shape == (window.shape[0], store.panel.max_cpgs)
        for w, f, v in zip(window.tolist(), feature, valid):
            got.append((tissue, w, {(int(x) // 2, int(x) % 2) for x in f[v]}))
    assert got == want and sampler.n_reads == len(want)


@pytest.mark.parametrize("chunk", [None, 3])
def test_call_tally_counts_every_call_of_every_eligible_read(store, chunk):
    counts = Counter()
    for tissue, _, calls in _by_hand(store, 2):
        for g, c in calls:
            counts[2 * g + c, tissue] += 1
    n_features = 2 * int(store.panel.cpg_ptr[-1]) + 1
    want = np.zeros((n_features, 3), dtype=np.float32)
    for (f, t), n in counts.items():
        want[f, t] = n
    sampler = TrainSampler(store, min_cpgs=2)
    tally = sampler.call_tally() if chunk is None else sampler.call_tally(chunk)
    assert tally.dtype == np.float32 and tally.shape == (n_features, 3)
    np.testing.assert_array_equal(tally, want)
    assert tally[-1].sum() == 0  # the padding row


def test_call_tally_refuses_counts_float32_cannot_hold(store, monkeypatch):
    sampler = TrainSampler(store)

    def one_feature(n):
        def split_features(chunk=1 << 16):
            yield 0, np.zeros(n, np.int64), np.zeros((n, 1), np.int64), np.ones((n, 1), bool)
        return split_features

    monkeypatch.setattr(sampler, "split_features", one_feature(2**24 - 1))
    assert sampler.call_tally()[0, 0] == 2**24 - 1  # the largest exact count
    for n in (2**24, 2**24 + 1):
        monkeypatch.setattr(sampler, "split_features", one_feature(n))
        with pytest.raises(StoreError, match="passes 2\\^24"):
            sampler.call_tally()

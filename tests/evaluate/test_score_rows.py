"""inference/: the one scorer (distinct rows once, every row its logits), the typed Checkpoint
(round trip through the unchanged on-disk dict, refusal of another tissue list) and the device rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support import tinystore
from tissuebert.constants import CKPT
from tissuebert.data.tokens import TokenTables
from tissuebert.errors import CheckpointError
from tissuebert.inference import predict
from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.inference.device import resolve_device
from tissuebert.model.tissuebert import build_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    store = tinystore.build_store(tmp_path_factory.mktemp("score") / "store", reads_per_sample=200)
    config = tinystore.tiny_config()
    torch.manual_seed(0)
    model = build_model(config.model, len(store.tissues), store.panel).eval()
    return store, Checkpoint(tinystore.checkpoint_state(model, config, store, 0), "tiny.pt")


def _spy(monkeypatch) -> list[np.ndarray]:
    """Record the windows of the rows that reach the model."""
    seen, real = [], predict.predict_logits

    def spy(model, tables, window_idx, calls, **kw):
        seen.append(np.array(window_idx))
        return real(model, tables, window_idx, calls, **kw)

    monkeypatch.setattr(predict, "predict_logits", spy)
    return seen


def test_distinct_rows_are_scored_once_and_every_row_gets_its_logits(setup, monkeypatch):
    store, ckpt = setup
    reads = store.reads(store.samples("test")[0])
    window = reads.window_idx.astype(np.int64)
    calls = np.asarray(reads.calls)
    # the first 50 reads again, in reverse, between the others: repeats the scorer must not rescore
    order = np.concatenate([np.arange(100), np.arange(50)[::-1], np.arange(100, len(window))])
    window, calls = window[order], calls[order]
    n_distinct = len(np.unique(np.concatenate([window[:, None].view(np.uint8), calls], axis=1), axis=0))
    assert n_distinct < len(window)
    seen = _spy(monkeypatch)
    got = predict.score_rows(ckpt, store.panel, window, calls, precision="fp32")
    assert len(seen) == 1 and len(seen[0]) == n_distinct
    # every row as if scored on its own: the plain batched forward over all rows, repeats included
    want = predict.predict_logits(ckpt.model(), TokenTables(store.panel), window, calls, precision="fp32")
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(got[100:150], got[:50][::-1])  # a repeat gets its first copy's logits


def test_rows_without_repeats_reach_the_model_as_given(setup, monkeypatch):
    store, ckpt = setup
    reads = store.reads(store.samples("val")[0])
    first, _ = predict.unique_rows(reads.window_idx, reads.calls)
    keep = np.sort(first)[::-1]  # distinct rows, in an order that is not the key order
    seen = _spy(monkeypatch)
    predict.score_rows(ckpt, store.panel, reads.window_idx[keep], np.asarray(reads.calls)[keep], precision="fp32")
    np.testing.assert_array_equal(seen[0], reads.window_idx[keep])  # same rows, same order: same batches


def test_checkpoint_round_trip_keeps_the_dict_format(setup, tmp_path):
    store, ckpt = setup
    path = tmp_path / "c.pt"
    ckpt.save(path)
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert isinstance(raw, dict) and raw[CKPT.TISSUES] == store.tissues  # what older versions read and wrote
    again = Checkpoint.load(path)
    assert again.name == str(path) and again.tissues == store.tissues and again.panel_hash == store.panel_hash
    assert again.config == ckpt.config and Checkpoint.of(again) is again
    assert Checkpoint.of(raw).state is raw
    again.check_compatible(tissues=store.tissues, panel_hash=store.panel_hash)
    with pytest.raises(CheckpointError, match=r"only in checkpoint: \['Lung'\]"):
        again.check_compatible(tissues=["Blood", "Liver"], panel_hash=store.panel_hash)
    with pytest.raises(CheckpointError, match="panel hash"):
        again.check_compatible(tissues=store.tissues, panel_hash="0" * 16, against="panel of the input")


def test_one_device_rule():
    cuda = torch.cuda.is_available()
    assert resolve_device("auto") == resolve_device(None) == torch.device("cuda" if cuda else "cpu")
    # a torchrun rank owns the GPU of its local rank; without CUDA every rank runs on the CPU
    assert resolve_device("auto", local_rank=1) == (torch.device("cuda", 1) if cuda else torch.device("cpu"))
    assert resolve_device("cpu", local_rank=1) == torch.device("cpu")

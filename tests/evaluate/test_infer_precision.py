"""Inference: precision resolution, CPU chunking and their effect on the logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support import tinystore
from tissuebert.data.tokens import TokenTables
from tissuebert.errors import ConfigError
from tissuebert.inference import predict as infer
from tissuebert.inference.device import native_bf16, resolve_precision
from tissuebert.inference.predict import inference_chunk, predict_logits
from tissuebert.model.tissuebert import TissueBERT
from tissuebert.store.sample import pack_calls


def _reads(n: int, seed: int = 0):
    panel = tinystore.make_panel()
    rng = np.random.default_rng(seed)
    window = rng.integers(0, tinystore.N_WINDOWS, n)
    codes = rng.integers(0, 3, (n, len(tinystore.OFFSETS))).astype(np.uint8)  # U, M or no call
    return TokenTables(panel), window, pack_calls(codes, (len(tinystore.OFFSETS) + 3) // 4)


def _model(hidden: int = 32) -> TissueBERT:
    torch.manual_seed(0)
    model = TissueBERT(n_tissues=3, n_layers=2, hidden=hidden, n_heads=4, ffn=64, head_hidden=16).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu)


def test_cpu_chunk_follows_the_activation_budget():
    cpu = torch.device("cpu")
    # 148 tokens x 512 hidden: 1.5 M elements / 75,776 per row -> 19 rows; never above batch_size
    assert inference_chunk(_model(hidden=512), 256, cpu, 148) == infer.CPU_CHUNK_ELEMENTS // (148 * 512) == 19
    assert inference_chunk(_model(hidden=32), 64, cpu, 148) == 64
    # an 8192-wide model only to read its width: built on the meta device, it allocates nothing
    with torch.device("meta"):
        wide = TissueBERT(n_tissues=3, n_layers=1, hidden=8192, n_heads=4, ffn=64, head_hidden=16)
    assert inference_chunk(wide, 256, cpu, 148) == 8  # floor (1.5 M // (148 * 8192) = 1)
    assert inference_chunk(_model(hidden=512), 256, torch.device("meta"), 148) == 256  # accelerators: as asked


def test_chunking_and_precision_keep_the_logits(monkeypatch):
    tables, window, calls = _reads(300)
    model = _model()
    whole = predict_logits(model, tables, window, calls, batch_size=300, precision="fp32")
    # the reference: the model's own forward on all 300 rows at once, no chunking, no autocast
    dna, meth = tables.batch(window, calls)
    with torch.no_grad():
        direct = model(torch.from_numpy(dna).long(), torch.from_numpy(meth).long(), torch.from_numpy(window)).numpy()
    np.testing.assert_allclose(whole, direct, atol=1e-5, rtol=1e-5)
    # the same reads through 7-row chunks: identical up to float32 summation order
    monkeypatch.setattr(infer, "CPU_CHUNK_ELEMENTS", 7 * 148 * 32)
    chunked = predict_logits(model, tables, window, calls, batch_size=300, precision="fp32")
    np.testing.assert_allclose(chunked, whole, atol=1e-5, rtol=1e-5)
    # rows are scored independently: each row equals scoring it alone
    single = np.concatenate([predict_logits(model, tables, window[i:i + 1], calls[i:i + 1], precision="fp32")
                             for i in range(0, 300, 37)])
    np.testing.assert_allclose(single, whole[::37], atol=1e-5, rtol=1e-5)
    # bf16 autocast: close to fp32 (8-bit mantissa) and the same call on nearly every read
    low = predict_logits(model, tables, window, calls, precision="bf16")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        direct_bf16 = model(torch.from_numpy(dna).long(), torch.from_numpy(meth).long(),
                            torch.from_numpy(window)).float().numpy()
    assert np.abs(low - direct).max() < 0.1 * max(1.0, np.abs(direct).max())
    assert (low.argmax(1) == direct.argmax(1)).mean() > 0.95
    # bf16 was really used: the logits differ from fp32 as bf16 autocast makes them differ, and by as much
    assert not np.array_equal(low, whole)
    np.testing.assert_allclose(low, direct_bf16, atol=0.05 * max(1.0, np.abs(direct).max()))

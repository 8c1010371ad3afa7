"""Store primitives: 2-bit call packing, DNA encoding, panel hashing, sample files, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tissuebert.constants import DNA_KMER_OFFSET, DNA_NKMER, KMERS, METH_NONE, N_TOKENS, STORE
from tissuebert.data.tokens import TokenTables
from tissuebert.errors import StoreError
from tissuebert.prepare.encode import cpg_offsets, window_tokens
from tissuebert.store.builder import add_sample, assemble_manifest, ensure_panel
from tissuebert.store.manifest import SampleRecord
from tissuebert.store.panel import Panel, read_panel
from tissuebert.store.sample import pack_calls, read_sample, unpack_calls
from tissuebert.store.store import Store
from tissuebert.store.validate import validate_store


def test_pack_unpack_round_trip_and_layout():
    calls = np.array([[0, 1, 2, 1, 0], [1, 1, 1, 1, 1]], dtype=np.uint8)
    packed = pack_calls(calls, 2)
    # CpG j sits in byte j // 4 at bit 2 * (j % 4): byte 0 of row 0 = 0 | 1<<2 | 2<<4 | 1<<6
    assert packed[0, 0] == 0 + (1 << 2) + (2 << 4) + (1 << 6)
    # unused slots decode as 'no call'
    assert packed[0, 1] == 0 + (2 << 2) + (2 << 4) + (2 << 6)
    np.testing.assert_array_equal(unpack_calls(packed, 5), calls)
    assert (unpack_calls(packed)[:, 5:] == METH_NONE).all()


def test_window_tokens_by_hand():
    seq = "ACG" + "T" * 146 + "N"
    tok = window_tokens(seq)
    assert tok.shape == (N_TOKENS,)
    assert tok[0] == KMERS.index("ACG") + DNA_KMER_OFFSET
    assert tok[1] == KMERS.index("CGT") + DNA_KMER_OFFSET
    assert tok[146] == KMERS.index("TTT") + DNA_KMER_OFFSET
    assert tok[147] == DNA_NKMER  # "TTN"
    # soft-masked bases count as upper case
    np.testing.assert_array_equal(window_tokens(seq.lower()), tok)


def test_cpg_offsets_need_c_inside_token_range():
    seq = list("A" * 150)
    for pos in (0, 10, 147):
        seq[pos], seq[pos + 1] = "C", "G"
    assert cpg_offsets("".join(seq)).tolist() == [0, 10, 147]
    # a CpG with its C at base 148 has no token of its own: it belongs to no window position
    assert cpg_offsets("A" * 148 + "CG").tolist() == []


def _panel(n_windows: int = 3, seed: int = 0) -> Panel:
    rng = np.random.default_rng(seed)
    dna = rng.integers(2, 66, size=(n_windows, N_TOKENS)).astype(np.uint8)
    counts = np.array([2, 0, 5][:n_windows])
    ptr = np.concatenate([[0], np.cumsum(counts)])
    offsets = np.concatenate([np.sort(rng.choice(N_TOKENS, c, replace=False)) for c in counts]).astype(np.uint8)
    return Panel(chroms=["chr1"], chrom_lengths=np.array([10_000]), win_chrom=np.zeros(n_windows, np.int32),
                 win_start=np.arange(n_windows) * 200, win_region=np.arange(n_windows, dtype=np.int32), dna=dna,
                 cpg_ptr=ptr, cpg_offset=offsets, cpg_index=np.arange(1, ptr[-1] + 1),
                 reg_chrom=np.zeros(n_windows, np.int32), reg_start=np.arange(n_windows) * 200,
                 reg_end=np.arange(n_windows) * 200 + 150, reg_name=[f"r{i}" for i in range(n_windows)])


def test_meth_tokens_place_calls_at_cpg_offsets():
    panel = _panel()
    tables = TokenTables(panel)
    calls = pack_calls(np.array([[1, 0, 2, 2, 2], [0, 1, 1, 2, 0]], np.uint8), panel.call_bytes)
    dna, meth = tables.batch(np.array([0, 2]), calls)
    np.testing.assert_array_equal(dna, panel.dna[[0, 2]])
    off0 = panel.cpg_offset[0:2]
    off2 = panel.cpg_offset[2:7]
    expect = np.full((2, N_TOKENS), METH_NONE, np.uint8)
    expect[0, off0] = [1, 0]
    expect[1, off2] = [0, 1, 1, 2, 0]
    np.testing.assert_array_equal(meth, expect)


def test_cpg_dropout_only_removes_real_calls():
    panel = _panel()
    tables = TokenTables(panel)
    calls = pack_calls(np.ones((4000, 5), np.uint8), panel.call_bytes)
    win = np.full(4000, 2)
    _, meth = tables.batch(win, calls, dropout=0.05, rng=np.random.default_rng(0))
    observed = meth[:, panel.cpg_offset[2:7]]
    frac = (observed == METH_NONE).mean()
    # 20,000 Bernoulli(0.05) draws: sd ~0.0015, so +-0.006 is four sd
    assert abs(frac - 0.05) < 0.006
    assert set(np.unique(meth)) <= {1, METH_NONE}


def _build_store(root, panel):
    ensure_panel(root, panel)
    rec = SampleRecord(sample_id="s1", tissue="Liver", tissue_id=0, split="train", file="", n_reads=0,
                       n_windows_covered=0, sha256="")
    calls = pack_calls(np.array([[1, 0], [0, 0], [1, 1]], np.uint8), panel.call_bytes)
    add_sample(root, panel=panel, record=rec, window_idx=np.array([2, 0, 0]), calls=calls)
    assemble_manifest(root, tissues=["Liver"], sample_ids=["s1"], min_cpgs=1)


def test_store_round_trip_and_memmap(tmp_path):
    panel = _panel()
    _build_store(tmp_path / "st", panel)
    store = Store.open(tmp_path / "st", verify_checksums=True)
    assert store.panel.panel_hash() == panel.panel_hash()
    for mmap in (False, True):
        reads = store.reads("s1", mmap=mmap)
        assert reads.window_idx.tolist() == [0, 0, 2]  # sorted by window
        assert reads.window_ptr.tolist() == [0, 2, 2, 3]
        assert unpack_calls(np.asarray(reads.calls), 2)[2].tolist() == [1, 0]
    assert read_panel(tmp_path / "st" / STORE.PANEL).reg_name == ["r0", "r1", "r2"]


def test_validate_catches_a_changed_sample(tmp_path):
    panel = _panel()
    root = tmp_path / "st"
    _build_store(root, panel)
    sample = root / "samples" / "s1.h5"
    data = bytearray(sample.read_bytes())
    data[-1] ^= 0xFF
    sample.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum mismatch"):
        validate_store(root)


def test_validate_catches_wrong_read_count(tmp_path):
    panel = _panel()
    root = tmp_path / "st"
    _build_store(root, panel)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["samples"][0]["n_reads"] = 4
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="holds 3 reads, manifest says 4"):
        validate_store(root, verify_checksums=False)


def test_missing_manifest_says_what_to_do(tmp_path):
    (tmp_path / "st").mkdir()
    with pytest.raises(StoreError, match="prepare"):
        Store.open(tmp_path / "st")


def test_read_sample_missing_file(tmp_path):
    with pytest.raises(StoreError, match="sample file missing"):
        read_sample(tmp_path / "nope.h5")

"""The on-disk format of docs/store_format.md: packed calls, sample files, manifest checks."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tissuebert.constants import STORE
from tissuebert.errors import StoreError
from tissuebert.store.sample import pack_calls, read_sample, unpack_calls, write_sample
from tissuebert.store.validate import validate_store


def test_pack_layout_matches_the_spec():
    # CpG j sits in byte j // 4 at bit 2 * (j % 4): calls [M, U, none, M | U] -> 0b01_10_00_01, 0b10_10_10_00
    packed = pack_calls(np.array([[1, 0, 2, 1, 0]]), call_bytes=2)
    assert packed.tolist() == [[0b01100001, 0b10101000]]
    assert unpack_calls(packed, 5).tolist() == [[1, 0, 2, 1, 0]]
    assert unpack_calls(packed).tolist() == [[1, 0, 2, 1, 0, 2, 2, 2]]  # padding decodes as 'no call'


def test_sample_file_sorted_contiguous_and_memory_mappable(tmp_path):
    calls = pack_calls(np.array([[1, 1], [0, 2], [2, 0]]), 1)
    path = tmp_path / "s.h5"
    write_sample(path, sample_id="s", window_idx=np.array([2, 0, 2]), calls=calls, n_windows=3, panel_hash="abc")
    with h5py.File(path, "r") as f:
        assert f[STORE.CALLS].chunks is None and f[STORE.CALLS].compression is None
        assert f.attrs[STORE.ATTR_PANEL_HASH] == "abc"
    for mmap in (False, True):
        reads = read_sample(path, mmap=mmap)
        assert np.asarray(reads.window_idx).tolist() == [0, 2, 2]
        assert np.asarray(reads.window_ptr).tolist() == [0, 1, 1, 3]
        assert unpack_calls(np.asarray(reads.calls), 2).tolist() == [[0, 2], [1, 1], [2, 0]]


@pytest.fixture
def store(tmp_path):
    from tests.support.tiny import write_tiny
    from tissuebert.prepare import prepare_store

    files = write_tiny(tmp_path / "in")
    return prepare_store(files["sheet"], files["reference"], files["regions"], tmp_path / "store",
                         cpg_index=files["cpg_index"])


def test_validate_accepts_a_prepared_store(store):
    manifest, panel = validate_store(store)
    assert manifest.tissues == ["liver"] and panel.n_windows == 3 and manifest.samples[0].n_reads == 7


def _edit_first_sample(store, **fields) -> None:
    path = store / STORE.MANIFEST
    data = json.loads(path.read_text())
    data["samples"][0].update(fields)
    path.write_text(json.dumps(data))


def test_validate_names_a_wrong_read_count(store):
    _edit_first_sample(store, n_reads=8)
    with pytest.raises(StoreError, match="holds 7 reads, manifest says 8"):
        validate_store(store, verify_checksums=False)


def test_validate_names_a_tissue_id_out_of_range(store):
    _edit_first_sample(store, tissue_id=3)
    with pytest.raises(StoreError, match="tissue 'liver' / id 3 do not match the tissue list"):
        validate_store(store, verify_checksums=False)


def test_at_most_64_bytes_per_stored_read(tmp_path):
    # issue 4: <= 64 bytes per read. The densest possible window (CGCG...) holds 74 CpGs (a C at
    # base 148 has its G outside), so a read costs 4 (window index) + ceil(74 / 4) = 23 bytes.
    from tissuebert.prepare import build_panel

    (tmp_path / "g.fa").write_text(">c\n" + "CG" * 200 + "\n")
    (tmp_path / "r.bed").write_text("c\t0\t150\n")
    panel = build_panel(tmp_path / "g.fa", tmp_path / "r.bed")
    assert panel.max_cpgs == 74 and panel.call_bytes == 19
    assert np.dtype(np.uint32).itemsize + panel.call_bytes <= 64

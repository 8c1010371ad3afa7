"""store/sample.py cases the mutation run (issue 17) showed untested: write_sample's shape check and the
attributes it writes, the sha256 it returns against hashlib on the file's bytes, an empty sample, and
read_sample on a file whose arrays cannot be memory-mapped (chunked, compressed) or lack a dataset.
Every expected value is worked out by hand in the comments or computed by h5py / hashlib directly.

Mutants each test kills (src/tissuebert/store/sample.py, lines as of this file's commit; each applied by
hand to a scratch copy, the test run and failing, then reverted):

- test_write_sample_refuses_calls_that_are_not_one_row_per_read: 69 `calls.ndim != 2` -> `> 2`,
  `or` -> `and`, `calls.shape[0] != window_idx.shape[0]` -> `<`.
- test_write_sample_attributes_and_returned_hash: 62 ReplaceFalseWithTrue (`pseudo_reads: bool = False` ->
  `True`), 81 NumberReplacer (`calls.shape[1]` -> `shape[0]`), 74 `n_windows + 1` -> `+ 2`.
- test_sha256_file_reads_in_chunks: 53 `1 << 22` -> `1 >> 22` (chunk 0: the hash of nothing).
- test_an_empty_sample_reads_back_empty_in_ram_and_mapped, test_a_chunked_compressed_sample_is_read_not_mapped:
  50 NumberReplacer (`window_idx.shape[0]` -> `shape[1]` in `n_reads`).
- test_an_empty_sample_reads_back_empty_in_ram_and_mapped: 90 `offset is None or ds.chunks ...` -> `and`
  (an empty dataset has no offset: memory-mapping it fails).
- test_a_contiguous_sample_is_mapped_only_when_asked: 105 AddNot (`if not mmap`), 90 `ds.chunks is not None`
  -> `is None`, `ds.compression is not None` -> `is None`.
- test_a_sample_without_one_of_its_datasets_is_refused: 103 `key not in f` -> `key in f`.

Killed after the whole-module run (4 of its 17 survivors): test_write_sample_refuses_calls_that_are_not_one_row_per_read,
69 `calls.ndim != 2` -> `<` (3-D calls); test_a_contiguous_sample_is_mapped_only_when_asked, 95 `mmap = False`
-> `True`; test_write_and_read_take_their_options_by_keyword, 61 and 95 `*,` -> `/,`.
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from tissuebert.constants import STORE, STORE_SCHEMA_VERSION
from tissuebert.errors import StoreError
from tissuebert.store.sample import read_sample, sha256_file, write_sample


def test_write_sample_refuses_calls_that_are_not_one_row_per_read(tmp_path):
    with pytest.raises(ValueError, match=r"calls must be \(R, B\) with R = 3, got \(2, 1\)"):
        write_sample(tmp_path / "s.h5", sample_id="s", window_idx=np.array([0, 1, 2]), calls=np.zeros((2, 1)),
                     n_windows=3, panel_hash="h")
    with pytest.raises(ValueError, match=r"got \(3,\)"):
        write_sample(tmp_path / "s.h5", sample_id="s", window_idx=np.array([0, 1, 2]), calls=np.zeros(3),
                     n_windows=3, panel_hash="h")
    with pytest.raises(ValueError, match=r"R = 3, got \(4, 1\)"):  # more rows than reads, too
        write_sample(tmp_path / "s.h5", sample_id="s", window_idx=np.array([0, 1, 2]), calls=np.zeros((4, 1)),
                     n_windows=3, panel_hash="h")
    with pytest.raises(ValueError, match=r"R = 3, got \(3, 1, 2\)"):  # one row per read, but not 2-D
        write_sample(tmp_path / "s.h5", sample_id="s", window_idx=np.array([0, 1, 2]), calls=np.zeros((3, 1, 2)),
                     n_windows=3, panel_hash="h")
    assert not (tmp_path / "s.h5").exists()


def test_write_sample_attributes_and_returned_hash(tmp_path):
    # 2 reads of 3 packed bytes each: call_bytes is the width (3), not the read count (2)
    path = tmp_path / "s.h5"
    digest = write_sample(path, sample_id="liver_1", window_idx=np.array([4, 1]), calls=np.arange(6).reshape(2, 3),
                          n_windows=5, panel_hash="abc", pseudo_reads=True)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    with h5py.File(path, "r") as f:
        assert f.attrs[STORE.ATTR_SCHEMA] == STORE_SCHEMA_VERSION
        assert f.attrs[STORE.ATTR_SAMPLE_ID] == "liver_1"
        assert bool(f.attrs[STORE.ATTR_PSEUDO]) is True
        assert f.attrs[STORE.ATTR_CALL_BYTES] == 3
        assert f[STORE.READ_WINDOW][()].tolist() == [1, 4]  # sorted by window, calls with them
        assert f[STORE.CALLS][()].tolist() == [[3, 4, 5], [0, 1, 2]]
        assert f[STORE.WINDOW_PTR][()].tolist() == [0, 0, 1, 1, 1, 2]  # window w's reads: rows ptr[w]:ptr[w + 1]
    write_sample(path, sample_id="s", window_idx=np.array([0]), calls=np.zeros((1, 1)), n_windows=1, panel_hash="h")
    with h5py.File(path, "r") as f:
        assert bool(f.attrs[STORE.ATTR_PSEUDO]) is False  # real reads unless the caller says otherwise


def test_sha256_file_reads_in_chunks(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 41)  # 10,496 bytes: chunks of 1000 leave a short last one
    assert sha256_file(path, chunk=1000) == sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_empty_sample_reads_back_empty_in_ram_and_mapped(tmp_path):
    path = tmp_path / "s.h5"
    write_sample(path, sample_id="s", window_idx=np.zeros(0, np.uint32), calls=np.zeros((0, 2), np.uint8),
                 n_windows=3, panel_hash="h")
    for mmap in (False, True):
        reads = read_sample(path, mmap=mmap)
        assert reads.n_reads == 0 and np.asarray(reads.calls).shape == (0, 2)
        assert np.asarray(reads.window_ptr).tolist() == [0, 0, 0, 0]


def _hand_written(path, *, chunked: bool, drop: str | None = None) -> None:
    """A sample file written with h5py directly: 3 reads in windows 0, 0, 2 of 3."""
    kw = dict(chunks=True, compression="gzip") if chunked else {}
    data = {STORE.READ_WINDOW: np.array([0, 0, 2], np.uint32), STORE.CALLS: np.array([[1], [2], [3]], np.uint8),
            STORE.WINDOW_PTR: np.array([0, 2, 2, 3], np.int64)}
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            if key != drop:
                f.create_dataset(key, data=value, **kw)


def test_a_chunked_compressed_sample_is_read_not_mapped(tmp_path):
    path = tmp_path / "s.h5"
    _hand_written(path, chunked=True)
    for mmap in (False, True):
        reads = read_sample(path, mmap=mmap)
        assert not isinstance(reads.calls, np.memmap) and reads.n_reads == 3
        assert np.asarray(reads.window_idx).tolist() == [0, 0, 2]
        assert np.asarray(reads.calls).tolist() == [[1], [2], [3]]
        assert np.asarray(reads.window_ptr).tolist() == [0, 2, 2, 3]


def test_a_contiguous_sample_is_mapped_only_when_asked(tmp_path):
    path = tmp_path / "s.h5"
    _hand_written(path, chunked=False)
    mapped, in_ram = read_sample(path, mmap=True), read_sample(path)  # in RAM by default
    assert all(isinstance(a, np.memmap) for a in (mapped.window_idx, mapped.calls, mapped.window_ptr))
    assert not any(isinstance(a, np.memmap) for a in (in_ram.window_idx, in_ram.calls, in_ram.window_ptr))
    assert np.asarray(mapped.calls).tolist() == in_ram.calls.tolist() == [[1], [2], [3]]


@pytest.mark.parametrize("key", [STORE.READ_WINDOW, STORE.CALLS, STORE.WINDOW_PTR])
def test_a_sample_without_one_of_its_datasets_is_refused(tmp_path, key):
    path = tmp_path / "s.h5"
    _hand_written(path, chunked=False, drop=key)
    with pytest.raises(StoreError, match=f"dataset '{key}' missing"):
        read_sample(path)


def test_write_and_read_take_their_options_by_keyword(tmp_path):
    # a positional sample id or mmap flag is refused rather than bound to the wrong parameter
    with pytest.raises(TypeError):
        write_sample(tmp_path / "s.h5", "s", window_idx=np.array([0]), calls=np.zeros((1, 1)), n_windows=1,
                     panel_hash="h")
    _hand_written(tmp_path / "t.h5", chunked=False)
    with pytest.raises(TypeError):
        read_sample(tmp_path / "t.h5", True)

"""read_sample_windows on the hand-drawn .pat of tiny.py: every row checked by value."""

from __future__ import annotations

import numpy as np
import pysam
import pytest

from tests.support.tiny import write_tiny
from tissuebert.prepare import build_panel, read_sample_windows
from tissuebert.store.sample import unpack_calls

# (window, calls) rows of tiny.py's drawing, expanded (counts all 1), in window order
EXPECTED = [(0, [1, 0, 1]), (0, [1, 0, 1]), (0, [2, 2, 1]), (2, [0, 2, 2]), (2, [0, 2, 2]), (2, [0, 2, 2]), (2, [0, 2, 2])]


def _rows(reads):
    codes = unpack_calls(reads.calls, 3)
    return sorted(zip(reads.window_idx.tolist(), map(list, codes.tolist()), reads.counts.tolist()))


@pytest.fixture
def tiny(tmp_path):
    files = write_tiny(tmp_path)
    files["panel"] = build_panel(files["reference"], files["regions"], files["cpg_index"])
    return files


def _bgzip_index(path):
    """bgzip + CSI-index a .pat the way wgbs_tools does (tabix -C -b 2 -e 2)."""
    return pysam.tabix_index(str(path), seq_col=0, start_col=1, end_col=1, csi=True, force=True)


@pytest.mark.parametrize("mode", ["stream", "tabix"])
def test_expanded_rows(tiny, mode):
    path = tiny["pat"] if mode == "stream" else _bgzip_index(tiny["pat"])
    reads = read_sample_windows(path, "pat", tiny["panel"], stream=mode == "stream")
    assert reads.stats["mode"] == mode
    assert _rows(reads) == sorted((w, c, 1) for w, c in EXPECTED)
    assert reads.window_idx.dtype == np.uint32 and reads.calls.dtype == np.uint8
    assert reads.calls.shape == (7, tiny["panel"].call_bytes)
    assert reads.stats["reads_in"] == 6 and reads.stats["rows_below_min_cpgs"] == 1
    assert not reads.pseudo


def test_collapsed_rows_keep_multiplicity(tiny):
    reads = read_sample_windows(tiny["pat"], "pat", tiny["panel"], collapse=True)
    assert _rows(reads) == [(0, [1, 0, 1], 2), (0, [2, 2, 1], 1), (2, [0, 2, 2], 4)]


def test_min_cpgs_two(tiny):
    reads = read_sample_windows(tiny["pat"], "pat", tiny["panel"], min_cpgs=2)
    assert _rows(reads) == [(0, [1, 0, 1], 1), (0, [1, 0, 1], 1)]


def test_max_reads_per_window_caps_each_window(tiny):
    reads = read_sample_windows(tiny["pat"], "pat", tiny["panel"], max_reads_per_window=2, seed=3)
    per_window = np.bincount(reads.window_idx, minlength=3)
    assert per_window.tolist() == [2, 0, 2]
    assert all(row in [(w, c) for w, c in EXPECTED] for row in ((w, c) for w, c, _ in _rows(reads)))
    again = read_sample_windows(tiny["pat"], "pat", tiny["panel"], max_reads_per_window=2, seed=3)
    assert _rows(again) == _rows(reads)  # seeded


@pytest.mark.parametrize("mode", ["stream", "tabix"])
def test_read_spanning_windows_of_separate_fetches(tmp_path, monkeypatch, mode):
    # one read over all five CpGs lands once in each window, also when every window is its own fetch
    import tissuebert.prepare.project as project

    monkeypatch.setattr(project, "CLUSTER_GAP", -200)
    files = write_tiny(tmp_path, pat_lines=["chr1\t1001\tCTCTC\t1"])
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    assert len(project.PanelIndex(panel).clusters("chr1")) == 3
    path = files["pat"] if mode == "stream" else _bgzip_index(files["pat"])
    reads = read_sample_windows(path, "pat", panel, stream=mode == "stream")
    assert _rows(reads) == [(0, [1, 0, 1], 1), (1, [0, 2, 2], 1), (2, [1, 2, 2], 1)]

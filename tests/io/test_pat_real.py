"""The five real Roadmap .pat.gz files of the UXM tutorial (hg19), read three independent ways."""

from __future__ import annotations

import gzip

import numpy as np
import pysam
import pytest

from tissuebert.io.pat import format_pat_line, iter_pat
from tissuebert.prepare import read_sample_windows
from tissuebert.store.panel import Panel
from tissuebert.store.sample import unpack_calls

pytestmark = pytest.mark.shared_data
NAMES = ["Liver_STL011", "Lung_STL002", "Pancreas_STL002", "Pancreas_STL003", "Sigmoid_Colon_STL003"]


def _pat(shared_data, name):
    return shared_data / "UXM_deconv" / "tutorial" / "data" / f"{name}.pat.gz"


@pytest.mark.parametrize("name", NAMES)
def test_reads_and_patterns_round_trip(shared_data, name):
    path = _pat(shared_data, name)
    text = gzip.open(path, "rt").read()
    expected_reads = sum(int(line.split("\t")[3]) for line in text.splitlines())
    records = list(iter_pat(path))
    assert sum(rec[3] for rec in records) == expected_reads
    assert "".join(format_pat_line(*rec[:4]) for rec in records) == text


def _marker_panel(shared_data) -> Panel:
    """One pseudo-window per U25 hg19 marker holding exactly the marker's CpGs (startCpG..endCpG-1).

    There is no hg19 FASTA here, so DNA tokens are left empty: the readers only use CpG indices.
    """
    rows = [ln.split("\t")
            for ln in (shared_data / "UXM_deconv" / "supplemental" / "Atlas.U25.l4.hg19.tsv").read_text().splitlines()[1:]]
    chroms = sorted({r[0] for r in rows}, key=lambda c: (len(c), c))
    rows.sort(key=lambda r: (chroms.index(r[0]), int(r[3])))
    n_cpgs = np.array([int(r[4]) - int(r[3]) for r in rows])
    assert n_cpgs.max() < 148
    ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(n_cpgs, out=ptr[1:])
    return Panel(chroms=chroms, chrom_lengths=np.full(len(chroms), 10**9),
                 win_chrom=np.array([chroms.index(r[0]) for r in rows], np.int32),
                 win_start=np.array([int(r[1]) for r in rows], np.int64), win_region=np.arange(len(rows), dtype=np.int32),
                 dna=np.zeros((len(rows), 148), np.uint8), cpg_ptr=ptr,
                 cpg_offset=np.concatenate([np.arange(n) for n in n_cpgs]).astype(np.uint8),
                 cpg_index=np.concatenate([np.arange(int(r[3]), int(r[4])) for r in rows]).astype(np.int64),
                 reg_chrom=np.zeros(0, np.int32), reg_start=np.zeros(0, np.int64), reg_end=np.zeros(0, np.int64))


def _tabix_rows(path, panel):
    """Independent selection: for each marker, the .pat lines tabix returns over a generous span,
    kept when they give >= 1 call on the marker's CpGs; their sub-patterns, count-weighted."""
    out = []
    with pysam.TabixFile(str(path), index=str(path) + ".csi") as tbx:
        for w in range(panel.n_windows):
            chrom = panel.chroms[panel.win_chrom[w]]
            first, last = panel.cpg_index[panel.cpg_ptr[w]], panel.cpg_index[panel.cpg_ptr[w + 1] - 1]
            if chrom not in tbx.contigs:
                continue
            for rec in tbx.fetch(chrom, max(0, first - 5000), last):
                _, start, pattern, count = rec.split("\t")
                start = int(start)
                sub = "".join(pattern[i - start] if 0 <= i - start < len(pattern) else "." for i in range(first, last + 1))
                if sub.strip("."):
                    out += [(w, sub)] * int(count)
    return sorted(out)


@pytest.mark.parametrize("name", NAMES[:2])
def test_marker_windows_select_the_reads_tabix_selects(shared_data, name):
    panel = _marker_panel(shared_data)
    expected = _tabix_rows(_pat(shared_data, name), panel)
    assert len(expected) > 1000
    for stream in (True, False):
        reads = read_sample_windows(_pat(shared_data, name), "pat", panel, stream=stream)
        codes = unpack_calls(reads.calls)
        got = sorted((int(w), "".join("TC."[c] for c in codes[r, :panel.n_cpgs[w]]))
                     for r, w in enumerate(reads.window_idx))
        assert got == expected

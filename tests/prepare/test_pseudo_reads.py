"""bedMethyl / Bismark .cov / wgbs_tools .beta -> pseudo-reads whose per-CpG counts equal the table.

Counts used below (tiny.py's chr1 CpGs; the C of each at 0-based 100, 110, 130, 250, 400):
CpG     100   110   130   250   400
meth      3     0     2     1     0
total     4     2     2     1     3
window 0 gets max(4, 2, 2) = 4 pseudo-reads, window 1 one, window 2 three.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.tiny import write_tiny
from tissuebert.prepare import build_panel, read_sample_windows
from tissuebert.store.sample import unpack_calls

METH = {100: 3, 110: 0, 130: 2, 250: 1, 400: 0}
TOTAL = {100: 4, 110: 2, 130: 2, 250: 1, 400: 3}


def _write(tmp_path, fmt):
    if fmt == "bedmethyl":  # modkit pileup; CpG 110 reported on the - strand (at its G, 111); an 'h' row ignored
        lines = []
        for c, t in TOTAL.items():
            start, strand = (c + 1, "-") if c == 110 else (c, "+")
            m = METH[c]
            lines.append(f"chr1\t{start}\t{start + 1}\tm\t{t}\t{strand}\t{start}\t{start + 1}\t255,0,0\t"
                         f"{t} {100 * m / t:.2f} {m} {t - m} 0 0 0 0 0")
        lines.append("chr1\t100\t101\th\t4\t+\t100\t101\t255,0,0\t4 50.00 2 2 0 0 0 0 0")
        path = tmp_path / "s.bed"
    elif fmt == "cov":  # Bismark: 1-based; CpG 130 split over its C (131) and G (132) rows
        lines = []
        for c, t in TOTAL.items():
            m = METH[c]
            if c == 130:
                lines += ["chr1\t131\t131\t100\t1\t0", "chr1\t132\t132\t50\t1\t0"]
            else:
                lines.append(f"chr1\t{c + 1}\t{c + 1}\t{100 * m / t:.1f}\t{m}\t{t - m}")
        path = tmp_path / "s.cov"
    else:  # .beta: (meth, total) uint8 pairs for CpG index 1..1005
        table = np.zeros((1005, 2), np.uint8)
        for (c, t), ordinal in zip(TOTAL.items(), range(1001, 1006)):
            table[ordinal - 1] = (METH[c], t)
        path = tmp_path / "s.beta"
        table.tofile(path)
        return path
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("fmt", ["bedmethyl", "cov", "beta"])
def test_pseudo_reads_reproduce_the_counts(tmp_path, fmt):
    files = write_tiny(tmp_path)
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    reads = read_sample_windows(_write(tmp_path, fmt), fmt, panel, seed=7)
    assert reads.pseudo
    assert np.bincount(reads.window_idx, minlength=3).tolist() == [4, 1, 3]
    codes = unpack_calls(reads.calls, 3)
    positions = {0: [100, 110, 130], 1: [250], 2: [400]}
    for w, cpgs in positions.items():
        block = codes[reads.window_idx == w]
        for j, c in enumerate(cpgs):
            assert (block[:, j] == 1).sum() == METH[c] and (block[:, j] != 2).sum() == TOTAL[c]
    again = read_sample_windows(_write(tmp_path, fmt), fmt, panel, seed=7)
    assert np.array_equal(again.calls, reads.calls)


def test_pseudo_reads_capped_per_window(tmp_path):
    files = write_tiny(tmp_path)
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    reads = read_sample_windows(_write(tmp_path, "beta"), "beta", panel, max_reads_per_window=2)
    assert np.bincount(reads.window_idx, minlength=3).tolist() == [2, 1, 2]
    codes = unpack_calls(reads.calls, 3)
    assert (codes[reads.window_idx == 2, 0] == 0).all()  # CpG 400: 0 of 3 methylated stays 0 of 2


def test_bad_beta_size(tmp_path):
    from tissuebert.errors import InputFormatError

    files = write_tiny(tmp_path)
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    (tmp_path / "s.beta").write_bytes(b"\x00" * 5)
    with pytest.raises(InputFormatError, match="not a whole number of"):
        read_sample_windows(tmp_path / "s.beta", "beta", panel)
    (tmp_path / "s.beta").write_bytes(b"\x00" * 20)
    with pytest.raises(InputFormatError, match="CpG index 1005 is beyond the file's 10 CpGs"):
        read_sample_windows(tmp_path / "s.beta", "beta", panel)

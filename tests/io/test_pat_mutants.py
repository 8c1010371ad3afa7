"""io/pat.py cases the mutation run (issue 17) showed untested: the tabix read's look-back window and
overlap test, an empty pattern given straight to pattern_codes, the empty pattern matrix, and how
much of a bad pattern an error quotes. Every expected value is worked out by hand in the comments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam
import pytest

from tissuebert.constants import METH_M, METH_NONE, METH_U
from tissuebert.errors import InputFormatError
from tissuebert.io.pat import fetch_pat, iter_pat, open_indexed_pat, pattern_codes, pattern_matrix

# Reads of chr1 (index of the first CpG, pattern). Asked for CpGs [30, 40] with lookback 2, a read is
# fetched when it starts in [30 - 2, 40] = [28, 40] and kept when its last CpG (start + len - 1) is >= 30.
WINDOW_READS = [
    (1, "C" * 45),  # covers 1..45, but starts 29 CpGs before the range: past the look-back, never fetched
    (27, "CTCTC"),  # covers 27..31, starts one CpG before the look-back window (28): not fetched
    (28, "CC"),  # covers 28..29: fetched, ends before the range: dropped (28 << (2 - 1) = 56 would keep it)
    (28, "CCT"),  # covers 28..30: the first CpG of the look-back window, reaches CpG 30: kept
    (29, "T"),  # covers 29 only: fetched, ends before the range: dropped
    (29, "TC"),  # covers 29..30: kept (29 | (2 - 1) = 29 would wrongly drop it)
    (30, "C"),  # the range's first CpG: kept
    (40, "TT"),  # the range's last CpG: kept
    (41, "C"),  # past the range: not fetched
]
KEPT = [(28, "CCT"), (29, "TC"), (30, "C"), (40, "TT")]


def _indexed(path: Path, lines: list[tuple[str, int, str, int]]) -> Path:
    path.write_text("".join(f"{c}\t{s}\t{p}\t{n}\n" for c, s, p, n in lines))
    return Path(pysam.tabix_index(str(path), seq_col=0, start_col=1, end_col=1, csi=True, force=True))


def test_fetch_keeps_exactly_the_reads_that_start_in_the_look_back_window_and_reach_the_range(tmp_path):
    lines = [("chr1", s, p, 1) for s, p in WINDOW_READS] + [("chr2", 30, "CC", 4)]
    path = _indexed(tmp_path / "s.pat", lines)
    with open_indexed_pat(path) as tbx:
        got = [(r[1], r[2]) for r in fetch_pat(tbx, path, "chr1", 30, 40, lookback=2)]
        assert got == KEPT
        # the same file streamed and filtered by hand gives the same reads
        streamed = [(r[1], r[2]) for r in iter_pat(path)
                    if r[0] == "chr1" and 30 - 2 <= r[1] <= 40 and r[1] + len(r[2]) - 1 >= 30]
        assert streamed == KEPT
        # a wider look-back reaches the read at 27 (and, with 29, the one at 1)
        assert [r[1] for r in fetch_pat(tbx, path, "chr1", 30, 40, lookback=3)] == [27, 28, 29, 30, 40]
        assert [r[1] for r in fetch_pat(tbx, path, "chr1", 30, 40, lookback=29)] == [1, 27, 28, 29, 30, 40]
        # a contig the file does not hold: nothing, not an error; another contig's reads stay out
        assert list(fetch_pat(tbx, path, "chrX", 1, 100)) == []
        assert [r[:4] for r in fetch_pat(tbx, path, "chr2", 30, 30, lookback=2)] == [("chr2", 30, "CC", 4)]


def test_fetch_near_the_start_of_a_contig_clamps_the_look_back_at_zero(tmp_path):
    # asked for CpGs [2, 3] with lookback 1000: the window starts at CpG 1, not before it
    path = _indexed(tmp_path / "s.pat", [("chr1", 1, "CT", 2), ("chr1", 3, "T", 1), ("chr1", 4, "C", 1)])
    with open_indexed_pat(path) as tbx:
        assert [r[:4] for r in fetch_pat(tbx, path, "chr1", 2, 3)] == [("chr1", 1, "CT", 2), ("chr1", 3, "T", 1)]


def test_an_empty_pattern_is_refused_by_pattern_codes_itself():
    with pytest.raises(InputFormatError, match="bad .pat pattern ''"):
        pattern_codes("")
    # one bad character among good ones
    with pytest.raises(InputFormatError):
        pattern_codes("CT.N")
    assert pattern_codes("C.T").tolist() == [METH_M, METH_NONE, METH_U]


def test_pattern_matrix_of_no_patterns_has_one_padding_column():
    codes, lengths = pattern_matrix([])
    assert codes.shape == (0, 1) and codes.dtype == np.uint8
    assert lengths.shape == (0,) and lengths.dtype == np.int64
    codes, lengths = pattern_matrix(["CT", "T.C", "C"])
    assert codes.tolist() == [[METH_M, METH_U, METH_NONE], [METH_U, METH_NONE, METH_M], [METH_M, METH_NONE, METH_NONE]]
    assert lengths.tolist() == [2, 3, 1]


LONG_BAD = "CT" * 20 + "XYZ" + "C" * 30  # 73 characters; the first 40 are "CTCT...CT"


def test_a_bad_pattern_is_quoted_by_its_first_40_characters():
    with pytest.raises(InputFormatError) as err:
        pattern_codes(LONG_BAD)
    assert f"bad .pat pattern {LONG_BAD[:40]!r}: only" in str(err.value)


def test_a_bad_pat_line_quotes_the_first_40_characters_of_its_pattern(tmp_path):
    path = tmp_path / "bad.pat"
    path.write_text(f"chr1\t5\tCC\t1\nchr1\t7\t{LONG_BAD}\t2\n")
    with pytest.raises(InputFormatError) as err:
        list(iter_pat(path))
    assert f"pattern {LONG_BAD[:40]!r} may only hold" in str(err.value)
    assert err.value.line == 2


class _Foreign:
    """What a tabix index of another file makes htslib return: these lines, whatever was asked."""

    contigs = ["chr1"]

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def fetch(self, chrom, start, end):
        return iter(self.lines)


def test_a_half_line_from_a_foreign_index_says_so():
    with pytest.raises(InputFormatError, match=r"does not belong to this file: it points into the middle of a line "
                                               r"\('C\\t2'\)"):
        list(fetch_pat(_Foreign(["C\t2"]), "s.pat.gz", "chr1", 1001, 1005))


def test_a_line_before_the_look_back_window_is_refused_with_the_window_asked_for():
    # lookback 11: the window starts after lo = 1001 - 1 - 11 = 989, i.e. at CpG 990; a line at CpG 5 is
    # before it (a foreign index), and the message gives the window 1-based: 990-1005
    with pytest.raises(InputFormatError, match="asked for chr1:990-1005, it gave chr1:5"):
        list(fetch_pat(_Foreign(["chr1\t5\tCC\t1"]), "s.pat.gz", "chr1", 1001, 1005, lookback=11))
    # the first CpG of the window is accepted
    assert [r[:4] for r in fetch_pat(_Foreign(["chr1\t990\t" + "C" * 12 + "\t1"]), "s.pat.gz", "chr1", 1001, 1005,
                                     lookback=11)] == [("chr1", 990, "C" * 12, 1)]


def test_a_non_integer_index_or_count_is_quoted(tmp_path):
    """Kills (the whole-module run of io/pat.py): the ``except ValueError`` replaced, and the
    message quoting ``cols[1]`` / ``cols[3]`` replaced by another column."""
    path = tmp_path / "s.pat"
    path.write_text("chr1\tx1\tCT\ty2\n")
    with pytest.raises(InputFormatError, match=r"index 'x1' and count 'y2' must be integers") as info:
        list(iter_pat(path))
    assert info.value.line == 1


def test_a_line_with_more_than_four_columns_is_read(tmp_path):
    """A .pat line carries its four columns and may carry more (later wgbs_tools versions and
    converters append fields): the first four are read. Kills ``len(cols) < 4`` -> ``!= 4``."""
    path = tmp_path / "s.pat"
    path.write_text("chr1\t10\tCT.C\t3\textra\n")
    assert [(c, s, p, n) for c, s, p, n, _ in iter_pat(path)] == [("chr1", 10, "CT.C", 3)]

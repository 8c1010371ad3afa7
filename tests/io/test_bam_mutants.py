"""io/bam.py at its edges, read by read (no BAM file: pysam segments in memory over tiny.py's chr1,
whose only Cs and Gs are the CpGs at 100, 110, 130, 250 and 400).

Written against the survivors of a cosmic-ray run on io/bam.py (issue 17; docs/testing.md). Each
test names the mutants it kills; each was applied by hand to a scratch copy and the test run red:

- ``test_ref_to_query_marks_deleted_bases``: ``np.full(span, -1)`` -> ``~1``.
- ``test_sequence_match_and_mismatch_ops_align_like_m``: ``_MATCH_OPS`` (0, 7, 8) -> (0, 6, 8),
  (0, 7, 9).
- ``test_modification_probability_edges``: ``(qual + 0.5) / 256`` -> ``+ 1.5``, ``/ 257``, ``/ 255``;
  ``p <= 1 - threshold`` -> ``<``.
- ``test_reverse_read_starting_at_the_g``: the candidate bound ``start - 1`` -> ``start // 1``,
  ``% 1``, ``>> 1``, ``^ 1``; ``0 <= look`` -> ``0 is not look``; ``r2q[look] < 0`` -> ``< 1``.
- ``test_a_cpg_at_an_odd_position``: the candidate bound ``start - 1`` -> ``start ^ 1`` (equal to
  ``start - 1`` for every odd start, and every G of tiny's CpGs is odd).
- ``test_reverse_read_ending_at_the_c``: ``look < end - start`` -> ``end + start``.
- ``test_forward_read_starting_at_the_g``: the out-of-read ``continue`` -> ``break``.
- ``test_a_mismatch_at_the_c_is_not_a_call``: ``seq[qpos] != "C"`` -> ``>``; its ``continue`` ->
  ``break``.
- ``test_a_deleted_c_is_not_a_call``: ``r2q[look] < 0`` -> ``< -1``; ``or`` -> ``and``.
- ``test_bisulfite_calls_near_the_contig_start``: ``query0 + site - ref0`` -> ``site % ref0``.
- ``test_bismark_format_given_as_a_built_string``: ``fmt == "bismark"`` -> ``fmt is "bismark"``, in
  ``is_bottom_strand`` and in ``bisulfite_calls`` (where a Bismark read without XM must be refused,
  not called from its bases).
- ``test_long_reverse_read_ending_at_the_c``: ``look < end - start`` -> ``look is not end - start``
  (CPython caches ints up to 256 only: a read longer than that).
- ``test_open_bam_refuses_files_that_are_not_bam``: the ``except (OSError, ValueError)`` with
  ``ValueError`` replaced (every bad file tried makes pysam raise ValueError: the ``OSError`` is
  for read errors, not reproduced here).
- ``test_reads_without_cpgs_give_empty_calls``: ``_EMPTY_POS`` / ``_EMPTY_CODE`` of size 1, the
  early return's ``np.zeros(0)`` -> ``1``, ``-1``.
- ``test_skipped_regions_advance_the_reference`` (N in the CIGAR): ``op in (2, 3)`` -> ``(2, 2)``,
  ``(2, 4)`` in ``ref_to_query`` and ``match_blocks``.
- ``test_md_that_does_not_fit_the_cigar``: ``except IndexError`` replaced.
- ``test_explicit_mode_leaves_unlisted_cs_uncalled``: ``entry.split(",", 1)`` -> ``split(",", 0)``.
- ``test_other_modifications_are_not_5mc``: ``base == "C" and code == "m"`` -> ``or``,
  ``code <= "m"``, ``code is not "m"``; ``_mm_implicit``'s ``and`` -> ``or`` and its ``return
  False`` -> ``True``.
- ``test_modification_calls_near_the_contig_start``: ``look < end - start`` -> ``end % start``.
- ``test_forward_read_starting_at_the_g`` also: ``0 <= look`` -> ``-1 <= look``.
"""

from __future__ import annotations

import array

import numpy as np
import pysam
import pytest

from tests.support.bam_builder import HEADER, bisulfite_read, make_read
from tests.support.tiny import CPG_C, chr1_seq
from tissuebert.constants import METH_M, METH_NONE, METH_U
from tissuebert.errors import InputFormatError
from tissuebert.io.bam import bisulfite_calls, modification_calls, open_bam, ref_to_query

H = pysam.AlignmentHeader.from_dict(HEADER)
SEQ = chr1_seq()
CPGS = np.array(CPG_C, dtype=np.int64)


def _read(start: int, seq: str, *, cigar: str | None = None, flag: int = 0, tags: dict | None = None):
    read = make_read("r", start, seq, flag=flag, tags=tags, header=H)
    if cigar is not None:
        read.cigarstring = cigar
    return read


def _mm(start: int, length: int, ml: list[int], *, flag: int = 0, mode: str = "?", cigar: str | None = None,
        seq: str | None = None):
    seq = seq if seq is not None else SEQ[start:start + length]
    n = len(ml)
    return _read(start, seq, cigar=cigar, flag=flag,
                 tags={"MM": f"C+m{mode}," + ",".join("0" * n) + ";", "ML": array.array("B", ml)})


def _calls(result):
    pos, code = result
    return dict(zip(pos.tolist(), code.tolist()))


def test_ref_to_query_marks_deleted_bases():
    read = _read(95, SEQ[95:105] + SEQ[107:117], cigar="10M2D10M")
    r2q = ref_to_query(read)
    assert r2q.tolist() == list(range(10)) + [-1, -1] + list(range(10, 20))


def test_skipped_regions_advance_the_reference():
    read = _read(92, SEQ[92:98] + SEQ[102:136], cigar="6M4N34M")  # 98..101 skipped: CpG 100 not aligned
    assert ref_to_query(read).tolist() == list(range(6)) + [-1] * 4 + list(range(6, 40))
    seq, xm = bisulfite_read(102, 34, {110: 1, 130: 0}, bottom=False)
    read = _read(92, SEQ[92:98] + seq, cigar="6M4N34M", tags={"XG": "CT", "XM": "." * 6 + xm})
    assert _calls(bisulfite_calls(read, "bismark", list(CPG_C))) == {110: METH_M, 130: METH_U}


def test_reads_without_cpgs_give_empty_calls():
    seq, xm = bisulfite_read(150, 40, {}, bottom=False)
    for pos, code in (bisulfite_calls(_read(150, seq, tags={"XG": "CT", "XM": xm}), "bismark", list(CPG_C)),
                      modification_calls(_mm(150, 40, [240]), CPGS, 0.5)):
        assert pos.shape == (0,) and code.shape == (0,) and code.dtype == np.uint8


def test_md_that_does_not_fit_the_cigar():
    from tissuebert.io.bam import rebuild_reference

    read = _read(95, SEQ[95:105], tags={"MD": "12A0"})  # a mismatch past the read's 10 aligned bases
    with pytest.raises(InputFormatError, match="does not fit its CIGAR"):
        rebuild_reference(read)


def test_explicit_mode_leaves_unlisted_cs_uncalled():
    read = _mm(95, 40, [240])  # '?' mode: only the first C (100) listed
    assert _calls(modification_calls(read, CPGS, 0.5)) == {100: METH_M, 110: METH_NONE, 130: METH_NONE}
    implicit = _mm(95, 40, [240], mode=".")  # '.' mode: unlisted Cs are unmodified
    assert _calls(modification_calls(implicit, CPGS, 0.5)) == {100: METH_M, 110: METH_U, 130: METH_U}


def test_other_modifications_are_not_5mc():
    """5hmC (C+h) beside 5mC: only the m probabilities make calls, and the m entry's own mode
    (implicit '.') decides the unlisted Cs even when the h entry (explicit '?') comes first."""
    seq = SEQ[95:135]
    both = _read(95, seq, tags={"MM": "C+m?,0,0,0;C+h?,0,0,0;", "ML": array.array("B", [240, 240, 240, 10, 10, 10])})
    assert _calls(modification_calls(both, CPGS, 0.5)) == {100: METH_M, 110: METH_M, 130: METH_M}
    h_first = _read(95, seq, tags={"MM": "C+h?,0;C+m.,1;", "ML": array.array("B", [10, 240])})
    assert _calls(modification_calls(h_first, CPGS, 0.5)) == {100: METH_U, 110: METH_M, 130: METH_U}
    only_h = _read(95, seq, tags={"MM": "C+h.,0,0,0;", "ML": array.array("B", [240, 240, 240])})
    assert _calls(modification_calls(only_h, CPGS, 0.5)) == {100: METH_NONE, 110: METH_NONE, 130: METH_NONE}


def test_modification_calls_near_the_contig_start():
    read = _mm(20, 100, [240, 10])  # 20..119: the Cs of 100 and 110
    assert _calls(modification_calls(read, CPGS, 0.5)) == {100: METH_M, 110: METH_U}


def test_sequence_match_and_mismatch_ops_align_like_m():
    seq, xm = bisulfite_read(95, 40, {100: 1, 110: 0, 130: 1}, bottom=False)
    plain = _read(95, seq, tags={"XG": "CT", "XM": xm})
    eqx = _read(95, seq, cigar="15=1X24=", tags={"XG": "CT", "XM": xm})  # minimap2 --eqx style
    assert ref_to_query(eqx).tolist() == ref_to_query(plain).tolist() == list(range(40))
    want = {100: METH_M, 110: METH_U, 130: METH_M}
    assert _calls(bisulfite_calls(eqx, "bismark", list(CPG_C))) == _calls(bisulfite_calls(plain, "bismark", list(CPG_C)))
    assert _calls(bisulfite_calls(eqx, "bismark", list(CPG_C))) == want


# P(5mC) = (ML + 0.5) / 256: with threshold t = 204.5 / 256, ML 204 sits exactly on the M edge
# (p >= t) and ML 51 exactly on the U edge (p <= 1 - t = 51.5 / 256); ML 128 is neither.
EDGE = 204.5 / 256


def test_modification_probability_edges():
    read = _mm(95, 40, [204, 51, 128])  # the forward read's Cs: 100, 110, 130
    assert _calls(modification_calls(read, CPGS, EDGE)) == {100: METH_M, 110: METH_U, 130: METH_NONE}
    # one step inside each edge is no call
    assert _calls(modification_calls(_mm(95, 40, [203, 52, 128]), CPGS, EDGE)) == \
        {100: METH_NONE, 110: METH_NONE, 130: METH_NONE}


def test_reverse_read_starting_at_the_g():
    """A reverse read whose first aligned base is the G of CpG 100: its call is on that G (query
    position 0); ML values run from the original read's 5' end, the last base of SEQ."""
    read = _mm(101, 40, [240, 240, 10], flag=16)  # G of 130, of 110, of 100
    assert _calls(modification_calls(read, CPGS, 0.5)) == {100: METH_U, 110: METH_M, 130: METH_M}


def test_a_cpg_at_an_odd_position():
    """A reverse read starting on the G (position 100) of a CpG whose C is at 99."""
    read = _read(100, "G" + "A" * 39, flag=16, tags={"MM": "C+m?,0;", "ML": array.array("B", [240])})
    assert _calls(modification_calls(read, np.array([99, 300]), 0.5)) == {99: METH_M}


def test_reverse_read_ending_at_the_c():
    """A reverse read whose last base is the C of CpG 130 does not hold its G: no call there."""
    read = _mm(91, 40, [240, 10], flag=16)  # covers 91..130: the G of 110 and of 100
    assert _calls(modification_calls(read, CPGS, 0.5)) == {100: METH_U, 110: METH_M}


def test_forward_read_starting_at_the_g():
    """CpG 100's C lies before the read (a candidate of the look-back): skipped, the rest called."""
    read = _mm(101, 30, [240, 10])  # Cs of 110 and 130, the last base (where look = -1 would reach)
    assert _calls(modification_calls(read, CPGS, 0.5)) == {110: METH_M, 130: METH_U}


def test_a_mismatch_at_the_c_is_not_a_call():
    seq = list(SEQ[95:135])
    seq[5], seq[15] = "A", "T"  # SNPs at the Cs of CpG 100 (a base before C) and 110 (after it)
    read = _mm(95, 40, [240], seq="".join(seq))  # the remaining C: 130
    assert _calls(modification_calls(read, CPGS, 0.5)) == {130: METH_M}


def test_a_deleted_c_is_not_a_call():
    """CpG 110's C deleted; the read ends on CpG 130's C (SEQ's last base, which a negative query
    index would reach)."""
    seq = SEQ[95:110] + SEQ[111:131]
    assert seq[-1] == "C"
    read = _mm(95, 36, [240, 10], seq=seq, cigar="15M1D20M")  # Cs of 100 and 130
    assert _calls(modification_calls(read, CPGS, 0.5)) == {100: METH_M, 130: METH_U}


def test_bisulfite_calls_near_the_contig_start():
    """A spliced read (N) whose second block starts at 20 and holds CpG 100's C: the query index
    is query0 + site - ref0 = 6 + 80 = 86, where site % ref0 would read index 6."""
    first = SEQ[10:16]  # 6 bases at 10..15, then 16..19 skipped
    second, xm2 = bisulfite_read(20, 100, {100: 0}, bottom=False)
    read = _read(10, first + second, cigar="6M4N100M", tags={"XG": "CT", "XM": "." * 6 + xm2})
    assert _calls(bisulfite_calls(read, "bismark", list(CPG_C))) == {100: METH_U, 110: METH_NONE}


def test_bismark_format_given_as_a_built_string():
    """A format read from a sample sheet is a new string object, not the interned literal."""
    fmt = "".join(["bis", "mark"])
    seq, xm = bisulfite_read(95, 40, {100: 1, 110: 0, 130: 1}, bottom=False)
    read = _read(95, seq, tags={"XG": "CT", "XM": xm})
    assert _calls(bisulfite_calls(read, fmt, list(CPG_C))) == {100: METH_M, 110: METH_U, 130: METH_M}
    with pytest.raises(InputFormatError, match="lacks the XM tag"):
        bisulfite_calls(_read(95, seq, tags={"XG": "CT"}), fmt, list(CPG_C))


def test_long_reverse_read_ending_at_the_c():
    """A 300-base reverse read (101..400) ending on CpG 400's C: its G (401) is past the read."""
    read = _mm(101, 300, [240, 10, 240, 10], flag=16)  # the Gs of 250, 130, 110, 100 (5' end first)
    assert _calls(modification_calls(read, CPGS, 0.5)) == {100: METH_U, 110: METH_M, 130: METH_U, 250: METH_M}


@pytest.mark.parametrize("content", [b"chr1\t1\t2\n" * 50, b"BAM\x01" + b"\x00" * 3])
def test_open_bam_refuses_files_that_are_not_bam(tmp_path, content):
    path = tmp_path / "x.bam"
    path.write_bytes(content)
    with pytest.raises(InputFormatError, match="cannot open BAM"):
        open_bam(path, need_index=False)

"""Property-based tests (hypothesis) of the readers and codecs, each against an independent model:

- a `.pat` line round-trips through the parser, and every bad line (count or index < 1, a foreign
  pattern character, a missing column) is refused;
- 2-bit call packing: unpack(pack(calls)) == calls, the bit layout written out by hand;
- the MD-tag reference rebuild equals the reference the read was simulated from (random CIGARs with
  mismatches, insertions, deletions and soft clips);
- Bismark (XM) and bwa-meth (read base) calls of a simulated bisulfite read land on exactly the
  CpGs whose call base (C on the top strand, G on the bottom) the read aligns, including the CpG
  cut by either end of the read.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pysam
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tissuebert.errors import InputFormatError
from tissuebert.io.bam import bisulfite_calls, rebuild_reference
from tissuebert.io.pat import format_pat_line, iter_pat, pattern_codes
from tissuebert.store.sample import pack_calls, unpack_calls

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODE_OF = {"C": 1, "T": 0, ".": 2}  # the .pat alphabet, as documented (docs/input_formats.md)

chroms = st.sampled_from(["chr1", "chrX", "1", "chrUn_KI270302v1"])
patterns = st.text(alphabet="CT.", min_size=1, max_size=60)


# ---------------------------------------------------------------- .pat lines


def _parse_one(text: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.pat"
        path.write_text(text)
        return list(iter_pat(path))


@SETTINGS
@given(chroms, st.integers(1, 30_000_000), patterns, st.integers(1, 10**6))
def test_pat_line_round_trip(chrom, start, pattern, count):
    (parsed,) = _parse_one(format_pat_line(chrom, start, pattern, count))
    assert parsed == (chrom, start, pattern, count, 1)
    assert pattern_codes(pattern).tolist() == [CODE_OF[ch] for ch in pattern]


@SETTINGS
@given(chroms, st.integers(1, 1000), patterns, st.integers(-5, 0))
@example("chr1", 5, "CT", 0)
def test_pat_line_with_a_bad_count_is_refused(chrom, start, pattern, count):
    with pytest.raises(InputFormatError, match="count must be >= 1"):
        _parse_one(format_pat_line(chrom, start, pattern, count))


@SETTINGS
@given(chroms, st.integers(-5, 0), patterns)
def test_pat_line_with_a_bad_index_is_refused(chrom, start, pattern):
    with pytest.raises(InputFormatError, match="CpG index and count must be >= 1"):
        _parse_one(format_pat_line(chrom, start, pattern, 1))


@SETTINGS
@given(chroms, patterns, st.integers(0, 59), st.characters(codec="ascii", exclude_characters="CT.\t\n\r"))
def test_pat_pattern_with_a_foreign_character_is_refused(chrom, pattern, at, bad):
    bad_pattern = pattern[:at] + bad + pattern[at:]
    assume(bad_pattern.strip() == bad_pattern)  # leading/trailing blanks of a line are another case
    with pytest.raises(InputFormatError, match="may only hold C, T and ."):
        _parse_one(format_pat_line(chrom, 100, bad_pattern, 1))
    with pytest.raises(InputFormatError):
        pattern_codes(bad_pattern)


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 10**6), patterns, st.integers(1, 9)), min_size=1, max_size=8),
       st.integers(0, 2))
def test_pat_file_line_numbers_and_a_dropped_column(lines, drop):
    # the n-th line parses with line number n; dropping any column of the last line names that line
    text = "".join(format_pat_line("chr1", *line) for line in lines)
    parsed = _parse_one(text)
    assert [(p[1], p[2], p[3], p[4]) for p in parsed] == [(*line, k + 1) for k, line in enumerate(lines)]
    cols = text.splitlines()[-1].split("\t")
    del cols[1 + drop]
    with pytest.raises(InputFormatError, match="got 3 column"):
        _parse_one(text + "\t".join(cols) + "\n")


# ---------------------------------------------------------------- 2-bit call packing


@st.composite
def call_matrices(draw):
    n_reads, width = draw(st.integers(0, 20)), draw(st.integers(1, 40))
    extra = draw(st.integers(0, 3))  # spare bytes beyond the minimum
    values = draw(st.lists(st.integers(0, 2), min_size=n_reads * width, max_size=n_reads * width))
    calls = np.array(values, dtype=np.uint8).reshape(n_reads, width)
    return calls, (width + 3) // 4 + extra


@SETTINGS
@given(call_matrices())
def test_call_packing_round_trip_and_layout(case):
    calls, call_bytes = case
    packed = pack_calls(calls, call_bytes)
    assert packed.shape == (calls.shape[0], call_bytes) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack_calls(packed, calls.shape[1]), calls)
    # unused slots decode as "no call"
    assert np.all(unpack_calls(packed)[:, calls.shape[1]:] == 2)
    # the layout, by hand: CpG j in byte j // 4 at bit 2 * (j % 4), unused slots 2
    for r in range(calls.shape[0]):
        for b in range(call_bytes):
            expected = 0
            for slot in range(4):
                j = 4 * b + slot
                expected |= (int(calls[r, j]) if j < calls.shape[1] else 2) << (2 * slot)
            assert packed[r, b] == expected


# ---------------------------------------------------------------- simulated aligned reads

HEADER = pysam.AlignmentHeader.from_dict({"HD": {"VN": "1.6", "SO": "coordinate"},
                                          "SQ": [{"SN": "chr1", "LN": 400}]})
BASES = "ACGT"


@st.composite
def alignments(draw):
    """A reference, and a read aligned to it: (reference, start, CIGAR ops, per-op payload)."""
    ref = draw(st.text(alphabet=BASES, min_size=400, max_size=400))
    start = draw(st.integers(0, 300))
    ops = []
    if draw(st.booleans()):
        ops.append((4, draw(st.integers(1, 5))))  # leading soft clip
    ops.append((0, draw(st.integers(1, 20))))
    for _ in range(draw(st.integers(0, 4))):
        ops.append((draw(st.sampled_from([1, 2])), draw(st.integers(1, 4))))  # insertion or deletion
        ops.append((0, draw(st.integers(1, 20))))
    if draw(st.booleans()):
        ops.append((4, draw(st.integers(1, 5))))
    span = sum(length for op, length in ops if op in (0, 2))
    assume(start + span <= len(ref))
    return ref, start, ops


def _ref_to_query(start: int, ops) -> dict[int, int]:
    """Reference position -> query position of every aligned base, walked from the CIGAR."""
    out, ref, query = {}, start, 0
    for op, length in ops:
        if op == 0:
            for k in range(length):
                out[ref + k] = query + k
        if op in (0, 2):
            ref += length
        if op in (0, 1, 4):
            query += length
    return out


def _md_read(ref: str, start: int, ops, mismatch: list[bool], filler: str):
    """A read with the given CIGAR over ``ref``: aligned bases copy the reference, except where
    ``mismatch`` flips them; inserted / clipped bases come from ``filler``. Its MD tag is written
    from the spec (a number before every mismatch base and every ^deletion, one at the end)."""
    seq, md, run, ref_pos, k_aligned, k_fill = [], [], 0, start, 0, 0
    for op, length in ops:
        if op == 0:
            for _ in range(length):
                base = ref[ref_pos]
                if mismatch[k_aligned % len(mismatch)]:
                    seq.append(BASES[(BASES.index(base) + 1) % 4])
                    md.append(f"{run}{base}")
                    run = 0
                else:
                    seq.append(base)
                    run += 1
                ref_pos += 1
                k_aligned += 1
        elif op == 2:
            md.append(f"{run}^{ref[ref_pos:ref_pos + length]}")
            run = 0
            ref_pos += length
        else:
            seq.extend(filler[(k_fill + i) % len(filler)] for i in range(length))
            k_fill += length
    md.append(str(run))
    read = pysam.AlignedSegment(HEADER)
    read.query_name, read.flag, read.reference_id, read.reference_start = "r", 0, 0, start
    read.mapping_quality, read.cigartuples, read.query_sequence = 40, ops, "".join(seq)
    read.set_tag("MD", "".join(md))
    return read


@SETTINGS
@given(alignments(), st.lists(st.booleans(), min_size=1, max_size=30), st.text(alphabet=BASES, min_size=1, max_size=9))
def test_md_rebuild_equals_the_reference(alignment, mismatch, filler):
    ref, start, ops = alignment
    read = _md_read(ref, start, ops, mismatch, filler)
    assert rebuild_reference(read) == ref[start:read.reference_end]


def _cpgs(ref: str) -> list[int]:
    return [k for k in range(len(ref) - 1) if ref[k:k + 2] == "CG"]


def _bisulfite_read(ref: str, start: int, ops, meth: dict[int, int], bottom: bool, fmt: str, filler: str):
    """A bisulfite read over ``ref``: every C (top) or G (bottom) is converted unless it is a CpG's
    methylated base; Bismark's XM marks the CpG call base Z/z; bwa-meth carries YD f/r."""
    r2q = _ref_to_query(start, ops)
    query_len = sum(length for op, length in ops if op in (0, 1, 4))
    seq = [filler[k % len(filler)] for k in range(query_len)]
    xm = ["."] * query_len
    cpg_site = {c + (1 if bottom else 0): c for c in _cpgs(ref)}
    for pos, q in r2q.items():
        base = ref[pos]
        target, converted = ("G", "A") if bottom else ("C", "T")
        if base == target:
            c_pos = cpg_site.get(pos)
            methylated = c_pos is not None and meth[c_pos] == 1
            base = target if methylated else converted
            if c_pos is not None:
                xm[q] = "Z" if methylated else "z"
        seq[q] = base
    read = pysam.AlignedSegment(HEADER)
    read.query_name, read.reference_id, read.reference_start = "r", 0, start
    read.flag = 16 if bottom else 0
    read.mapping_quality, read.cigartuples, read.query_sequence = 40, ops, "".join(seq)
    if fmt == "bismark":
        read.set_tag("XM", "".join(xm))
        read.set_tag("XG", "GA" if bottom else "CT")
    else:
        read.set_tag("YD", "r" if bottom else "f")
    return read, r2q


def _check_projection(ref, start, ops, meth_bits, bottom, fmt, filler):
    cpgs = _cpgs(ref)
    meth = {c: meth_bits[k % len(meth_bits)] for k, c in enumerate(cpgs)}
    read, r2q = _bisulfite_read(ref, start, ops, meth, bottom, fmt, filler)
    pos, codes = bisulfite_calls(read, fmt, cpgs)
    got = dict(zip(pos.tolist(), codes.tolist()))
    # independent expectation: a CpG is called iff its call base (C top, G bottom) is aligned
    expected = {c: meth[c] for c in cpgs if c + (1 if bottom else 0) in r2q}
    assert got == expected
    assert pos.tolist() == sorted(pos.tolist())
    return got


@SETTINGS
@given(alignments(), st.lists(st.integers(0, 1), min_size=1, max_size=20), st.booleans(),
       st.sampled_from(["bismark", "bwameth"]), st.text(alphabet="AT", min_size=1, max_size=5))
def test_calls_project_onto_the_cpgs_the_read_aligns(alignment, meth_bits, bottom, fmt, filler):
    ref, start, ops = alignment
    _check_projection(ref, start, ops, meth_bits, bottom, fmt, filler)


@pytest.mark.parametrize("fmt", ["bismark", "bwameth"])
@pytest.mark.parametrize("bottom", [False, True])
@pytest.mark.parametrize("methylated", [0, 1])
def test_edge_cpgs_of_both_strands(fmt, bottom, methylated):
    # A CpG cut by each end of a 10 bp read at 100..110 (no other C or G nearby):
    #   ref  ...A C G A A A A A A A A C G A...     CpGs with C at 99 and at 109
    #   read       [100 ...............109]        starts at 99's G, ends at 109's C
    # top (C->T) reads call at the C: 109 only; bottom (G->A) reads call at the G: 99 only.
    ref = list("A" * 400)
    ref[99:101] = "CG"
    ref[109:111] = "CG"
    ref = "".join(ref)
    got = _check_projection(ref, 100, [(0, 10)], [methylated], bottom, fmt, "A")
    assert got == ({99: methylated} if bottom else {109: methylated})

"""Bismark, bwa-meth and MM/ML BAMs built by hand over tiny.py's chr1, checked row by row.

chr1 CpGs (C at):      100   110   130          250          windows: 0 = [43,193), 1 = [180,330)
r1 top, 95-135         M     U     M                          -> window 0 [M U M]
r2 bottom, 240-280                              U (G->A at 251) -> window 1 [U]
r3/r4 pair, top:
  r3 96-136            U     M     U
  r4 125-165                       M                          -> merged: window 0 [U M .] (130 conflicts)
r5 95-135 MAPQ 5       M     M     M                          -> dropped (MAPQ < 10)
r6 95-135 duplicate    M     M     M                          -> dropped
"""

from __future__ import annotations

import pytest

from tests.support.bam_builder import bisulfite_read, make_read, write_bam
from tests.support.tiny import write_tiny
from tissuebert.cli.app import main
from tissuebert.prepare import ReadFilters, build_panel, read_sample_windows
from tissuebert.store.sample import unpack_calls

EXPECTED = [(0, [0, 1, 2]), (0, [1, 0, 1]), (1, [0, 2, 2])]
ALL_M = {100: 1, 110: 1, 130: 1}


def _bisulfite_reads(fmt):
    def tags(bottom, read2=False):
        if fmt == "bismark":
            return {"XG": "GA" if bottom else "CT", "XR": "GA" if read2 else "CT"}
        return {"YD": "r" if bottom else "f"}

    def read(name, start, length, meth, *, bottom=False, flag=0, mapq=40, read2=False):
        seq, xm = bisulfite_read(start, length, meth, bottom=bottom)
        extra = dict(tags(bottom, read2), **({"XM": xm} if fmt == "bismark" else {}))
        return lambda h: make_read(name, start, seq, flag=flag, mapq=mapq, tags=extra, header=h)

    return [read("r1", 95, 40, {100: 1, 110: 0, 130: 1}),
            read("r2", 240, 40, {250: 0}, bottom=True, flag=16),
            read("r3", 96, 40, {100: 0, 110: 1, 130: 0}, flag=99),
            read("r3", 125, 40, {130: 1}, flag=147, read2=True),
            read("r5", 95, 40, ALL_M, mapq=5),
            read("r6", 95, 40, ALL_M, flag=1024)]


def _rows(reads):
    return sorted((int(w), c) for w, c in zip(reads.window_idx, unpack_calls(reads.calls, 3).tolist()))


@pytest.fixture
def tiny(tmp_path):
    files = write_tiny(tmp_path)
    files["panel"] = build_panel(files["reference"], files["regions"], files["cpg_index"])
    return files


@pytest.fixture(params=["stream", "fetch"])
def bam_mode(request, monkeypatch):
    """Both ways of reading a BAM: one pass per chromosome, or an index fetch per window cluster."""
    import tissuebert.prepare.bam_reads as bam_reads

    monkeypatch.setattr(bam_reads, "READS_PER_FETCH", 10**9 if request.param == "stream" else 0)
    return request.param


@pytest.mark.parametrize("fmt", ["bismark", "bwameth"])
def test_bisulfite_bam_rows(tiny, tmp_path, fmt, bam_mode):
    bam = write_bam(tmp_path / f"{fmt}.bam", _bisulfite_reads(fmt))
    reads = read_sample_windows(bam, fmt, tiny["panel"])
    assert _rows(reads) == EXPECTED
    assert reads.stats["dropped"] == {"low_mapq": 1, "duplicate": 1}
    relaxed = read_sample_windows(bam, fmt, tiny["panel"], filters=ReadFilters(min_mapq=0, drop_duplicates=False))
    assert _rows(relaxed) == sorted(EXPECTED + [(0, [1, 1, 1])] * 2)


def test_every_window_its_own_cluster(tiny, tmp_path, bam_mode, monkeypatch):
    # the pair r3/r4 and every read are fetched per window: rows must not change or repeat
    import tissuebert.prepare.project as project

    monkeypatch.setattr(project, "CLUSTER_GAP", -200)
    assert len(project.PanelIndex(tiny["panel"]).clusters("chr1")) == 3
    bam = write_bam(tmp_path / "s.bam", _bisulfite_reads("bismark"))
    assert _rows(read_sample_windows(bam, "bismark", tiny["panel"])) == EXPECTED


def test_bam_and_pat_of_the_same_reads_give_the_same_store(tiny, tmp_path):
    write_bam(tmp_path / "s.bam", _bisulfite_reads("bismark"))
    # the same fragments as .pat lines (CpG indices 1001..1005; the pair merged, its conflict '.')
    (tmp_path / "s.pat").write_text("chr1\t1001\tCTC\t1\nchr1\t1001\tTC.\t1\nchr1\t1004\tT\t1\n")
    sheet = tmp_path / "two.tsv"
    sheet.write_text("sample_id\ttissue\tsplit\tpath\tformat\na\tx\ttrain\ts.pat\tpat\nb\tx\ttrain\ts.bam\tbismark\n")
    out = tmp_path / "store"
    assert main(["prepare", "--samples", str(sheet), "--reference", str(tiny["reference"]), "--regions",
                 str(tiny["regions"]), "--cpg-index", str(tiny["cpg_index"]), "--out", str(out)]) == 0
    from tissuebert.store.store import Store

    store = Store.open(out)
    a, b = store.reads("a"), store.reads("b")
    assert a.window_idx.tolist() == b.window_idx.tolist() == [0, 0, 1]
    assert sorted(map(bytes, a.calls)) == sorted(map(bytes, b.calls))


def test_bam_without_index_is_a_clear_error(tiny, tmp_path, capsys):
    bam = write_bam(tmp_path / "s.bam", _bisulfite_reads("bismark"))
    (tmp_path / "s.bam.bai").unlink()
    (tmp_path / "samples.tsv").write_text("sample_id\ttissue\tsplit\tpath\tformat\ns\tx\ttrain\ts.bam\tbismark\n")
    args = ["prepare", "--samples", str(tmp_path / "samples.tsv"), "--reference", str(tiny["reference"]),
            "--regions", str(tiny["regions"]), "--out", str(tmp_path / "store")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{bam}: BAM has no index (.bai/.csi) (header SO:coordinate)" in err and "samtools index" in err
    assert not (tmp_path / "store").exists()


def test_unsorted_bam_is_a_clear_error(tiny, tmp_path):
    import pysam

    from tissuebert.errors import InputFormatError

    header = pysam.AlignmentHeader.from_dict({"HD": {"VN": "1.6", "SO": "unsorted"}, "SQ": [{"SN": "chr1", "LN": 600}]})
    with pysam.AlignmentFile(str(tmp_path / "u.bam"), "wb", header=header) as out:
        for build in _bisulfite_reads("bismark")[:2]:
            out.write(build(header))
    with pytest.raises(InputFormatError, match="is not coordinate-sorted and has no index"):
        read_sample_windows(tmp_path / "u.bam", "bismark", tiny["panel"])


def test_bam_chromosome_naming_mismatch(tmp_path):
    from tissuebert.errors import InputFormatError

    files = write_tiny(tmp_path, chrom_prefix="")
    panel = build_panel(files["reference"], files["regions"])
    bam = write_bam(tmp_path / "s.bam", _bisulfite_reads("bismark"))
    with pytest.raises(InputFormatError, match="'1' is called 'chr1' in the BAM"):
        read_sample_windows(bam, "bismark", panel)


def test_wrong_bam_flavour_is_named(tiny, tmp_path):
    from tissuebert.errors import InputFormatError

    bam = write_bam(tmp_path / "s.bam", _bisulfite_reads("bismark"))
    with pytest.raises(InputFormatError, match="lacks the YD strand tag.*use format 'bismark'"):
        read_sample_windows(bam, "bwameth", tiny["panel"])


def _mm_read(name, start, length, mm, ml, *, flag=0):
    import array

    from tests.support.tiny import chr1_seq

    seq = chr1_seq()[start:start + length]  # native DNA: no conversion
    return lambda h: make_read(name, start, seq, flag=flag, tags={"MM": mm, "ML": array.array("B", ml)}, header=h)


@pytest.mark.parametrize("threshold, window0", [(0.5, [1, 0, 1]), (0.8, [1, 0, 2])])
def test_mm_ml_calls(tiny, tmp_path, threshold, window0):
    # forward read: Cs at 100, 110, 130 with P(5mC) = 230/256, 10/256, 150/256 (explicit '?' mode)
    # reverse read over CpG 250: the original read's only C is the G at 251 of the stored sequence
    # forward read in implicit '.' mode: skips the C at 100 (unmodified), calls 110, leaves 130 unmodified
    reads = [_mm_read("a", 95, 40, "C+m?,0,0,0;", [230, 10, 150]),
             _mm_read("b", 240, 40, "C+m?,0;", [240], flag=16),
             _mm_read("c", 96, 40, "C+m.,1;", [250])]
    bam = write_bam(tmp_path / "mm.bam", reads)
    got = read_sample_windows(bam, "mmml", tiny["panel"], filters=ReadFilters(mod_threshold=threshold))
    assert _rows(got) == sorted([(0, window0), (1, [1, 2, 2]), (0, [0, 1, 0])])


def test_mm_ml_format_on_a_bisulfite_bam_is_named(tiny, tmp_path):
    from tissuebert.errors import InputFormatError

    bam = write_bam(tmp_path / "s.bam", _bisulfite_reads("bismark"))
    with pytest.raises(InputFormatError, match="no read carries MM/ML modification tags"):
        read_sample_windows(bam, "mmml", tiny["panel"])

"""Coordinates are checked, never assumed (issue 12, item 1): BAM contig lengths against the
FASTA, the CpG index against the FASTA and in the panel hash, .pat lines outside their
chromosome's CpG indices, and .pat inputs of predict without --cpg-index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam
import pytest
from test_cli_prepare import _two_sample_sheet, prepare_args

from tests.support.bam_builder import HEADER, bisulfite_read, make_read
from tests.support.tiny import CPG_C, CPG_ORD, chr1_seq, write_tiny
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, COORDS
from tissuebert.errors import InputFormatError
from tissuebert.prepare import build_panel, panel_from_coordinates
from tissuebert.store.store import Store


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("tissuebert: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _renumber(files, first: int) -> None:
    """Rewrite the tiny CpG index with chr1's CpGs numbered first, first + 1, ..."""
    files["cpg_index"].write_text("".join(f"chr1\t{c + 1}\t{first + k}\n" for k, c in enumerate(CPG_C)))


def test_bam_of_another_build_is_refused(tmp_path, capsys):
    """Same contig name, another length: the reads' coordinates mean other bases."""
    files = write_tiny(tmp_path)
    header = {**HEADER, "SQ": [{"SN": "chr1", "LN": 700}, {"SN": "chr2", "LN": 300}]}
    seq, xm = bisulfite_read(90, 50, {100: 1, 110: 0, 130: 1}, bottom=False)
    unsorted, bam = tmp_path / "u.bam", tmp_path / "s1.bam"
    hdr = pysam.AlignmentHeader.from_dict(header)
    with pysam.AlignmentFile(str(unsorted), "wb", header=hdr) as out:
        out.write(make_read("r1", 90, seq, tags={"XM": xm, "XG": "CT", "XR": "CT"}, header=hdr))
    pysam.sort("-o", str(bam), str(unsorted))
    pysam.index(str(bam))
    files["sheet"].write_text("sample_id\ttissue\tsplit\tpath\tformat\ns1\tliver\ttrain\ts1.bam\tbismark\n")
    assert main(prepare_args(files, tmp_path / "store")) == 2
    line = _one_error_line(capsys)
    assert "s1.bam:" in line and "contig chr1 is 700 bp in the BAM header but 600 bp in genome.fa" in line
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("pat_line, where", [("chr1\t1006\tCC\t1", "past the end of chr1"),
                                             ("chr1\t17\tCC\t1", "before the start of chr1")])
def test_pat_line_outside_its_chromosome_is_refused(tmp_path, capsys, pat_line, where):
    files = write_tiny(tmp_path)
    files["pat"].write_text("chr1\t1001\tCTC\t2\n" + pat_line + "\n")
    assert main(prepare_args(files, tmp_path / "store")) == 2
    line = _one_error_line(capsys)
    assert "s1.pat:2:" in line and where in line and "(CpG indices 1,001-1,005 in the CpG index" in line


def test_pat_range_is_not_enforced_when_the_index_does_not_number_the_whole_chromosome(tmp_path):
    """An index with more (or fewer) entries on chr1 than the FASTA has CGs is not the whole
    chromosome's numbering (entries outside the windows are not checked against the FASTA), so
    it says nothing about where chr1's CpG indices end."""
    from tissuebert.prepare import read_sample_windows

    files = write_tiny(tmp_path)
    files["cpg_index"].write_text(files["cpg_index"].read_text() + "chr1\t599\t1006\n")
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    assert panel.cpg_range.tolist() == [[0, 0]]
    files["pat"].write_text("chr1\t1001\tCTC\t2\nchr1\t1006\tC\t1\n")
    assert read_sample_windows(files["pat"], "pat", panel).n_rows == 2


def test_cpg_indices_are_part_of_the_panel_hash(tmp_path):
    """Every ordinal + 1: the same windows, DNA and CpG positions, but another panel."""
    files = write_tiny(tmp_path)
    base = build_panel(files["reference"], files["regions"], files["cpg_index"])
    _renumber(files, CPG_ORD[0] + 1)
    shifted = build_panel(files["reference"], files["regions"], files["cpg_index"])
    assert np.array_equal(shifted.cpg_index, base.cpg_index + 1)
    assert np.array_equal(shifted.dna, base.dna) and np.array_equal(shifted.cpg_offset, base.cpg_offset)
    assert shifted.panel_hash() != base.panel_hash()
    assert shifted.legacy_hash() == base.legacy_hash()  # what 0.1.0 hashed could not tell them apart
    assert base.cpg_range.tolist() == [[1001, 1005]] and shifted.cpg_range.tolist() == [[1002, 1006]]


def test_a_shifted_whole_genome_index_is_warned_and_recorded(tmp_path, capsys):
    """chr1 is the index's first contig: its first CpG must be number 1 unless the index is a slice."""
    files = write_tiny(tmp_path)
    _renumber(files, 1)
    files["pat"].write_text("chr1\t1\tCTC\t2\n")
    assert main(prepare_args(files, tmp_path / "good")) == 0
    assert "shifted" not in capsys.readouterr().err
    index_warnings = [w for w in Store.open(tmp_path / "good").manifest.provenance["warnings"] if "CpG index" in w]
    assert index_warnings == []
    _renumber(files, 2)
    files["pat"].write_text("chr1\t2\tCTC\t2\n")
    assert main(prepare_args(files, tmp_path / "shifted")) == 0
    assert "its first entry chr1:101 has index 2, but it is CpG number 1 of chr1 in genome.fa" in capsys.readouterr().err
    (warning,) = [w for w in Store.open(tmp_path / "shifted").manifest.provenance["warnings"] if "CpG index" in w]
    assert "indices are shifted" in warning


def test_neighbouring_cpgs_must_be_numbered_consecutively(tmp_path, capsys):
    files = write_tiny(tmp_path)
    text = files["cpg_index"].read_text().replace("chr1\t111\t1002\n", "chr1\t111\t1003\n")
    files["cpg_index"].write_text(text.replace("chr1\t131\t1003\n", "chr1\t131\t1004\n"))
    assert main(prepare_args(files, tmp_path / "store")) == 2
    line = _one_error_line(capsys)
    assert "CpG.bed:2:" in line
    assert "entry chr1:111 has index 1003, the entry before it (chr1:101) 1001, but genome.fa has 0 CpG(s) between" in line


def test_a_slice_of_an_index_with_gaps_is_accepted_where_the_fasta_agrees(tmp_path):
    """An index kept only around the windows skips indices; the FASTA's CGs between two entries
    must account for exactly the skipped ones."""
    files = write_tiny(tmp_path)
    seq = list(chr1_seq())
    for c in (500, 520, 560):  # three more CGs on chr1, past the last window [330, 480)
        seq[c], seq[c + 1] = "C", "G"
    files["reference"].write_text(">chr1\n" + "".join(seq) + "\n>chr2\n" + "AT" * 150 + "\n")
    base = files["cpg_index"].read_text()
    files["cpg_index"].write_text(base + "chr1\t561\t1008\n")  # 500 and 520 left out: 1006, 1007 skipped
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    # first and last entry span as many indices as chr1 has CGs, and the gap was checked: chr1 is 1001..1008
    assert panel.cpg_index.tolist() == list(CPG_ORD) and panel.cpg_range.tolist() == [[1001, 1008]]
    files["cpg_index"].write_text(base + "chr1\t561\t1009\n")
    with pytest.raises(InputFormatError, match=r"CpG.bed:6: CpG index entry chr1:561 has index 1009, the entry before "
                                               r"it \(chr1:401\) 1005, but genome.fa has 2 CpG\(s\) between them"):
        build_panel(files["reference"], files["regions"], files["cpg_index"])


def test_tabix_indexed_cpg_index_gives_the_same_panel_and_ranges(tmp_path):
    files = write_tiny(tmp_path)
    plain = build_panel(files["reference"], files["regions"], files["cpg_index"])
    gz = pysam.tabix_index(str(files["cpg_index"]), seq_col=0, start_col=1, end_col=1, force=True, csi=True)
    indexed = build_panel(files["reference"], files["regions"], gz)
    assert indexed.panel_hash() == plain.panel_hash()
    assert indexed.cpg_range.tolist() == plain.cpg_range.tolist() == [[1001, 1005]]


def test_rebuilt_panel_uses_and_checks_the_models_cpg_indices(tmp_path):
    files = write_tiny(tmp_path)
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    coords = panel.coordinates()
    assert coords[COORDS.CPG_INDEX].tolist() == [1001, 1002, 1003, 1004, 1005]
    # no CpG index: the model's own indices, not a count from the FASTA (which would give 1..5)
    assert panel_from_coordinates(files["reference"], coords).panel_hash() == panel.panel_hash()
    _renumber(files, 1002)
    with pytest.raises(InputFormatError, match=r"CpG.bed: numbers CpG chr1:101 as 1002, but the CpG index the model "
                                               r"was trained with numbered it 1001"):
        panel_from_coordinates(files["reference"], coords, files["cpg_index"])


def _checkpoint(store_root: Path, out: Path, *, legacy: bool = False) -> Path:
    from tests.support.tinystore import checkpoint_state, tiny_config
    from tissuebert.inference.checkpoint import save_checkpoint
    from tissuebert.model.tissuebert import build_model

    store = Store.open(store_root)
    config = tiny_config()
    import torch

    torch.manual_seed(0)
    state = checkpoint_state(build_model(config.model, len(store.tissues), store.panel).eval(), config, store, 0)
    if legacy:
        del state[CKPT.PANEL_WINDOWS][COORDS.CPG_INDEX]
    save_checkpoint(out, state)
    return out


def test_predict_on_a_pat_without_cpg_index(tmp_path, capsys):
    """With the model's saved CpG indices the .pat is read exactly as with --cpg-index (and a
    warning says so); a checkpoint without them refuses instead of counting CpGs in the FASTA."""
    import gzip

    files = write_tiny(tmp_path / "in")
    _two_sample_sheet(files)
    assert main(prepare_args(files, tmp_path / "store")) == 0
    ckpt = _checkpoint(tmp_path / "store", tmp_path / "model.pt")
    base = ["predict", "--checkpoint", str(ckpt), "--input", str(files["pat"]), "--reference", str(files["reference"])]
    assert main(base + ["--cpg-index", str(files["cpg_index"]), "--out", str(tmp_path / "a.tsv.gz")]) == 0
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "b.tsv.gz")]) == 0
    assert "reading it through the CpG indices the model was trained with" in capsys.readouterr().err
    a, b = (gzip.decompress((tmp_path / n).read_bytes()).decode() for n in ("a.tsv.gz", "b.tsv.gz"))
    assert a == b
    # s1's unique (window, calls) rows (tests/support/tiny.py): CTC x2 and C.TT as [. . M] in window 0;
    # C.TT's and T x3's [U] in window 2, one row of 4
    assert [tuple(row.split("\t")[i] for i in (0, 5, 6)) for row in a.splitlines()[1:]] == [
        ("chr1:44-193", "CTC", "2"), ("chr1:44-193", "..C", "1"), ("chr1:331-480", "T", "4")]
    _renumber(files, 1002)
    assert main(base + ["--cpg-index", str(files["cpg_index"]), "--out", str(tmp_path / "c.tsv.gz")]) == 2
    assert "CpG.bed: numbers CpG chr1:101 as 1002" in _one_error_line(capsys)
    old = _checkpoint(tmp_path / "store", tmp_path / "old.pt", legacy=True)
    base[2] = str(old)
    assert main(base + ["--out", str(tmp_path / "d.tsv.gz")]) == 2
    assert "s1.pat: a .pat/.beta input needs --cpg-index" in _one_error_line(capsys)
    assert not (tmp_path / "c.tsv.gz").exists() and not (tmp_path / "d.tsv.gz").exists()

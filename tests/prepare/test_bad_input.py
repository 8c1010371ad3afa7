"""Every user mistake: one clear line naming the file (and line), exit code 2, nothing left behind."""

from __future__ import annotations

import pytest
from test_cli_prepare import prepare_args

from tests.support.tiny import write_tiny
from tissuebert.cli.app import main


def _listing(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".fai")  # pysam may index the FASTA


def _run_bad(tmp_path, capsys, files, *extra):
    before = _listing(tmp_path)
    code = main(prepare_args(files, tmp_path / "store", *extra))
    err = capsys.readouterr().err
    assert code == 2, err
    assert _listing(tmp_path) == before  # no store, no temporary folder
    lines = [ln for ln in err.splitlines() if ln.startswith("tissuebert: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


def _edit(path, old, new):
    path.write_text(path.read_text().replace(old, new))


def _truncated_gzip(files):
    import gzip

    data = gzip.compress(("chr1\t1001\tCTC\t2\n" * 2000).encode())
    files["pat"].write_bytes(data[: len(data) // 2])


CASES = {
    "malformed pat line": (lambda f: f["pat"].write_text("chr1\t1001\tCTC\t2\nchr1\t1003\tCXT\t1\n"),
                           ["s1.pat:2:", "malformed .pat line: pattern 'CXT' may only hold C, T and ."]),
    "pat count of zero": (lambda f: f["pat"].write_text("chr1\t1001\tCTC\t2\nchr1\t1003\tCT\t0\n"),
                          ["s1.pat:2:", "malformed .pat line: CpG index and count must be >= 1"]),
    "pat with missing column": (lambda f: f["pat"].write_text("chr1\t1001\tCTC\n"),
                                ["s1.pat:1:", "expected 'chrom index pattern count', got 3 column(s)"]),
    "unsorted pat": (lambda f: f["pat"].write_text("chr1\t1003\tC\t1\nchr1\t1001\tC\t1\n"),
                     ["s1.pat:2:", "not sorted by CpG index"]),
    "pat chrom naming": (lambda f: f["pat"].write_text("1\t1001\tCTC\t2\n"),
                         ["s1.pat:", "no read lies on a chromosome of the panel", "'1' is called 'chr1' in the panel"]),
    "bed chrom naming": (lambda f: _edit(f["regions"], "chr1\t240", "1\t240"),
                         ["regions.bed:2:", "unknown chromosome '1'", "'1' is called 'chr1' in the reference"]),
    "window outside chromosome": (lambda f: _edit(f["regions"], "chr1\t240\t420", "chr1\t240\t700"),
                                  ["regions.bed:2:", "ends outside the chromosome (length 600)"]),
    "cpg index off by one": (lambda f: _edit(f["cpg_index"], "chr1\t251\t", "chr1\t252\t"),
                             ["CpG.bed:", "the FASTA has a CpG at chr1:251 that the CpG index lacks"]),
    "cpg index chrom naming": (lambda f: f["cpg_index"].write_text(f["cpg_index"].read_text().replace("chr1", "1")),
                               ["CpG.bed:", "chromosome 'chr1' of the panel is not in the CpG index",
                                "'chr1' is called '1' in the CpG index"]),
    "empty sample": (lambda f: f["pat"].write_text(""),
                     ["s1.pat:", "sample 's1' has no read with >= 1 CpG call(s) in any window"]),
    "sample without a call in the panel": (lambda f: f["pat"].write_text("chr1\t1001\t...\t4\n"),
                                 ["s1.pat:", "sample 's1' has no read"]),
    "truncated pat.gz": (lambda f: _truncated_gzip(f),
                         ["s1.pat:", "cannot read .pat file", "truncated"]),
    "missing sample file": (lambda f: f["pat"].unlink(), ["s1.pat:", "pat input not found"]),
    "duplicate sample id": (lambda f: f["sheet"].write_text(f["sheet"].read_text() + "s1\tlung\tval\ts1.pat\tpat\n"),
                            ["samples.tsv:3:", "duplicate sample_id 's1' (first on line 2)"]),
    "bad split": (lambda f: _edit(f["sheet"], "\ttrain\t", "\ttraining\t"),
                  ["samples.tsv:2:", "split 'training' of 's1' is not one of train, val, test"]),
    "bad format": (lambda f: _edit(f["sheet"], "\tpat\n", "\tbam\n"),
                   ["samples.tsv:2:", "format 'bam' of 's1' is not one of"]),
    "missing column": (lambda f: _edit(f["sheet"], "\tformat", "\tfmt"),
                       ["samples.tsv:1:", "sample sheet lacks column(s) format"]),
    "donor in two splits": (lambda f: f["sheet"].write_text(
        "sample_id\ttissue\tsplit\tpath\tformat\tdonor\ns1\tliver\ttrain\ts1.pat\tpat\tD\ns2\tlung\ttest\ts1.pat\tpat\tD\n"),
        ["samples.tsv:3:", "donor 'D' is in split 'train' (line 2) and 'test'"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(tmp_path, capsys, case):
    files = write_tiny(tmp_path)
    edit, expected = CASES[case]
    edit(files)
    line = _run_bad(tmp_path, capsys, files)
    for text in expected:
        assert text in line


def test_unknown_tissue_in_map(tmp_path, capsys):
    files = write_tiny(tmp_path)
    tmap = tmp_path / "map.tsv"
    tmap.write_text("lung\tLung\n")
    line = _run_bad(tmp_path, capsys, files, "--tissue-map", str(tmap))
    assert "samples.tsv:2:" in line and "unknown tissue 'liver' of 's1': not in the tissue map" in line


def test_existing_output_needs_force(tmp_path, capsys):
    files = write_tiny(tmp_path / "in")
    out = tmp_path / "store"
    assert main(prepare_args(files, out)) == 0
    manifest = (out / "manifest.json").read_text()
    assert main(prepare_args(files, out)) == 2
    assert "output already exists" in capsys.readouterr().err
    assert (out / "manifest.json").read_text() == manifest
    assert main(prepare_args(files, out, "--force")) == 0


def test_skip_bad_samples_lists_what_it_skipped(tmp_path, capsys):
    files = write_tiny(tmp_path)
    (tmp_path / "bad.pat").write_text("chr1\t1001\tCQ\t1\n")
    files["sheet"].write_text(files["sheet"].read_text() + "s2\tlung\tval\tbad.pat\tpat\n")
    out = tmp_path / "store"
    assert main(prepare_args(files, out, "--skip-bad-samples")) == 0
    captured = capsys.readouterr()
    assert "skipped s2:" in captured.err and "bad.pat:1:" in captured.err
    assert "store ready" in captured.out and "(1 sample(s) skipped)" in captured.out
    from tissuebert.store.store import Store

    store = Store.open(out, verify_checksums=True)
    assert [s.sample_id for s in store.samples()] == ["s1"]
    assert list(store.manifest.provenance["skipped_samples"]) == ["s2"]

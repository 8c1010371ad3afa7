"""`tissuebert prepare / validate / inspect` in-process on the hand-drawn inputs of tiny.py."""

from __future__ import annotations

import json

import numpy as np

from tests.support.tiny import write_tiny
from tissuebert.cli.app import main
from tissuebert.constants import STORE
from tissuebert.store.sample import unpack_calls
from tissuebert.store.store import Store


def prepare_args(files, out, *extra):
    return ["prepare", "--samples", str(files["sheet"]), "--reference", str(files["reference"]), "--regions",
            str(files["regions"]), "--cpg-index", str(files["cpg_index"]), "--out", str(out), *extra]


def _two_sample_sheet(files, tissue2="lung"):
    (files["sheet"].parent / "s2.pat").write_text("chr1\t1004\tCT\t2\n")
    files["sheet"].write_text("sample_id\ttissue\tsplit\tpath\tformat\tdonor\n"
                              "s1\tliver\ttrain\ts1.pat\tpat\td1\n"
                              f"s2\t{tissue2}\tval\ts2.pat\tpat\td2\n")


def test_prepare_validate_inspect(tmp_path, capsys):
    files = write_tiny(tmp_path / "in")
    _two_sample_sheet(files)
    out = tmp_path / "store"
    assert main(prepare_args(files, out)) == 0
    assert "store ready" in capsys.readouterr().out
    store = Store.open(out, verify_checksums=True)
    assert store.tissues == ["liver", "lung"]
    s1, s2 = store.sample("s1"), store.sample("s2")
    assert (s1.tissue_id, s1.split, s1.n_reads, s1.n_windows_covered, s1.donor) == (0, "train", 7, 2, "d1")
    assert (s2.tissue_id, s2.split, s2.n_reads, s2.n_windows_covered) == (1, "val", 4, 2)
    reads = store.reads("s2")
    # s2: 'CT' from CpG 1004 -> window 1 [U], window 2 [T -> U]... C at 1004 is M, T at 1005 is U
    assert reads.window_idx.tolist() == [1, 1, 2, 2]
    assert unpack_calls(reads.calls, 1)[:, 0].tolist() == [1, 1, 0, 0]
    assert reads.window_ptr.tolist() == [0, 0, 2, 4]
    manifest = json.loads((out / STORE.MANIFEST).read_text())
    assert manifest["provenance"]["min_cpgs"] == 1 and manifest["provenance"]["skipped_samples"] == {}

    assert main(["validate", str(out)]) == 0
    assert "store OK: 2 samples, 2 tissues, 3 windows, 11 reads" in capsys.readouterr().out
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "  liver        1       0       0" in text and "  lung         0       1       0" in text
    assert "pseudo-read share: 0.0% of reads" in text
    # s1 rows hold 3, 3, 1, 1, 1, 1, 1 calls; s2 rows 1 call each
    assert "CpG calls per read: min 1 / median 1 / max 3 (mean 1.4)" in text


def test_validate_detects_a_changed_sample_file(tmp_path, capsys):
    files = write_tiny(tmp_path / "in")
    out = tmp_path / "store"
    assert main(prepare_args(files, out)) == 0
    sample = out / STORE.SAMPLES_DIR / "s1.h5"
    data = bytearray(sample.read_bytes())
    data[-1] ^= 0xFF
    sample.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["validate", str(out)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


def test_tissue_map_collapses_labels(tmp_path):
    files = write_tiny(tmp_path / "in")
    _two_sample_sheet(files, tissue2="Liver-Hep")
    tmap = tmp_path / "in" / "map.tsv"
    tmap.write_text("label\tclass\nliver\tLiver\nLiver-Hep\tLiver\n")
    out = tmp_path / "store"
    assert main(prepare_args(files, out, "--tissue-map", str(tmap))) == 0
    store = Store.open(out)
    assert store.tissues == ["Liver"]
    assert [(s.tissue, s.original_label) for s in store.samples()] == [("Liver", "liver"), ("Liver", "Liver-Hep")]


def test_sharded_prepare_equals_single_run(tmp_path, capsys):
    files = write_tiny(tmp_path / "in")
    _two_sample_sheet(files)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main(prepare_args(files, single)) == 0
    assert main(prepare_args(files, sharded, "--shard", "1/2")) == 0
    assert "shard done" in capsys.readouterr().out
    assert not (sharded / STORE.MANIFEST).exists()
    assert main(["prepare", "--assemble", "--samples", str(files["sheet"]), "--out", str(sharded)]) == 2
    assert "1 sample(s) not prepared yet: s1" in capsys.readouterr().err
    assert main(prepare_args(files, sharded, "--shard", "0/2")) == 0  # the last shard assembles
    a, b = Store.open(single, verify_checksums=True), Store.open(sharded, verify_checksums=True)
    assert a.panel_hash == b.panel_hash and a.tissues == b.tissues
    for sid in ("s1", "s2"):
        assert a.sample(sid).sha256 == b.sample(sid).sha256  # byte-identical sample files
        assert np.array_equal(a.reads(sid).calls, b.reads(sid).calls)


def test_threads_give_the_same_store(tmp_path):
    files = write_tiny(tmp_path / "in")
    _two_sample_sheet(files)
    assert main(prepare_args(files, tmp_path / "a")) == 0
    assert main(prepare_args(files, tmp_path / "b", "--threads", "2")) == 0
    a, b = Store.open(tmp_path / "a"), Store.open(tmp_path / "b")
    assert [s.sha256 for s in a.samples()] == [s.sha256 for s in b.samples()]


def test_inspect_reports_the_pseudo_read_share(tmp_path, capsys):
    from test_pseudo_reads import _write

    files = write_tiny(tmp_path / "in")
    _write(tmp_path / "in", "beta")  # 4 + 1 + 3 pseudo-reads (see test_pseudo_reads.py)
    files["sheet"].write_text(files["sheet"].read_text() + "b1\tlung\ttest\ts.beta\tbeta\n")
    out = tmp_path / "store"
    assert main(prepare_args(files, out)) == 0
    store = Store.open(out)
    assert (store.sample("b1").n_reads, store.sample("b1").pseudo_reads, store.sample("s1").pseudo_reads) == (8, True, False)
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pseudo-read share: 53.3% of reads" in text  # 8 of 15
    assert "  b1                       lung   test           8        3          2.7" in text

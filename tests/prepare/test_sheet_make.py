"""`tissuebert sheet`: GEO series-matrix parsing, the donor-aware stratified split, and the CLI on the
real UXM tutorial .pat files (the sheet it writes is read back by the reader `prepare` uses)."""

from __future__ import annotations

import gzip
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tissuebert.cli.app import main
from tissuebert.errors import InputFormatError, TissueBertError
from tissuebert.io.sheet import read_sheet, read_tissue_map
from tissuebert.prepare.sheet_make import DEFAULT_FRACTIONS, assign_splits, make_sheet, read_series_matrix, sample_key

# GEO's series-matrix layout: one '!Sample_*' row per field, one quoted cell per sample; each
# sample lists its characteristics in its own order (the second sample puts the donor first).
MATRIX = "\n".join([
    '!Series_title\t"A methylome atlas"',
    '!Sample_title\t"Liver-Hep-Z0000001"\t"Blood-B-Z0000002"\t"Liver-Hep-Z0000003"',
    '!Sample_geo_accession\t"GSM100"\t"GSM101"\t"GSM102"',
    '!Sample_source_name_ch1\t"liver"\t"blood"\t"liver"',
    '!Sample_characteristics_ch1\t"cell type: Hepatocytes"\t"donor: D7"\t"cell type: Hepatocytes"',
    '!Sample_characteristics_ch1\t"donor: D1"\t"cell type: B cells"\t"donor: D2"',
    '!series_matrix_table_begin',
    '"ID_REF"\t"GSM100"\t"GSM101"\t"GSM102"',
    '!series_matrix_table_end',
]) + "\n"


def test_series_matrix_fields_follow_each_samples_own_order(tmp_path: Path) -> None:
    path = tmp_path / "GSE1_series_matrix.txt.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(MATRIX)
    ann = read_series_matrix(path, "cell type", "donor")
    assert {k: (a.label, a.donor) for k, a in ann.items()} == {
        "GSM100": ("Hepatocytes", "D1"), "GSM101": ("B cells", "D7"), "GSM102": ("Hepatocytes", "D2")}
    assert read_series_matrix(path, "title", None)["GSM101"].label == "Blood-B-Z0000002"
    assert read_series_matrix(path, "source_name", None)["GSM102"].label == "liver"
    with pytest.raises(InputFormatError, match="no sample field 'tissue'.*cell type, donor"):
        read_series_matrix(path, "tissue", None)


def test_sample_key_is_the_gsm_accession_or_the_name_without_suffix() -> None:
    assert sample_key(Path("GSM5652176_Adipocytes-Z000000T7.hg38.pat.gz")) == "GSM5652176"
    assert sample_key(Path("Liver_STL011.pat.gz")) == "Liver_STL011"
    assert sample_key(Path("x/S1.beta")) == "S1"


def _cohort(seed: int) -> dict[str, Counter]:
    """~200 donors each giving 1-8 of 22 classes, some classes rare (2-3 donors): atlas-like."""
    rng = random.Random(seed)
    classes = [f"c{k:02d}" for k in range(22)]
    weights = [0.2 if k < 4 else 1.0 for k in range(22)]
    groups: dict[str, Counter] = {}
    for d in range(200):
        picked = rng.choices(classes, weights=weights, k=rng.randint(1, 8))
        groups[f"d{d}"] = Counter(picked)
    return groups


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_hits_the_shares_and_gives_every_class_train_and_val(seed: int) -> None:
    groups = _cohort(seed)
    split_of = assign_splits(groups, DEFAULT_FRACTIONS, seed)
    per_split: Counter = Counter()
    per_class: dict[str, Counter] = defaultdict(Counter)
    donors: dict[str, set] = defaultdict(set)
    for donor, counts in groups.items():
        for cls, n in counts.items():
            per_split[split_of[donor]] += n
            per_class[cls][split_of[donor]] += n
            donors[cls].add(donor)
    total = sum(per_split.values())
    for s, target in zip(("train", "val", "test"), DEFAULT_FRACTIONS):
        assert abs(per_split[s] / total - target) < 0.03, (s, per_split[s] / total)
    for cls, counts in per_class.items():
        if len(donors[cls]) >= 2:
            assert counts["train"] >= 1 and counts["val"] >= 1, (cls, counts)
        n = sum(counts.values())
        if n >= 40:  # common classes: each split within 0.12 of its share (a donor is 1-8 samples)
            for s, target in zip(("train", "val", "test"), DEFAULT_FRACTIONS):
                assert abs(counts[s] / n - target) < 0.12, (cls, s, counts)


def test_two_donor_class_gets_one_train_and_one_val() -> None:
    groups = {"a": Counter({"rare": 1}), "b": Counter({"rare": 1})}
    assert sorted(assign_splits(groups).values()) == ["train", "val"]


def test_make_sheet_without_donors_splits_samples_and_needs_labels(tmp_path: Path) -> None:
    files = []
    for k in range(6):
        f = tmp_path / f"GSM{k}_Liver-Hep-Z{k}.pat.gz"
        f.write_bytes(b"")
        files.append(f)
    entries = make_sheet(files, tmp_path / "s.tsv", annotations=None, label_pattern=r"^GSM\d+_(?P<label>.+)-Z\d+")
    assert {e.label for e in entries} == {"Liver-Hep"}
    assert [e.sample_id for e in entries] == [f"GSM{k}" for k in range(6)]
    assert all(e.path == Path(f.name) for e, f in zip(entries, files))  # relative to the sheet's folder
    assert Counter(e.split for e in entries)["train"] >= 3
    with pytest.raises(TissueBertError, match="label-pattern"):
        make_sheet(files, tmp_path / "s.tsv", annotations=None)


UXM = "UXM_deconv/tutorial/data"
ANNOTATION = ("sample\tlabel\tdonor\nLiver_STL011\tLiver-Hep\tSTL011\nLung_STL002\tLung-Ep-Alveo\tSTL002\n"
              "Pancreas_STL002\tPancreas-Acinar\tSTL002\nPancreas_STL003\tPancreas-Acinar\tSTL003\n"
              "Sigmoid_Colon_STL003\tColon-Ep\tSTL003\n")


def test_cli_on_real_pat_files(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = shared_data / UXM
    ann = tmp_path / "ann.tsv"
    ann.write_text(ANNOTATION)
    out = tmp_path / "samples.tsv"
    args = ["sheet", f"{data}/*.pat.gz", "--annotation", str(ann), "--tissue-map", "atlas22", "--out", str(out)]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    rows = read_sheet(out, read_tissue_map("atlas22"))
    assert sorted(r.path for r in rows) == sorted(p.resolve() for p in data.glob("*.pat.gz"))
    split = {r.sample_id: r.split for r in rows}
    # donors stay whole: STL002 (lung, pancreas) and STL003 (pancreas, colon)
    assert split["Lung_STL002"] == split["Pancreas_STL002"]
    assert split["Pancreas_STL003"] == split["Sigmoid_Colon_STL003"]
    # the pancreas class has two donors: one in train, one in val
    assert {split["Pancreas_STL002"], split["Pancreas_STL003"]} == {"train", "val"}
    assert "Pancreas-Acinar\t1\t1\t0\t2" in stdout
    before = out.read_text()
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    ann.write_text(ANNOTATION.replace("Liver_STL011\tLiver-Hep\tSTL011\n", ""))
    assert main(args + ["--force"]) == 2
    err = capsys.readouterr().err
    assert "Liver_STL011" in err and "not in the annotation" in err
    assert out.read_text() == before  # a failed run leaves the old sheet alone

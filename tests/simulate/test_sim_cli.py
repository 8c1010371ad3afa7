"""`tissuebert simulate` / `simulate-mixture` through the real entry point, in-process."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.support.simtools import read_pat
from tissuebert.cli.app import main
from tissuebert.simulate import load_truth

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`


def test_simulate_cli_writes_a_reproducible_cohort(tmp_path, capsys):
    args = ["simulate", "--preset", "demo", "--tissues", "3", "--regions", "12", "--samples-per-tissue", "3",
            "--depth-min", "10", "--depth-max", "12", "--frag-mode", "150", "--nonconversion", "0.01",
            "--seq-error", "0.002", "--seed", "5", "--no-bam"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    meta = json.loads((tmp_path / "a" / "simulate.json").read_text())
    assert meta["seed"] == 5 and meta["config"]["frag_mode"] == 150 and meta["config"]["nonconversion"] == 0.01
    assert meta["tissues"] == ["Blood-B", "Blood-T", "Liver-Hep"] and meta["n_regions"] == 12
    truth = load_truth(tmp_path / "a")
    assert truth.seq_error == 0.002 and truth.tissues == meta["tissues"]
    assert not (tmp_path / "a" / "bam").exists() and not (tmp_path / "a" / "samples_bam.tsv").exists()
    # same seed, same bytes of content
    for rel in ("genome.fa", "regions.bed", "samples.tsv", "pat/Liver-Hep_01.pat.gz"):
        a, b = tmp_path / "a" / rel, tmp_path / "b" / rel
        assert (read_pat(a) == read_pat(b)) if rel.endswith(".gz") else (a.read_bytes() == b.read_bytes())
    # an existing output is refused without --force (exit 2, one line), accepted with it
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]
    assert main(args + ["--out", str(tmp_path / "a"), "--seed", "6", "--force"]) == 0
    assert json.loads((tmp_path / "a" / "simulate.json").read_text())["seed"] == 6


def test_simulate_mixture_cli(small_cohort, tmp_path):
    out = tmp_path / "mix"
    assert main(["simulate-mixture", "--cohort", str(small_cohort), "--proportions", "Blood-T=0.25,Neuron=0.75",
                 "--depth", "20", "--seed", "3", "--name", "m1", "--out", str(out)]) == 0
    with open(out / "truth.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    got = {r["tissue"]: float(r["proportion"]) for r in rows if r["mixture"] == "m1"}
    assert got["Blood-T"] == 0.25 and got["Neuron"] == 0.75 and sum(got.values()) == 1.0
    assert len(got) == len(load_truth(small_cohort).tissues)
    assert (out / "m1.pat.gz.csi").is_file() and len(read_pat(out / "m1.pat.gz")) > 100
    assert main(["simulate-mixture", "--cohort", str(small_cohort), "--random", "3", "--seed", "1",
                 "--out", str(tmp_path / "rand")]) == 0
    with open(tmp_path / "rand" / "truth.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for name in ("mix_001", "mix_002", "mix_003"):
        props = np.array([float(r["proportion"]) for r in rows if r["mixture"] == name])
        assert abs(props.sum() - 1) < 1e-5 and 2 <= (props > 0).sum() <= 5
        assert (tmp_path / "rand" / f"{name}.pat.gz").is_file()


def test_bad_input_gives_one_line_and_exit_2(small_cohort, tmp_path, capsys):
    cases = [
        ["simulate", "--out", str(tmp_path / "x"), "--preset", "huge"],
        ["simulate", "--out", str(tmp_path / "x"), "--depth-min", "50", "--depth-max", "10"],
        ["simulate", "--out", str(tmp_path / "x"), "--reference", str(tmp_path / "missing.fa")],
        ["simulate-mixture", "--cohort", str(small_cohort), "--proportions", "Liver-Hep=1", "--out", str(tmp_path / "m")],
        ["simulate-mixture", "--cohort", str(small_cohort), "--proportions", "Neuron=0.5", "--out", str(tmp_path / "m")],
        ["simulate-mixture", "--cohort", str(tmp_path), "--random", "2", "--out", str(tmp_path / "m")],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tissuebert: error:"), (argv, err)


def test_help_ends_with_an_example(capsys):
    for cmd in ("simulate", "simulate-mixture"):
        assert main([cmd, "--help"]) == 0
        assert f"Example: tissuebert {cmd} " in capsys.readouterr().out


def test_simulate_threads_write_the_same_cohort(tmp_path):
    args = ["simulate", "--preset", "demo", "--tissues", "3", "--regions", "8", "--samples-per-tissue", "3",
            "--depth-min", "5", "--depth-max", "6", "--seed", "2"]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    assert main(args + ["--out", str(tmp_path / "two"), "--threads", "2"]) == 0  # samples in 2 processes
    one, two = load_truth(tmp_path / "one"), load_truth(tmp_path / "two")
    assert one.samples == two.samples
    for rec in one.samples:
        rel = f"pat/{rec['sample_id']}.pat.gz"
        assert read_pat(tmp_path / "one" / rel) == read_pat(tmp_path / "two" / rel)
    assert (tmp_path / "one" / "samples_bam.tsv").read_bytes() == (tmp_path / "two" / "samples_bam.tsv").read_bytes()

"""`deconvolve --truth`: estimates beside a known composition (issue 13 item 3), and the truth
file's mistakes refused with the file and line named, before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tissuebert.cli.app import main
from tissuebert.constants import OUT


def _rows(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_truth_beside_every_estimate_and_a_uniform_guess(tiny, tmp_path, capsys):
    truth = tmp_path / "truth.tsv"
    truth.write_text("mixture\ttissue\tproportion\nLiver_test0\tLiver\t1.0\nBlood_test0\tBlood\t0.9\n"
                     "Blood_test0\tLung\t0.1\nnot_run\tLiver\t1\n")
    out = tmp_path / "d"
    assert main(["deconvolve", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--sample",
                 "Liver_test0", "--sample", "Blood_test0", "--method", "em,nnls", "--bootstrap", "0",
                 "--no-posteriors", "--device", "cpu", "--truth", str(truth), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Liver_test0 vs truth: em MAE" in printed and "uniform guess MAE 0.4444" in printed
    header, rows = _rows(out / OUT.VS_TRUTH)
    assert header == ["sample", "method", "tissue", "truth", "proportion", "error"]
    assert len(rows) == 2 * 3 * 3  # samples x (em, nnls, uniform guess) x tissues
    _, estimates = _rows(out / OUT.COHORT_PROPORTIONS)
    expected_truth = {("Liver_test0", "Liver"): 1.0, ("Blood_test0", "Blood"): 0.9, ("Blood_test0", "Lung"): 0.1}
    summary = json.loads((out / OUT.RUN_INFO).read_text())["truth"]["per_sample"]
    for sample in ("Liver_test0", "Blood_test0"):
        for method in ("em", "nnls"):
            est = {r["tissue"]: float(r["proportion"]) for r in estimates if r["sample"] == sample and r["method"] == method}
            err = [est[t] - expected_truth.get((sample, t), 0.0) for t in est]
            got = {r["tissue"]: r for r in rows if r["sample"] == sample and r["method"] == method}
            for t, e in zip(est, err):
                assert float(got[t]["truth"]) == expected_truth.get((sample, t), 0.0)
                assert float(got[t]["error"]) == pytest.approx(e, abs=2e-6)
            assert summary[sample][method]["mae"] == pytest.approx(np.mean(np.abs(err)), abs=2e-6)
            assert summary[sample][method]["max_abs_error"] == pytest.approx(np.max(np.abs(err)), abs=2e-6)
    # a pure Liver sample: the model is close to the truth, far closer than a uniform guess (MAE 4/9)
    assert summary["Liver_test0"]["em"]["mae"] < 0.1 < summary["Liver_test0"]["uniform guess"]["mae"]
    assert "not_run" not in summary


@pytest.mark.parametrize("text,message", [
    ("tissue\tproportion\nLiver\t0.5\nBlood\t0.3\n", "adds up to 0.8000, not 1"),
    ("tissue\tproportion\nLiver\tx\n", "truth.tsv:2: proportion 'x' is not a number"),
    ("tissue\tshare\nLiver\t1\n", "lacks the column(s) proportion"),
    ("tissue\tproportion\nLiver\t1\nLiver\t0\n", "truth.tsv:3: tissue Liver listed twice"),
    ("tissue\tproportion\nKidney\t1\n", "names tissue(s) Kidney that the methods do not estimate"),
    ("sample\ttissue\tproportion\nother\tLiver\t1\n", "names none of the samples (Liver_test0)"),
])
def test_a_bad_truth_file_is_one_error_and_no_output(tiny, tmp_path, capsys, text, message):
    truth = tmp_path / "truth.tsv"
    truth.write_text(text)
    out = tmp_path / "d"
    assert main(["deconvolve", "--store", str(tiny.store.root), "--sample", "Liver_test0", "--method", "nnls",
                 "--bootstrap", "0", "--truth", str(truth), "--out", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tissuebert: error")]
    assert len(errors) == 1 and message in errors[0] and "truth.tsv" in errors[0]
    assert not out.exists()

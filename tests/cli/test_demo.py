"""`tissuebert demo` end to end (one short epoch): every number of its summary is recomputed here
from the files the demo's own stages wrote, so the summary cannot drift from what it reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tissuebert.cli.cmd_demo import DEMO_METHODS, ORACLE, TRUTH_SUFFIX, UNIFORM, run_demo
from tissuebert.deconvolve.output import read_proportions_tsv


@pytest.mark.slow
def test_demo_summary_matches_its_outputs(tmp_path):
    out = tmp_path / "demo"
    summary = run_demo(out, seed=0, force=False, epochs=1, preset="demo")
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["mixture_mae"] == pytest.approx(summary["mixture_mae"])

    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert summary["reads"]["model"]["balanced_accuracy"] == metrics["balanced_accuracy"]
    assert summary["reads"][ORACLE]["accuracy"] == metrics["oracle"]["accuracy"]
    assert summary["reads"]["logreg"]["balanced_accuracy"] == metrics["logreg"]["balanced_accuracy"]
    assert summary["test_sample_calls"]["total"] == 8  # one call per test sample of the demo cohort
    # each tissue's F1 share of the oracle's, recomputed from the evaluation's metrics.json
    shares = summary["f1_share_of_oracle"]
    assert set(shares) == set(metrics["per_tissue"])
    oracle_rows = (out / "eval" / "per_tissue.tsv").read_text().splitlines()
    oracle_f1 = {row.split("\t")[0]: float(row.split("\t")[-1]) for row in oracle_rows[1:]}
    for tissue, block in metrics["per_tissue"].items():
        assert shares[tissue] == pytest.approx(block["f1"] / oracle_f1[tissue], abs=1e-4)
    low = min(shares, key=shares.get)
    assert f"from {shares[low]:.2f} ({low})" in (out / "summary.md").read_text()

    tissues = summary["mixtures"][0]["methods"]["em"]["estimated"].keys()
    maes = {m: [] for m in (*DEMO_METHODS, ORACLE)}
    for row in summary["mixtures"]:
        assert abs(sum(row["true"].values()) - 1) < 1e-3
        est = read_proportions_tsv(out / "deconvolution" / row["mixture"] / "proportions.tsv")
        assert set(est) == set(DEMO_METHODS)  # model EM, logreg, UXM, NNLS side by side
        for method in DEMO_METHODS:
            err = [abs(est[method].get(t, 0.0) - row["true"].get(t, 0.0)) for t in tissues]
            maes[method].append(np.mean(err))
            assert row["methods"][method]["mae"] == pytest.approx(np.mean(err), abs=1e-6)
        oracle_err = [abs(row["methods"][ORACLE]["estimated"].get(t, 0.0) - row["true"].get(t, 0.0)) for t in tissues]
        maes[ORACLE].append(np.mean(oracle_err))
        # the oracle knows the generative model: at 30x its estimate is close to the truth
        assert np.max(oracle_err) < 0.1
    for method, values in maes.items():
        assert summary["mixture_mae"][method] == pytest.approx(np.mean(values), abs=1e-4)
    text = (out / "summary.md").read_text()
    for name in ("TissueBERT (EM)", "logreg (EM)", "UXM", "NNLS", "oracle", "uniform guess"):
        assert name in text

    # the truth file beside each mixture is the summary's truth
    for row in summary["mixtures"]:
        lines = (out / "mixtures" / f"{row['mixture']}{TRUTH_SUFFIX}").read_text().splitlines()
        assert lines[0] == "tissue\tproportion"
        on_file = {t: float(p) for t, p in (line.split("\t") for line in lines[1:])}
        assert set(row["true"]) <= set(on_file)
        for tissue, value in on_file.items():
            assert value == pytest.approx(row["true"].get(tissue, 0.0), abs=1e-4)
        assert (out / "mixtures" / f"{row['mixture']}.pat.gz").is_file()
        # the uniform guess row: mean |1/T - truth|, computed here from the truth file
        uniform = np.mean([abs(1 / len(on_file) - p) for p in on_file.values()])
        assert row["methods"][UNIFORM]["mae"] == pytest.approx(uniform, abs=1e-6)
        # every estimate the summary shows is the per-mixture file's value
        est = read_proportions_tsv(out / "deconvolution" / row["mixture"] / "proportions.tsv")
        for method in DEMO_METHODS:
            for tissue, value in row["methods"][method]["estimated"].items():
                assert value == pytest.approx(est[method][tissue], abs=1e-4)
                assert f"{value:.3f}" in text or value < 0.01  # shown in summary.md beside the truth
    # the three mixtures were deconvolved in one call: one cohort table holds the per-mixture files
    cohort = (out / "deconvolution" / "cohort_proportions.tsv").read_text().splitlines()
    assert cohort[0].split("\t")[:3] == ["sample", "method", "tissue"]
    for line in cohort[1:]:
        sample, method, tissue, value = line.split("\t")[:4]
        est = read_proportions_tsv(out / "deconvolution" / sample / "proportions.tsv")
        assert float(value) == pytest.approx(est[method][tissue], abs=1e-6)
    assert {line.split("\t")[0] for line in cohort[1:]} == {r["mixture"] for r in summary["mixtures"]}
    run_info = json.loads((out / "deconvolution" / "run.json").read_text())
    assert summary["deconvolution_warnings"] == run_info["warnings"]
    # each mixture's plot names its sample: the three PNGs differ
    pngs = {(out / "deconvolution" / r["mixture"] / "proportions.png").read_bytes() for r in summary["mixtures"]}
    assert len(pngs) == len(summary["mixtures"])

"""`tissuebert demo` end to end (one short epoch): every number of its summary is recomputed here
from the files the demo's own stages wrote, so the summary cannot drift from what it reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tissuebert.cli.cmd_demo import DEMO_METHODS, ORACLE, run_demo
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
    for name in ("TissueBERT (EM)", "logreg (EM)", "UXM", "NNLS", "oracle"):
        assert name in text

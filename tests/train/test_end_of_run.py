"""The end of `tissuebert train`: RUN/summary.json and the warning on a run that ends at chance."""

from __future__ import annotations

import json

import pytest

from tissuebert.cli.app import main
from tissuebert.cli.train_checks import RUN_SUMMARY, end_of_run_warnings


def test_chance_warning_threshold():
    assert end_of_run_warnings({"balanced_accuracy": 1 / 22 + 0.009}, 22)  # within a point of 1/22
    assert end_of_run_warnings({"balanced_accuracy": 0.30}, 3)  # below chance is worse still
    assert end_of_run_warnings({"balanced_accuracy": 1 / 22 + 0.02}, 22) == []
    assert end_of_run_warnings({}, 22) == []  # no validation metrics: nothing to judge


@pytest.mark.parametrize("balanced, warned", [(0.505, True), (0.97, False)])
def test_train_cli_writes_the_summary_and_warns_at_chance(marker_store, tmp_path, monkeypatch, capsys,
                                                          balanced, warned):
    import tissuebert.train

    def fake_training(config, store, out, **kwargs):  # the loop itself is tested elsewhere
        out.mkdir(parents=True, exist_ok=True)
        return {"accuracy": balanced, "balanced_accuracy": balanced, "macro_f1": balanced, "loss": 0.69,
                "per_tissue": [{"tissue": "meth"}]}

    monkeypatch.setattr(tissuebert.train, "run_training", fake_training)
    run = tmp_path / "run"
    assert main(["train", "--store", str(marker_store), "--out", str(run)]) == 0
    err = capsys.readouterr().err
    summary = json.loads((run / RUN_SUMMARY).read_text())
    assert summary["chance_accuracy"] == 0.5 and summary["n_tissues"] == 2  # the marker store's two tissues
    assert summary["validation"]["balanced_accuracy"] == balanced and "per_tissue" not in summary["validation"]
    assert bool(summary["warnings"]) is warned
    assert ("within a point of chance" in err) is warned

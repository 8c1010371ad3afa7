"""The demo summary's plain sentences follow the numbers both ways, reads and mixtures apart."""

from __future__ import annotations

from tissuebert.cli.cmd_demo import _verdicts


def _summary(model_acc, logreg_acc, em, logreg, uxm, nnls, oracle):
    return {"reads": {"model": {"balanced_accuracy": model_acc}, "logreg": {"balanced_accuracy": logreg_acc}},
            "mixture_mae": {"em": em, "logreg": logreg, "uxm": uxm, "nnls": nnls, "oracle": oracle}}


def test_level_reads_but_better_mixtures_say_both():
    out = _verdicts(_summary(0.195, 0.196, 0.0139, 0.0219, 0.0159, 0.0173, 0.0096))
    assert out[0].startswith("Per read, the transformer is not more accurate")
    assert "beat UXM and NNLS (MAE 0.0139 against 0.0159)" in out[1] and "(1.45x)" in out[1]
    assert out[2] == "They also beat the logistic regression's (MAE 0.0219)."


def test_worse_mixtures_point_to_the_baseline_and_a_far_oracle_is_named():
    worse = _verdicts(_summary(0.20, 0.19, 0.020, 0.010, 0.016, 0.017, 0.009))
    assert worse[0].startswith("Per read, the transformer is more accurate") and "20.0% against 19.0%" in worse[0]
    assert worse[1].startswith("The model's mixture estimates are no better than a reference baseline")
    assert len(worse) == 2  # logreg's MAE is lower: no sentence claims otherwise
    far = _verdicts(_summary(0.20, 0.19, 0.015, 0.020, 0.016, 0.017, 0.005))
    assert "3.0x the oracle's" in far[1]

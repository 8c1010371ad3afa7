"""The benchmark report's opening sentence and its bold cells: the best method a user can run."""

from __future__ import annotations

from tissuebert.benchmark.report import best_usable, verdict


def _result(maes: dict[str, dict[str, float]]) -> dict:
    return {"methods": {m: {"per_depth": {d: {"mae": v} for d, v in per.items()}} for m, per in maes.items()}}


def test_verdict_names_the_best_usable_method_per_depth_and_its_distance_to_the_oracle():
    result = _result({"em": {"10x": 0.030, "30x": 0.015}, "uxm": {"10x": 0.025, "30x": 0.020},
                      "oracle": {"10x": 0.010, "30x": 0.010}})
    # the oracle is lowest everywhere but is not usable: uxm wins at 10x, em at 30x
    assert best_usable(result) == {"10x": "uxm", "30x": "em"}
    assert verdict(result) == ("Best usable method on random sparse mixtures: uxm at 10x (MAE 0.0250; 2.50x the "
                               "oracle's); em at 30x (MAE 0.0150; 1.50x the oracle's).")


def test_verdict_without_an_oracle():
    result = _result({"em": {"10x": 0.03, "100x": 0.01}, "nnls": {"10x": 0.04, "100x": 0.02}})
    assert verdict(result) == "Best usable method on random sparse mixtures: em at 10x, 100x (MAE 0.0300, 0.0100)."

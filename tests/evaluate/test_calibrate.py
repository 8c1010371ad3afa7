"""Calibration: ECE on hand-made bins, temperature recovery, and `tissuebert calibrate`."""

from __future__ import annotations

import numpy as np
import torch

from tissuebert.cli.app import main
from tissuebert.constants import CKPT
from tissuebert.evaluate import evaluate_split, expected_calibration_error, fit_temperature, nll, softmax_probs
from tissuebert.inference.checkpoint import load_checkpoint, save_checkpoint


def test_ece_by_hand():
    # 4 reads: two at confidence 0.9 (one right), two at 0.6 (both right), 10 bins.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    targets = np.array([0, 1, 0, 1])
    # bin (0.8, 0.9]: acc 0.5, conf 0.9 -> 0.4 * 2/4; bin (0.5, 0.6]: acc 1.0, conf 0.6 -> 0.4 * 2/4
    assert expected_calibration_error(probs, targets, n_bins=10) == 0.4


def test_fit_temperature_recovers_the_sharpening_factor():
    # Reads whose true posteriors are softmax(z); the "model" reports 3 z (over-confident).
    # The NLL-optimal temperature is then 3 up to the sampling noise of 20,000 labels (~2%).
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20000, 5))
    labels = (rng.random(20000)[:, None] > np.cumsum(softmax_probs(z), axis=1)).sum(axis=1)
    t = fit_temperature(3 * z, labels)
    assert abs(t - 3.0) < 0.15
    assert nll(3 * z, labels, t) < nll(3 * z, labels, 1.0)
    ece_before = expected_calibration_error(softmax_probs(3 * z), labels)
    assert expected_calibration_error(softmax_probs(3 * z, t), labels) < ece_before / 3


def test_fit_temperature_never_worsens_nll():
    # logits that are already calibrated: the fit may move T a little but never raise the NLL
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3000, 4))
    labels = (rng.random(3000)[:, None] > np.cumsum(softmax_probs(z), axis=1)).sum(axis=1)
    t = fit_temperature(z, labels)
    assert nll(z, labels, t) <= nll(z, labels, 1.0)
    assert abs(t - 1.0) < 0.15


def test_calibrate_cli_on_an_overconfident_checkpoint(tiny, tmp_path, capsys):
    # Make the trained model over-confident: scaling the last layer by 4 multiplies its logits by 4.
    state = load_checkpoint(tiny.checkpoint)
    weights = dict(state[CKPT.MODEL])
    last = max(k for k in weights if k.startswith("head.") and k.endswith(".weight"))
    bias = last.replace("weight", "bias")
    weights[last] = weights[last] * 4
    weights[bias] = weights[bias] * 4
    state[CKPT.MODEL] = weights
    sharp = tmp_path / "sharp.pt"
    save_checkpoint(sharp, state)

    assert main(["calibrate", "--checkpoint", str(sharp), "--store", str(tiny.store.root)]) == 0
    assert "temperature" in capsys.readouterr().out
    calibrated = load_checkpoint(tmp_path / "sharp.calibrated.pt")
    report = calibrated[CKPT.CALIBRATION]
    assert report["nll_after"] <= report["nll_before"]
    assert report["ece_after"] < report["ece_before"]
    # the unscaled model was trained with plain cross-entropy, so T should undo most of the x4
    assert 2.0 < calibrated[CKPT.TEMPERATURE] < 8.0
    # the calibrated checkpoint is used by evaluate: its test ECE drops too
    torch.manual_seed(0)
    before = evaluate_split(sharp, tiny.store, "test", tmp_path / "e1")
    after = evaluate_split(tmp_path / "sharp.calibrated.pt", tiny.store, "test", tmp_path / "e2")
    assert after["ece"] < before["ece"]
    # evaluate decides with the bias-corrected calibration calibrate stored beside T
    stored = calibrated[CKPT.CLASS_BIAS]
    assert after["temperature"] == stored["temperature"]
    assert list(after["class_bias"].values()) == stored["bias"]
    # with the temperature alone the argmax is the uncalibrated one: a temperature never changes it
    del calibrated[CKPT.CLASS_BIAS]
    save_checkpoint(tmp_path / "temperature_only.pt", calibrated)
    plain = evaluate_split(tmp_path / "temperature_only.pt", tiny.store, "test", tmp_path / "e3")
    assert plain["temperature"] == calibrated[CKPT.TEMPERATURE] and plain["class_bias"] is None
    assert plain["accuracy"] == before["accuracy"]
    # refuses to overwrite the calibrated file without --force
    assert main(["calibrate", "--checkpoint", str(sharp), "--store", str(tiny.store.root)]) == 2


def test_calibration_keeps_a_temperature_only_if_it_lowers_the_nll_and_reports_a_worse_ece():
    from tissuebert.evaluate.calibrate import calibration_report

    rng = np.random.default_rng(2)
    z = rng.normal(size=(2000, 4))
    labels = (rng.random(2000)[:, None] > np.cumsum(softmax_probs(z), axis=1)).sum(axis=1)
    # calibrated logits: T = 3 would raise the NLL, so the report keeps T = 1 and says so
    report = calibration_report(z, labels, 3.0, bins=10)
    assert nll(z, labels, 3.0) > nll(z, labels, 1.0)
    assert report["temperature"] == 1.0 and report["nll_after"] == report["nll_before"]
    assert any("kept T = 1" in w for w in report["warnings"])
    # an ECE-worsening temperature that lowers the NLL is kept, with a warning
    seen = set()
    for seed in range(20):
        r = np.random.default_rng(seed)
        z = 2 * r.normal(size=(300, 4))
        labels = (r.random(300)[:, None] > np.cumsum(softmax_probs(z), axis=1)).sum(axis=1)
        t = fit_temperature(z, labels)
        report = calibration_report(z, labels, t, bins=10)
        worse = (expected_calibration_error(softmax_probs(z, t), labels, n_bins=10)
                 > expected_calibration_error(softmax_probs(z), labels, n_bins=10))
        assert any("ECE worse" in w for w in report["warnings"]) == (worse and report["temperature"] == t)
        seen.add(worse)
    assert seen == {True, False}  # both branches were exercised

"""`tissuebert lr-find`: the sweep, its files and the suggestion rule."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.constants import LR_FIND
from tissuebert.train.lr_find import suggest_lr


def test_suggestion_is_steepest_descent_over_three():
    lrs = np.logspace(-6, 0, 61)  # 10 points per decade
    # a loss that falls fastest at lr = 1e-3 (a logistic step in log10 lr), then rises
    smoothed = 1.0 - 0.8 / (1 + np.exp(-4 * (np.log10(lrs) + 3))) + 2.0 * (lrs > 0.3)
    suggestion, idx = suggest_lr(lrs, smoothed)
    assert lrs[idx] == pytest.approx(1e-3, rel=1e-9)
    assert suggestion == pytest.approx(1e-3 / 3, rel=1e-9)


def test_no_suggestion_without_descent():
    lrs = np.logspace(-6, 0, 61)
    rising = 2.08 + 0.01 * np.log10(lrs / 1e-6)  # a loss that only grows: nothing was learned
    suggestion, idx = suggest_lr(lrs, rising)
    assert np.isnan(suggestion) and idx == -1


def test_no_suggestion_from_a_flat_noisy_curve():
    # a model that learns nothing: the loss wanders by +-1% around ln(22); its steepest wiggle is no descent
    rng = np.random.default_rng(0)
    lrs = np.logspace(-7, 0, 200)
    flat = np.log(22) * (1 + 0.01 * np.sin(np.arange(200) / 3.0) + 0.002 * rng.standard_normal(200))
    suggestion, idx = suggest_lr(lrs, flat)
    assert np.isnan(suggestion) and idx == -1
    # the same curve with a real 30% fall at 1e-3 gets its suggestion back
    fall = flat * (1 - 0.3 / (1 + np.exp(-4 * (np.log10(lrs) + 3))))
    suggestion, idx = suggest_lr(lrs, fall)
    assert 3e-4 < lrs[idx] < 3e-3


def test_lr_find_cli(marker_store, tmp_path, capsys):
    out = tmp_path / "lrf"
    rc = main(["lr-find", "--store", str(marker_store), "--out", str(out), "--steps", "150", "--start-lr", "1e-4",
               "--end-lr", "1", *sets(*FAST)])
    assert rc == 0
    with open(out / LR_FIND.CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    lrs = np.array([float(r["lr"]) for r in rows])
    assert lrs[0] == pytest.approx(1e-4) and np.allclose(lrs[1:] / lrs[:-1], 10 ** (4 / 149), rtol=1e-4)
    summary = json.loads((out / LR_FIND.JSON).read_text())
    assert summary["suggested_lr"] == pytest.approx(summary["steepest_lr"] / 3)
    assert summary["warnings"] == []
    # the easy marker store is learned somewhere in the sweep: the loss must fall well below chance
    assert min(float(r["loss"]) for r in rows) < 0.3 and min(float(r["smoothed_loss"]) for r in rows) < 0.6
    assert 1e-4 < summary["steepest_lr"] < 1.0
    assert (out / LR_FIND.PNG).stat().st_size > 1000
    assert "suggested max LR" in capsys.readouterr().out

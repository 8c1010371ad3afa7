"""The step guard: skipped steps are counted across epochs and resumes, exploding steps are
rejected, too many skips and a non-finite validation end the run with exit 2, never 0."""

from __future__ import annotations

import csv
import math

import pytest

from tests.support.trainhelpers import FAST, NO_STATES, sets
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, RUN
from tissuebert.inference.checkpoint import load_checkpoint
from tissuebert.train import loop
from tissuebert.train.loop import ENV_FAULT_NAN, ENV_FAULT_SIGNAL, ENV_FAULT_SPIKE


def train(store, run, *items, resume=False):
    extra = ["--resume", "auto"] if resume else []
    return main(["train", "--store", str(store), "--out", str(run), *sets(*FAST, "train.log_every=1", *items), *extra])


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_skips_count_across_epochs_and_stop_the_run(marker_store, tmp_path, monkeypatch, capsys):
    """The issue's case: 28 of 30 steps NaN over 10-step epochs used to end with exit 0."""
    run = tmp_path / "nan_heavy"
    good = {4, 15}
    monkeypatch.setenv(ENV_FAULT_NAN, ",".join(str(s) for s in range(30) if s not in good))
    rc = train(marker_store, run, "train.epochs=3", "train.steps_per_epoch=10")
    assert rc == 2
    err = capsys.readouterr().err
    # never 20 in a row; after step 22 (0-based) 21 of 23 steps were skipped: > 20 and > 10% of 23
    assert "21 of 23 steps skipped" in err and "train.max_skipped_frac" in err
    mid = load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")
    assert mid[CKPT.GLOBAL_STEP] == 23 and mid[CKPT.NONFINITE] == 21
    # the epoch ends before the stop counted the run's total, not the epoch's
    assert load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")[CKPT.NONFINITE] == 18
    assert [int(r["skipped_steps"]) for r in rows(run / RUN.LOGS / RUN.EPOCHS_CSV)] == [9, 9]


def test_skips_in_a_row_survive_a_resume_and_an_epoch_end(marker_store, tmp_path, monkeypatch, capsys):
    run = tmp_path / "nan_resume"
    args = ("train.epochs=2", "train.steps_per_epoch=10", "train.max_nonfinite=5")
    monkeypatch.setenv(ENV_FAULT_NAN, "6,7,8")
    monkeypatch.setenv(ENV_FAULT_SIGNAL, "9:SIGUSR1")  # stop after 0-based step 8: three skipped in a row
    assert train(marker_store, run, *args) == 3
    mid = load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")
    assert mid[CKPT.SAMPLER]["skipped_in_a_row"] == 3 and mid[CKPT.NONFINITE] == 3
    monkeypatch.delenv(ENV_FAULT_SIGNAL)
    monkeypatch.setenv(ENV_FAULT_NAN, "9,10")  # the last step of epoch 1 and the first of epoch 2
    capsys.readouterr()
    assert train(marker_store, run, *args, resume=True) == 2
    assert "5 steps in a row skipped" in capsys.readouterr().err
    mid = load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")
    assert mid[CKPT.GLOBAL_STEP] == 11 and mid[CKPT.NONFINITE] == 5


@pytest.mark.parametrize("spike_factor,updates", [("100", 19), ("null", 20)])
def test_exploding_finite_step_is_rejected(marker_store, tmp_path, monkeypatch, spike_factor, updates):
    run = tmp_path / "spike"
    monkeypatch.setenv(ENV_FAULT_SPIKE, "15")  # loss x 1e6: finite, and so is its gradient
    assert train(marker_store, run, "train.epochs=1", "train.steps_per_epoch=20",
                 f"train.spike_factor={spike_factor}") == 0
    state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
    assert state[CKPT.OPTIMIZER]["state"][0]["step"] == updates  # AdamW took the huge step only unguarded
    assert state[CKPT.NONFINITE] == 20 - updates
    step16 = rows(run / RUN.LOGS / RUN.STEPS_CSV)[15]
    assert float(step16["loss"]) > 1e4 and math.isfinite(float(step16["loss"]))
    assert int(step16["skipped_steps"]) == 20 - updates


def test_nan_validation_never_makes_a_best_checkpoint(marker_store, tmp_path, monkeypatch, capsys):
    real = loop.validate

    def broken_second_epoch(run):
        metrics = real(run)
        if run.position.epoch == 1:  # epoch 2: a broken model scores NaN, with an accuracy that looks best
            metrics.update(loss=float("nan"), accuracy=1.0)
        return metrics

    monkeypatch.setattr(loop, "validate", broken_second_epoch)
    run = tmp_path / "nan_val"
    # count_source=stream and no state atlas: counted or fitted from the whole split, the marker store's two tissues are told
    # apart perfectly from the first epoch, and the fake accuracy of 1.0 would look no better
    assert train(marker_store, run, "train.epochs=3", "train.steps_per_epoch=5", "train.count_source=stream",
                 *NO_STATES) == 2
    assert "validation loss is nan after epoch 2" in capsys.readouterr().err
    for name in ("last.pt", "best_acc.pt", "best_loss.pt"):
        state = load_checkpoint(run / RUN.CHECKPOINTS / name)
        assert state[CKPT.EPOCH] == 1 and state[CKPT.BEST_ACC] < 1.0, name

"""Training without a terminal (SLURM logs, nohup): a progress line with the running loss beside
the chance level, the step rate and the run's ETA, and one early line with the measured time per
step and the run's length."""

from __future__ import annotations

import csv
import re

import pytest

from tests.support.trainhelpers import FAST, sets
from tissuebert import progress
from tissuebert.cli.app import main
from tissuebert.constants import RUN
from tissuebert.train import loop


@pytest.mark.slow
def test_log_lines_carry_the_running_loss_chance_and_the_measured_run_length(marker_store, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)  # a line after every step
    monkeypatch.setattr(loop, "RATE_PROBE_STEPS", 5)
    monkeypatch.setattr(loop._Heartbeat, "probed", False)
    run = tmp_path / "run"
    rc = main(["train", "--store", str(marker_store), "--out", str(run),
               *sets(*FAST, "train.log_every=1", "train.epochs=2", "train.steps_per_epoch=15")])
    assert rc == 0
    err = capsys.readouterr().err
    probes = re.findall(r"measured ([\d.]+) s per optimiser step over 5 steps: the remaining (\d+) steps", err)
    assert len(probes) == 1 and probes[0][1] == "25"  # once per process, after 5 of 30 steps
    beats = re.findall(r"epoch (\d)/2 step (\d+)/15 \| loss ([\d.]+) \(chance ln T = ([\d.]+)\)", err)
    assert len(beats) == 30
    assert {b[3] for b in beats} == {"0.6931"}  # two tissues
    with open(run / RUN.LOGS / "steps.csv", newline="") as fh:
        logged = {int(r["global_step"]): float(r["loss"]) for r in csv.DictReader(fh)}
    for epoch, step, loss, _ in beats:
        global_step = (int(epoch) - 1) * 15 + int(step)
        assert float(loss) == pytest.approx(logged[global_step], abs=6e-5)  # one step per line: its own loss

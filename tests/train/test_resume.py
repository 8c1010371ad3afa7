"""Exact resume: SIGKILL mid-epoch, SIGUSR1 with SLURM requeue, and the resume cap (resumes without progress).

Deterministic mode, 2 epochs x 10 steps; every interruption happens at global step 13, i.e.
in the middle of epoch 2. A resumed run must end with weights bit-identical to an
uninterrupted run of the same config, and its logs must hold each epoch and step once.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, RUN
from tissuebert.inference.checkpoint import load_checkpoint
from tissuebert.train.loop import ENV_FAULT_SIGNAL

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`

# threads pinned: the killed run is a subprocess (default threads), the others run in-process
ARGS = sets(*FAST, "train.epochs=2", "train.steps_per_epoch=10", "train.deterministic=true", "train.log_every=1",
            "train.threads=1")
STOP_STEP = 13


def train_args(store, run, *extra):
    return ["train", "--store", str(store), "--out", str(run), "--preset", "tiny", *ARGS, *extra]


def weights(run, name="last.pt"):
    return load_checkpoint(run / RUN.CHECKPOINTS / name)[CKPT.MODEL]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def column(run, name, col):
    with open(run / RUN.LOGS / name, newline="") as fh:
        return [int(float(r[col])) for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def reference(marker_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "reference"
    assert main(train_args(marker_store, run)) == 0
    return run


@pytest.fixture
def fake_scontrol(tmp_path, monkeypatch):
    """An `scontrol` on PATH that records its arguments (the issue's check)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls.txt"
    script = bin_dir / "scontrol"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    return calls


def test_sigkill_mid_epoch_then_resume_is_bit_identical(marker_store, reference, tmp_path):
    run = tmp_path / "killed"
    env = {**os.environ, ENV_FAULT_SIGNAL: f"{STOP_STEP}:SIGKILL"}
    proc = subprocess.run([sys.executable, "-m", "tissuebert", *train_args(marker_store, run)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")[CKPT.EPOCH] == 1  # died inside epoch 2
    assert max(column(run, RUN.STEPS_CSV, "global_step")) == STOP_STEP  # it had logged past the checkpoint
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0
    assert_same_weights(weights(run), weights(reference))
    state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
    assert state[CKPT.RESUME_COUNT] == 1 and state[CKPT.GLOBAL_STEP] == 20
    assert column(run, RUN.STEPS_CSV, "global_step") == list(range(1, 21))  # each step logged once
    assert column(run, RUN.EPOCHS_CSV, "epoch") == [1, 2]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / RUN.TENSORBOARD))
    events.Reload()  # the events logged after last.pt by the killed run are purged
    assert [e.step for e in events.Scalars("step/loss")] == list(range(1, 21))
    assert [e.step for e in events.Scalars("epoch/val_acc")] == [10, 20]


def test_sigusr1_requeues_and_resumes_exactly(marker_store, reference, tmp_path, fake_scontrol, monkeypatch):
    run = tmp_path / "signalled"
    monkeypatch.setenv(ENV_FAULT_SIGNAL, f"{STOP_STEP}:SIGUSR1")
    assert main(train_args(marker_store, run)) == 0  # requeued: the job itself ends cleanly
    assert fake_scontrol.read_text().split() == ["requeue", "4242"]
    mid = load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")
    assert mid[CKPT.MID_EPOCH] is True and mid[CKPT.GLOBAL_STEP] == STOP_STEP
    assert mid[CKPT.SAMPLER]["epoch"] == 1 and mid[CKPT.SAMPLER]["step"] == STOP_STEP - 10

    monkeypatch.delenv(ENV_FAULT_SIGNAL)
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0
    assert_same_weights(weights(run), weights(reference))
    assert not (run / RUN.CHECKPOINTS / "mid_epoch.pt").exists()  # superseded by last.pt
    # the epoch that was cut in two reports the same training numbers as the uninterrupted one
    with open(run / RUN.LOGS / RUN.EPOCHS_CSV) as a, open(reference / RUN.LOGS / RUN.EPOCHS_CSV) as b:
        cut, whole = list(csv.DictReader(a)), list(csv.DictReader(b))
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "skipped_steps"):
        assert [r[key] for r in cut] == [r[key] for r in whole], key


@pytest.mark.parametrize("damaged", ["mid_epoch.pt", "last.pt"])
def test_a_damaged_checkpoint_does_not_block_resume(marker_store, reference, tmp_path, monkeypatch, capsys, damaged):
    """A damaged last.pt or mid_epoch.pt: resume continues from the other and still ends bit-identical."""
    run = tmp_path / "damaged"
    monkeypatch.setenv(ENV_FAULT_SIGNAL, f"{STOP_STEP}:SIGUSR1")
    assert main(train_args(marker_store, run)) == 3
    monkeypatch.delenv(ENV_FAULT_SIGNAL)
    path = run / RUN.CHECKPOINTS / damaged
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)  # inside the weights: only the CRC check sees it
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0
    err = capsys.readouterr().err
    assert f"cannot resume from {path}: checkpoint is damaged" in err
    other = "last.pt" if damaged == "mid_epoch.pt" else "mid_epoch.pt"
    assert f"resumed from {run / RUN.CHECKPOINTS / other}" in err
    assert_same_weights(weights(run), weights(reference))


def test_resume_cap_refuses_only_resumes_without_progress(marker_store, reference, tmp_path, fake_scontrol,
                                                         monkeypatch, capsys):
    run = tmp_path / "capped"
    monkeypatch.setenv(ENV_FAULT_SIGNAL, f"{STOP_STEP}:SIGUSR1")
    assert main(train_args(marker_store, run)) == 0
    monkeypatch.delenv(ENV_FAULT_SIGNAL)
    # five resumes already started from this checkpoint and died before getting further (crashes)
    ledger = [{"resume": i + 1, "global_step": STOP_STEP, "checkpoint": "mid_epoch.pt", "time": "t"} for i in range(5)]
    (run / RUN.RESUMES).write_text(json.dumps(ledger))
    capsys.readouterr()
    assert main(train_args(marker_store, run, "--resume", "auto")) == 2
    err = capsys.readouterr().err
    assert f"resumed 5 times in a row from global step {STOP_STEP} and never got further" in err
    assert "epochs.csv" in err and "--init-from" in err
    assert json.loads((run / RUN.RESUMES).read_text()) == ledger  # a refused resume changes nothing
    # the command the message suggests is accepted: the operator raises the cap at resume time
    suggested = re.search(r"--resume auto --set (train\.max_resumes=\d+)", err).group(1)
    assert main(train_args(marker_store, run, "--resume", "auto", "--set", suggested)) == 0
    state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
    assert state[CKPT.RESUME_COUNT] == 6 and state[CKPT.GLOBAL_STEP] == 20
    assert state[CKPT.CONFIG]["train"]["max_resumes"] == 10
    assert_same_weights(weights(run), weights(reference))


def test_graceful_stops_never_exhaust_the_cap(marker_store, reference, tmp_path, fake_scontrol, monkeypatch):
    """A long run needs many job slots: every stop gets further, so none counts toward the cap."""
    run = tmp_path / "long"
    steps = [11, 13, 15, 17]  # four stops and requeues with train.max_resumes = 2
    for i, step in enumerate(steps):
        monkeypatch.setenv(ENV_FAULT_SIGNAL, f"{step}:SIGUSR1")
        resume = ["--resume", "auto"] if i else []
        assert main(train_args(marker_store, run, *resume, *sets("train.max_resumes=2"))) == 0
        assert load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")[CKPT.GLOBAL_STEP] == step
    assert fake_scontrol.read_text().split() == ["requeue", "4242"] * len(steps)  # every stop was requeued
    monkeypatch.delenv(ENV_FAULT_SIGNAL)
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0
    state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
    assert state[CKPT.CONFIG]["train"]["max_resumes"] == 2  # a limit not given again keeps the checkpoint's
    assert state[CKPT.RESUME_COUNT] == 4 and state[CKPT.GLOBAL_STEP] == 20
    assert [e["global_step"] for e in json.loads((run / RUN.RESUMES).read_text())] == steps
    assert_same_weights(weights(run), weights(reference))


def test_stop_file_stops_at_next_step(marker_store, tmp_path):
    run = tmp_path / "stopfile"
    run.mkdir()
    (run / RUN.STOP).touch()  # a stale stop file of a previous run is removed at a fresh start
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0
    assert load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")[CKPT.GLOBAL_STEP] == 20

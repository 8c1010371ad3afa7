"""Who may write a run folder, and how a run may start: the lock, restarts, --init-from."""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os

import pytest
import torch

from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, RUN
from tissuebert.inference.checkpoint import load_checkpoint

SHORT = ("train.epochs=1", "train.steps_per_epoch=5", "train.log_every=1")


def train_args(store, run, *items):
    return ["train", "--store", str(store), "--out", str(run), *sets(*FAST, *SHORT, *items)]


@pytest.fixture(scope="module")
def source_run(marker_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("runfolder") / "source"
    assert main(train_args(marker_store, run)) == 0
    return run


def test_a_second_writer_is_refused(marker_store, tmp_path, capsys):
    run = tmp_path / "locked"
    run.mkdir()
    fd = os.open(run / RUN.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `train` (or a surviving DDP worker) holds it
    os.write(fd, b"pid 4321 on node7 since 2026-01-01 00:00:00\n")
    try:
        assert main(train_args(marker_store, run) + ["--resume", "auto"]) == 2
    finally:
        os.close(fd)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another process is writing this run (pid 4321 on node7" in err[0]
    assert [p.name for p in run.iterdir()] == [RUN.LOCK]  # nothing read, nothing written
    assert main(train_args(marker_store, run) + ["--resume", "auto"]) == 0  # released: the same command runs


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.ENOSYS])
def test_a_file_system_without_locks_warns_and_trains(code, tmp_path, monkeypatch, caplog):
    """Lustre without -o flock (ENOSYS), an NFS mount without a lock manager (ENOLCK): the lock
    cannot be taken; that is not "another process is writing", and the run goes on with a warning."""
    from tissuebert.train import runlock

    def no_locks(fd, op):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(runlock.fcntl, "flock", no_locks)
    caplog.set_level("WARNING", logger="tissuebert")
    with runlock.RunLock(tmp_path / "run") as lock:
        assert lock._fd is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "does not support locks" in warnings[0] and os.strerror(code) in warnings[0]


def test_resume_auto_restarts_a_run_that_died_before_its_first_checkpoint(marker_store, source_run, tmp_path):
    run = tmp_path / "early_death"
    (run / RUN.LOGS).mkdir(parents=True)
    with open(source_run / RUN.LOGS / RUN.STEPS_CSV) as fh:  # rows logged before the kill
        (run / RUN.LOGS / RUN.STEPS_CSV).write_text("".join(fh.readlines()[:3]))
    assert main(train_args(marker_store, run) + ["--resume", "auto"]) == 0
    with open(run / RUN.LOGS / RUN.STEPS_CSV) as a, open(source_run / RUN.LOGS / RUN.STEPS_CSV) as b:
        assert [r["global_step"] for r in csv.DictReader(a)] == [r["global_step"] for r in csv.DictReader(b)]
    assert [e["global_step"] for e in json.loads((run / RUN.RESUMES).read_text())] == [0]  # counted as a resume
    assert load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")[CKPT.RESUME_COUNT] == 1


def test_init_from_starts_a_new_run_from_the_weights(marker_store, source_run, tmp_path):
    source = source_run / RUN.CHECKPOINTS / "last.pt"
    run = tmp_path / "finetune"
    # a learning rate of 1e-12 leaves the weights where they started: they must be the source's
    assert main(train_args(marker_store, run, "train.max_lr=1e-12", "train.panel_lr=1e-12")
                + ["--init-from", str(source)]) == 0
    state, start = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt"), load_checkpoint(source)
    for key, value in start[CKPT.MODEL].items():
        if key == "counts.tally":
            # train.count_source = split: the count route holds this run's training split (counted
            # afresh, not added to the source's); the source trained on the same store, so they agree
            assert float(value.sum()) > 0 and torch.equal(state[CKPT.MODEL][key], value)
            continue
        assert torch.allclose(state[CKPT.MODEL][key], value, rtol=0, atol=1e-9), key
    assert state[CKPT.INIT_FROM] == str(source)
    assert state[CKPT.GLOBAL_STEP] == 5 and state[CKPT.OPTIMIZER]["state"][0]["step"] == 5  # a fresh optimiser
    assert state[CKPT.RESUME_COUNT] == 0


@pytest.mark.parametrize("extra,message", [
    (("--set", "model.hidden=64"), "weights do not fit this run's model"),
    (("--resume", "SOURCE"), "cannot be combined with --resume PATH"),
])
def test_init_from_refusals(marker_store, source_run, tmp_path, capsys, extra, message):
    source = source_run / RUN.CHECKPOINTS / "last.pt"
    extra = [str(source) if e == "SOURCE" else e for e in extra]
    assert main(train_args(marker_store, tmp_path / "bad") + ["--init-from", str(source), *extra]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tissuebert: error")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "bad" / RUN.CHECKPOINTS).exists()

"""DDP on CPU: torchrun with 2 processes (gloo): metrics, clean exits, a stop and resume."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.support.trainhelpers import FAST, sets
from tissuebert.constants import CKPT, RUN
from tissuebert.data.eval_set import build_eval_reads
from tissuebert.data.tokens import TokenTables
from tissuebert.inference.checkpoint import checkpoint_config, load_checkpoint, model_from_checkpoint
from tissuebert.inference.predict import predict_logits
from tissuebert.metrics import classification_metrics
from tissuebert.store.store import Store
from tissuebert.train.loop import ENV_FAULT_SIGNAL
from tissuebert.train.runlock import RunLock

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`

# fresh 2-rank runs whose exit code is checked on top of the others (raise it to hunt shutdown races)
EXTRA_RUNS = int(os.environ.get("TISSUEBERT_TEST_DDP_RUNS", "1"))


def torchrun(store, run, *extra, env=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tissuebert", "train", "--store", str(store), "--out", str(run),
           *sets(*FAST, "train.epochs=2", "train.steps_per_epoch=8", "train.accum_steps=2",
                 "train.deterministic=true"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def ddp_run(marker_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("ddp") / "ddp"
    proc = torchrun(marker_store, run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, proc


def epoch_rows(run):
    with open(run / RUN.LOGS / RUN.EPOCHS_CSV, newline="") as fh:
        return [{k: r[k] for k in ("epoch", "global_step", "train_loss", "train_acc", "val_loss", "val_acc",
                                   "skipped_steps")} for r in csv.DictReader(fh)]


def test_torchrun_two_ranks_on_cpu(marker_store, ddp_run):
    run, proc = ddp_run

    # ranks draw different batches: rank 0 logs a digest of each rank's first batch per epoch
    digests = re.findall(r"first-batch digest per rank: (\w+) (\w+)", proc.stderr)
    assert len(digests) == 2 and all(a != b for a, b in digests)
    # rank 0 alone logs: the start-up lines appear once
    assert proc.stderr.count("schedule: 2 epochs x 8 steps") == 1
    assert "x 2 rank(s)" in proc.stderr

    # the reported validation metrics equal a single-process evaluation of the checkpoint
    state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
    cfg = checkpoint_config(state)
    store = Store.open(marker_store)
    val = build_eval_reads(store, "val", max_reads_per_sample=cfg.data.val_reads_per_sample, seed=cfg.train.seed,
                           min_cpgs=cfg.data.min_cpgs)
    logits = predict_logits(model_from_checkpoint(state), TokenTables(store.panel), val.window_idx, val.calls,
                            precision=cfg.train.precision)
    single = classification_metrics(logits, val.labels, len(store.tissues))
    reported = state[CKPT.VAL_METRICS]
    assert reported["n"] == single["n"] == 400
    assert reported["confusion"] == single["confusion"]
    assert reported["macro_f1"] == pytest.approx(single["macro_f1"], abs=1e-12)
    loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(val.labels)))
    assert reported["loss"] == pytest.approx(loss, rel=1e-5)
    assert np.isfinite(state[CKPT.BEST_LOSS])


def test_stop_and_resume_under_ddp_reports_the_same_metrics(marker_store, ddp_run, tmp_path):
    """A stop mid-epoch 2 and a resume: the cut epoch's train_acc sums the reads of both ranks once."""
    reference, _ = ddp_run
    run = tmp_path / "stopped"
    proc = torchrun(marker_store, run, env={**os.environ, ENV_FAULT_SIGNAL: "11:SIGUSR1"})
    assert proc.returncode != 0  # stopped and not requeued: rank 0 exits 3
    assert load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")[CKPT.GLOBAL_STEP] == 11
    proc = torchrun(marker_store, run, "--resume", "auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert epoch_rows(run) == epoch_rows(reference)
    a, b = (load_checkpoint(r / RUN.CHECKPOINTS / "last.pt")[CKPT.MODEL] for r in (run, reference))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_completed_ddp_runs_exit_zero(marker_store, tmp_path):
    """Every rank passes a barrier and destroys the process group before it exits."""
    for i in range(EXTRA_RUNS):
        proc = torchrun(marker_store, tmp_path / f"run{i}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "terminate called" not in proc.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _workers(run, launcher: int) -> list[int]:
    """The pids of the processes training into ``run`` other than torchrun itself."""
    out = subprocess.run(["pgrep", "-f", "--", f"-m tissuebert train .*--out {run} "], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split() if int(p) != launcher]


def test_workers_stop_when_torchrun_is_killed(marker_store, tmp_path):
    """torchrun starts its workers in their own sessions: killing torchrun's process group with
    SIGKILL used to leave them training on, unseen. They now notice their parent is gone, stop
    together at the next step with a mid-epoch checkpoint, and free the run folder's lock."""
    run = tmp_path / "orphans"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tissuebert", "train", "--store", str(marker_store), "--out", str(run),
           *sets(*FAST, "train.epochs=1", "train.steps_per_epoch=100000", "train.log_every=5")]
    launcher = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        steps = run / RUN.LOGS / RUN.STEPS_CSV
        deadline = time.time() + 240
        while time.time() < deadline and not (steps.exists() and steps.stat().st_size > 200):
            time.sleep(0.5)
        assert steps.exists(), "training never started"
        workers = _workers(run, launcher.pid)
        assert len(workers) == 2
        os.killpg(launcher.pid, signal.SIGKILL)  # torchrun's group: the agent alone
        launcher.wait()
        deadline = time.time() + 120
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.5)
        assert not any(_alive(p) for p in workers), "workers still running after torchrun died"
    finally:
        for pid in _workers(run, -1):
            os.kill(pid, signal.SIGKILL)
    state = load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")
    assert 0 < state[CKPT.GLOBAL_STEP] < 100000
    with RunLock(run):  # the folder is free for a resume
        pass

"""Crash consistency of the end-of-epoch checkpoint set, and resume from damaged checkpoint folders.

A run is SIGKILLed at every stage of an epoch end (TISSUEBERT_FAULT_KILL): after the logs are
synced, with each checkpoint's temporary file complete but not renamed, and after each rename.
Resumed with --resume auto, it must end with every checkpoint, log row, plot table and
TensorBoard scalar equal to those of an uninterrupted run (timings excepted). Deterministic
mode, 2 epochs x 10 steps, an epoch_NNNN.pt every epoch, so each epoch end writes all four files.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, RUN
from tissuebert.inference.checkpoint import load_checkpoint
from tissuebert.train.loop import ENV_FAULT_KILL

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`

ARGS = sets(*FAST, "train.epochs=2", "train.steps_per_epoch=10", "train.deterministic=true", "train.log_every=1",
            "train.threads=1", "train.checkpoint_every=1", "train.max_lr=1e-2",
            # the design's encoder alone: its validation loss falls at epoch 2, which the kill cases rely on
            "model.pooling=mean", "model.cpg_embedding_dim=0", "model.cpg_logits=false")
TIMING_COLUMNS = {"epoch_s", "elapsed_s", "eta_s", "samples_per_s", "peak_gpu_mem_mb", "peak_cpu_mem_mb"}
# the epoch end in the order it runs; best_* are written at epoch 1 (anything beats no best yet)
STAGES = ["logged", "best_loss.pt.tmp", "best_loss.pt", "best_acc.pt.tmp", "best_acc.pt", "epoch_0001.pt.tmp",
          "epoch_0001.pt", "last.pt.tmp", "last.pt"]


def train_args(store, run, *extra):
    return ["train", "--store", str(store), "--out", str(run), "--preset", "tiny", *ARGS, *extra]


def same(a, b, where="") -> None:
    """Recursive equality of checkpoint contents (tensors bit-exact, NaN equal to NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def comparable(state: dict) -> dict:
    """A checkpoint without what legitimately differs between two runs: timings, resume count, and the
    global numpy / python RNG states (unseeded in a fresh process; the torch stream is what training uses)."""
    out = {k: v for k, v in state.items() if k not in (CKPT.RNG, CKPT.RESUME_COUNT)}
    sampler = dict(out[CKPT.SAMPLER])
    sampler["epoch_sums"] = {k: v for k, v in sampler["epoch_sums"].items() if k not in ("seconds", "run_seconds")}
    out[CKPT.SAMPLER] = sampler
    out["torch_rng"] = state[CKPT.RNG]["torch"]
    return out


def csv_rows(path, drop=()):
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(fh)]


def scalars(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / RUN.TENSORBOARD))
    events.Reload()
    tags = [t for t in events.Tags()["scalars"] if t != "epoch/samples_per_s"]
    return {t: [(e.step, e.value) for e in events.Scalars(t)] for t in tags}


def assert_same_run(run, reference) -> None:
    ckpts = sorted(p.name for p in (run / RUN.CHECKPOINTS).iterdir())
    assert ckpts == sorted(p.name for p in (reference / RUN.CHECKPOINTS).iterdir())  # no temporaries, no mid_epoch
    for name in ckpts:
        same(comparable(load_checkpoint(run / RUN.CHECKPOINTS / name)),
             comparable(load_checkpoint(reference / RUN.CHECKPOINTS / name)), name)
    for name in (RUN.EPOCHS_CSV, RUN.PER_TISSUE_CSV, RUN.STEPS_CSV):
        assert csv_rows(run / RUN.LOGS / name, TIMING_COLUMNS) == csv_rows(reference / RUN.LOGS / name, TIMING_COLUMNS)
    plots = sorted(p.name for p in (run / RUN.PLOTS).iterdir())
    assert plots == sorted(p.name for p in (reference / RUN.PLOTS).iterdir())
    for name in plots:
        if name.endswith(".csv"):
            assert (run / RUN.PLOTS / name).read_text() == (reference / RUN.PLOTS / name).read_text()
    assert scalars(run) == scalars(reference)


@pytest.fixture(scope="module")
def reference(marker_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("crash") / "reference"
    assert main(train_args(marker_store, run)) == 0
    return run


def killed_run(store, run, stage: str):
    env = {**os.environ, ENV_FAULT_KILL: stage}
    proc = subprocess.run([sys.executable, "-m", "tissuebert", *train_args(store, run)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]  # it reached the stage and died there


@pytest.mark.parametrize("stage", [f"1:{s}" for s in STAGES] + ["2:logged", "2:epoch_0002.pt.tmp", "2:last.pt.tmp"])
def test_kill_at_every_epoch_end_stage_then_resume_matches(marker_store, reference, tmp_path, stage):
    run = tmp_path / "run"
    killed_run(marker_store, run, stage)
    epoch, name = stage.split(":")
    if name.endswith(".tmp"):  # the interrupted write left its temporary file behind
        assert any(p.name.startswith(f".{name[:-4]}.") for p in (run / RUN.CHECKPOINTS).iterdir())
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0
    assert_same_run(run, reference)


def test_final_epoch_kill_before_last_leaves_best_files_right(marker_store, reference, tmp_path):
    """The issue's case: at the final epoch, a kill after best_acc.pt but before last.pt."""
    epochs = csv_rows(reference / RUN.LOGS / RUN.EPOCHS_CSV)
    assert float(epochs[1]["val_loss"]) < float(epochs[0]["val_loss"])  # epoch 2 writes best_loss.pt
    run = tmp_path / "run"
    killed_run(marker_store, run, "2:best_loss.pt")
    assert load_checkpoint(run / RUN.CHECKPOINTS / "best_loss.pt")[CKPT.EPOCH] == 2
    assert load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")[CKPT.EPOCH] == 1  # not yet committed
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0  # replays epoch 2: not "nothing to do"
    assert_same_run(run, reference)


# --------------------------------------------------------------------------------------------
def scramble(path):
    """Overwrite bytes in the middle of a file: torch.load alone would read it without complaint."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def damaged_copy(reference, tmp_path, *, remove=(), truncate=(), scrambled=()):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    for name in remove:
        (run / RUN.CHECKPOINTS / name).unlink()
    for name in truncate:
        path = run / RUN.CHECKPOINTS / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for name in scrambled:
        scramble(run / RUN.CHECKPOINTS / name)
    return run


def test_resume_auto_without_last_and_mid_epoch_loses_nothing(marker_store, reference, tmp_path, capsys):
    """The issue's case: last.pt and mid_epoch.pt missing; the run used to be deleted and started over."""
    run = damaged_copy(reference, tmp_path, remove=["last.pt"])
    stale = run / RUN.CHECKPOINTS / ".last.pt.x1y2z3.tmp.pt"  # an interrupted write's temporary file
    stale.write_bytes(b"partial")
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0
    assert "resuming from" in capsys.readouterr().err
    assert not stale.exists()
    assert_same_run(run, reference)  # last.pt is back (from epoch_0002.pt), nothing else was touched


def test_resume_falls_back_past_corrupt_checkpoints_and_replays(marker_store, reference, tmp_path, capsys):
    run = damaged_copy(reference, tmp_path, scrambled=["last.pt"], truncate=["epoch_0002.pt"],
                       remove=[n for n in ("best_loss.pt", "best_acc.pt")
                               if load_checkpoint(reference / RUN.CHECKPOINTS / n)[CKPT.EPOCH] == 2])
    assert main(train_args(marker_store, run, "--resume", "auto")) == 0
    err = capsys.readouterr().err
    assert "last.pt: checkpoint is damaged" in err and "fails its CRC check" in err
    assert "epoch_0001.pt (epoch 1, global step 10), the newest readable checkpoint" in err
    assert_same_run(run, reference)  # epoch 2 replayed from epoch_0001.pt: every file as uninterrupted


def test_no_readable_checkpoint_refuses_and_changes_nothing(marker_store, reference, tmp_path, capsys):
    names = sorted(p.name for p in (reference / RUN.CHECKPOINTS).iterdir())
    run = damaged_copy(reference, tmp_path, truncate=names)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != RUN.LOCK}
    assert main(train_args(marker_store, run, "--resume", "auto")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no readable checkpoint" in err and "nothing was changed" in err and "--force" in err
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != RUN.LOCK}
    assert after == before


def test_resume_auto_refuses_a_folder_that_is_not_a_run(marker_store, tmp_path, capsys):
    run = tmp_path / "notes"
    run.mkdir()
    (run / "thesis.tex").write_text("precious")
    assert main(train_args(marker_store, run, "--resume", "auto")) == 2
    assert "not a tissuebert run folder" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir() if p.name != RUN.LOCK) == ["thesis.tex"]

"""`tissuebert train` end to end, in-process: files written, values learned, refusals."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, RUN
from tissuebert.inference.checkpoint import load_checkpoint
from tissuebert.store.store import Store
from tissuebert.train.logs import EPOCH_COLUMNS, PER_TISSUE_COLUMNS, STEP_COLUMNS

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`

EPOCHS, STEPS = 2, 60


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained(marker_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    rc = main(["train", "--store", str(marker_store), "--out", str(run), "--preset", "tiny",
               *sets(*FAST, f"train.epochs={EPOCHS}", f"train.steps_per_epoch={STEPS}", "train.log_every=10",
                     "train.max_lr=3e-3")])
    assert rc == 0
    return run


def test_learns_methylated_vs_unmethylated_marker(trained):
    rows = read_csv(trained / RUN.LOGS / RUN.EPOCHS_CSV)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["val_acc"]) > 0.95  # the issue's check; the Bayes rate here is 100%
    state = load_checkpoint(trained / RUN.CHECKPOINTS / "last.pt")
    assert state[CKPT.VAL_METRICS]["accuracy"] == pytest.approx(float(rows[-1]["val_acc"]), abs=1e-6)
    assert state[CKPT.GLOBAL_STEP] == EPOCHS * STEPS and state[CKPT.EPOCH] == EPOCHS


def test_checkpoint_holds_every_key(trained, marker_store):
    store = Store.open(marker_store)
    state = load_checkpoint(trained / RUN.CHECKPOINTS / "last.pt")
    keys = (CKPT.EPOCH, CKPT.GLOBAL_STEP, CKPT.MODEL, CKPT.OPTIMIZER, CKPT.SCHEDULER, CKPT.SCALER, CKPT.SAMPLER,
            CKPT.RNG, CKPT.BEST_LOSS, CKPT.BEST_ACC, CKPT.RESUME_COUNT, CKPT.CONFIG, CKPT.VAL_METRICS, CKPT.TISSUES,
            CKPT.PANEL_HASH, CKPT.PANEL_WINDOWS, CKPT.CLASS_PRIOR, CKPT.TEMPERATURE, CKPT.VERSION, CKPT.MID_EPOCH,
            CKPT.NONFINITE)
    for key in keys:
        assert key in state, key
    assert state[CKPT.TISSUES] == ["meth", "unmeth"]
    assert state[CKPT.PANEL_HASH] == store.panel_hash
    assert state[CKPT.CLASS_PRIOR] == [0.5, 0.5]  # 2 train files per tissue -> uniform
    coords = store.panel.coordinates()
    assert np.array_equal(state[CKPT.PANEL_WINDOWS]["start"], coords["start"])
    assert state[CKPT.CONFIG]["model"]["hidden"] == 32
    assert state[CKPT.RESUME_COUNT] == 0 and state[CKPT.MID_EPOCH] is False
    # best checkpoints carry the epoch at which their metric was best
    best = load_checkpoint(trained / RUN.CHECKPOINTS / "best_acc.pt")
    assert best[CKPT.BEST_ACC] == pytest.approx(max(float(r["val_acc"]) for r in read_csv(trained / RUN.LOGS / RUN.EPOCHS_CSV)))
    assert (trained / RUN.CHECKPOINTS / "best_loss.pt").is_file()
    assert not (trained / RUN.CHECKPOINTS / "mid_epoch.pt").exists()


def test_logs_have_their_columns(trained):
    logs = trained / RUN.LOGS
    for name, columns in ((RUN.EPOCHS_CSV, EPOCH_COLUMNS), (RUN.PER_TISSUE_CSV, PER_TISSUE_COLUMNS),
                          (RUN.STEPS_CSV, STEP_COLUMNS)):
        with open(logs / name, newline="") as fh:
            assert next(csv.reader(fh)) == list(columns)
    steps = read_csv(logs / RUN.STEPS_CSV)
    assert [int(r["global_step"]) for r in steps] == list(range(10, EPOCHS * STEPS + 1, 10))
    per_tissue = read_csv(logs / RUN.PER_TISSUE_CSV)
    assert [(r["epoch"], r["tissue"]) for r in per_tissue] == [("1", "meth"), ("1", "unmeth"), ("2", "meth"), ("2", "unmeth")]
    assert sum(int(r["support"]) for r in per_tissue if r["epoch"] == "2") == 400  # 2 val samples x 200 reads
    epochs = read_csv(logs / RUN.EPOCHS_CSV)
    assert all(float(r["peak_cpu_mem_mb"]) > 10 for r in epochs)
    assert float(epochs[-1]["eta_s"]) == 0.0
    # the last step's LR is the schedule's floor: max_lr / 25 / 400
    assert float(steps[-1]["lr"]) == pytest.approx(3e-3 / 25 / 400, rel=0.01)


def test_tensorboard_and_confusion_plots(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(trained / RUN.TENSORBOARD))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"epoch/val_acc", "epoch/train_loss", "step/loss", "step/lr", "step/grad_norm"} <= set(tags)
    assert [e.step for e in acc.Scalars("epoch/val_acc")] == [STEPS, 2 * STEPS]
    plots = sorted(p.name for p in (trained / RUN.PLOTS).iterdir())
    assert plots == ["confusion_epoch_001.csv", "confusion_epoch_001.png", "confusion_epoch_002.csv", "confusion_epoch_002.png"]
    rows = read_csv(trained / RUN.PLOTS / "confusion_epoch_002.csv")
    assert sum(int(r["meth"]) + int(r["unmeth"]) for r in rows) == 400


def test_written_config_reloads(trained):
    from tissuebert.config import load_config

    cfg = load_config(None, trained / RUN.CONFIG)
    assert cfg.train.steps_per_epoch == STEPS and cfg.model.n_layers == 1


def test_refuses_existing_output_without_force(trained, marker_store, capsys):
    rc = main(["train", "--store", str(marker_store), "--out", str(trained), "--preset", "tiny"])
    assert rc == 2
    assert "already exists" in capsys.readouterr().err


def test_resume_auto_of_finished_run_changes_nothing(trained, marker_store):
    before = load_checkpoint(trained / RUN.CHECKPOINTS / "last.pt")
    rc = main(["train", "--store", str(marker_store), "--out", str(trained), "--resume", "auto"])
    assert rc == 0
    after = load_checkpoint(trained / RUN.CHECKPOINTS / "last.pt")
    assert after[CKPT.RESUME_COUNT] == before[CKPT.RESUME_COUNT]
    assert all(torch.equal(before[CKPT.MODEL][k], after[CKPT.MODEL][k]) for k in before[CKPT.MODEL])


def test_missing_store_is_one_line_error(tmp_path, capsys):
    rc = main(["train", "--store", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "store not found" in err[0]

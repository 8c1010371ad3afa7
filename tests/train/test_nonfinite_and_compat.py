"""Non-finite steps are skipped and counted; mismatched checkpoints are refused by name."""

from __future__ import annotations

import csv
import math

import torch

from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, RUN
from tissuebert.inference.checkpoint import load_checkpoint
from tissuebert.train.loop import ENV_FAULT_NAN

ARGS = sets(*FAST, "train.epochs=1", "train.steps_per_epoch=8", "train.log_every=1")


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_injected_nan_is_skipped_and_counted(marker_store, tmp_path, monkeypatch):
    run = tmp_path / "nan"
    monkeypatch.setenv(ENV_FAULT_NAN, "2,5")
    assert main(["train", "--store", str(marker_store), "--out", str(run), *ARGS]) == 0
    steps = rows(run / RUN.LOGS / RUN.STEPS_CSV)
    # steps are logged after they run: global step 2 (0-based) is row 3
    assert [r["loss"] for r in steps].count("nan") == 2
    assert math.isnan(float(steps[2]["loss"])) and math.isnan(float(steps[5]["loss"]))
    assert [int(r["skipped_steps"]) for r in steps] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert int(rows(run / RUN.LOGS / RUN.EPOCHS_CSV)[0]["skipped_steps"]) == 2
    state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
    assert all(torch.isfinite(t).all() for t in state[CKPT.MODEL].values())  # a NaN never reached the weights
    assert state[CKPT.OPTIMIZER]["state"][0]["step"] == 6  # AdamW stepped 8 - 2 times


def test_repeated_nan_stops_with_checkpoint(marker_store, tmp_path, monkeypatch, capsys):
    run = tmp_path / "nan_stop"
    monkeypatch.setenv(ENV_FAULT_NAN, "3,4,5,6")
    rc = main(["train", "--store", str(marker_store), "--out", str(run), *ARGS, *sets("train.max_nonfinite=3")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "3 steps in a row skipped" in err and "train.max_lr" in err
    state = load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")
    assert state[CKPT.GLOBAL_STEP] == 6 and state[CKPT.NONFINITE] == 3
    assert state[CKPT.SAMPLER]["skipped_in_a_row"] == 3


def test_checkpoint_of_other_store_is_refused(marker_store, other_store, tmp_path, capsys):
    run = tmp_path / "a"
    assert main(["train", "--store", str(marker_store), "--out", str(run), *ARGS]) == 0
    capsys.readouterr()
    rc = main(["train", "--store", str(other_store), "--out", str(tmp_path / "b"), *ARGS,
               "--resume", str(run / RUN.CHECKPOINTS / "last.pt")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "only in store: ['liver']" in err and "tissue list differs" in err


def test_bf16_and_fp16_on_cpu(marker_store, tmp_path, monkeypatch):
    # The model's forward records the autocast state it runs under: with train.precision=bf16 every
    # training step must run under bf16 autocast (mutation: a loop that ignores train.precision trains
    # in fp32 and still writes fp32 weights and a finite loss, so only this record can tell).
    from tissuebert.model.tissuebert import TissueBERT

    seen = []
    forward = TissueBERT.forward

    def recording_forward(self, *args, **kwargs):
        if torch.is_grad_enabled():  # a training step (validation runs under no_grad/inference_mode)
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(TissueBERT, "forward", recording_forward)
    for precision in ("bf16", "fp16"):  # fp16 has no CPU kernels: it runs as bf16, without a GradScaler
        run = tmp_path / precision
        seen.clear()
        assert main(["train", "--store", str(marker_store), "--out", str(run), *ARGS,
                     *sets(f"train.precision={precision}")]) == 0
        assert len(seen) >= 8 and set(seen) == {torch.bfloat16}, (precision, seen[:3])
        state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
        assert all(t.dtype == torch.float32 for t in state[CKPT.MODEL].values() if t.is_floating_point())
        assert math.isfinite(float(rows(run / RUN.LOGS / RUN.EPOCHS_CSV)[0]["train_loss"]))
        assert state[CKPT.CONFIG]["train"]["precision"] == precision


def test_checkpoint_of_other_panel_is_refused(marker_store, tmp_path, capsys):
    from tissuebert.testing.synthetic import build_marker_store

    same_tissues = build_marker_store(tmp_path / "panel2", tissues=("meth", "unmeth"), n_windows=8,
                                      reads_per_sample=50, seed=21)
    run = tmp_path / "a"
    assert main(["train", "--store", str(marker_store), "--out", str(run), *ARGS]) == 0
    capsys.readouterr()
    rc = main(["train", "--store", str(same_tissues.root), "--out", str(tmp_path / "b"), *ARGS,
               "--resume", str(run / RUN.CHECKPOINTS / "last.pt")])
    assert rc == 2
    assert "panel hash" in capsys.readouterr().err


def test_corrupt_store_is_refused_before_training(marker_store, tmp_path, capsys):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(marker_store, store)
    sample = sorted((store / "samples").glob("*.h5"))[0]
    data = bytearray(sample.read_bytes())
    data[-1] ^= 0xFF  # the file no longer matches the sha256 the manifest recorded
    sample.write_bytes(bytes(data))
    rc = main(["train", "--store", str(store), "--out", str(tmp_path / "run"), *ARGS])
    assert rc == 2
    err = capsys.readouterr().err
    # refused by the checksum, or earlier by the structural check when the flipped byte lands in an offset array
    assert ("checksum mismatch" in err or "not a monotone offset array" in err) and sample.name in err
    assert len([line for line in err.splitlines() if line.startswith("tissuebert: error")]) == 1
    assert not (tmp_path / "run" / RUN.CHECKPOINTS).exists()

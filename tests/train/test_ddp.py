"""DDP on CPU: torchrun with 2 processes (gloo)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from tissuebert.constants import CKPT, RUN
from tissuebert.data.eval_set import build_eval_reads
from tissuebert.data.tokens import TokenTables
from tissuebert.store.store import Store
from tissuebert.train.checkpoint import checkpoint_config, load_checkpoint, model_from_checkpoint
from tissuebert.train.infer import predict_logits
from tissuebert.train.metrics import classification_metrics

from trainhelpers import FAST, sets


def test_torchrun_two_ranks_on_cpu(marker_store, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tissuebert", "train", "--store", str(marker_store), "--out", str(run),
           *sets(*FAST, "train.epochs=2", "train.steps_per_epoch=8", "train.accum_steps=2")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

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

"""The sbatch templates outside SLURM: bash runs them, the test plays SLURM's USR1 warning.

A fake `scontrol` on PATH records its arguments. The batch shell must pass the warning on
(a signal for the single-GPU script, RUN/STOP for the torchrun ones), training must write a
mid-epoch checkpoint and requeue job 77, and the script must exit 0.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.trainhelpers import FAST, sets
from tissuebert.constants import CKPT, RUN
from tissuebert.inference.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`

REPO = Path(__file__).resolve().parents[2]


def logged_steps(run: Path) -> int:
    path = run / RUN.LOGS / RUN.STEPS_CSV
    if not path.is_file():
        return 0
    with open(path, newline="") as fh:
        return len(list(csv.DictReader(fh)))


@pytest.mark.parametrize("script, ranks", [("train_1gpu.sbatch", 1), ("train_multigpu.sbatch", 2)])
def test_usr1_checkpoints_and_requeues(script, ranks, marker_store, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.txt"
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (bin_dir / "scontrol").chmod(0o755)
    run = tmp_path / "run"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "STORE": str(marker_store), "RUN": str(run), "PRESET": "tiny", "SLURM_JOB_ID": "77",
           "SLURM_GPUS_ON_NODE": str(ranks)}
    # one long epoch, so the warning always lands mid-epoch
    extra = sets(*FAST, "train.epochs=1", "train.steps_per_epoch=100000", "train.log_every=1")
    proc = subprocess.Popen(["bash", str(REPO / "slurm" / script), *extra], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while logged_steps(run) < 3 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert logged_steps(run) >= 3, "training did not start"
        proc.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@300 does
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output[-3000:]
    assert calls.read_text().split() == ["requeue", "77"]
    state = load_checkpoint(run / RUN.CHECKPOINTS / "mid_epoch.pt")
    assert state[CKPT.MID_EPOCH] is True and state[CKPT.GLOBAL_STEP] >= 3
    assert state[CKPT.SAMPLER]["world_size"] == ranks
    assert not (run / RUN.CHECKPOINTS / "last.pt").exists()
    assert not (run / RUN.STOP).exists()  # consumed, so the requeued job does not stop at once

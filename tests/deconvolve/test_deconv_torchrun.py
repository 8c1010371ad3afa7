"""Cohort scoring shared by torchrun ranks (issue 13 item 1): each rank scores whole batches of
the cohort's unique rows, rank 0 gathers them and writes, and the outputs equal one process's
byte for byte."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tissuebert.cli.app import main
from tissuebert.constants import OUT
from tissuebert.deconvolve.cohort import shard_bounds

REPO = Path(__file__).resolve().parents[2]
SAMPLES = ["Blood_test0", "Liver_test0", "Lung_test0", "Liver_val0", "Blood_val0"]


@pytest.mark.parametrize("n_rows,batch,world", [(1000, 256, 2), (1000, 256, 3), (1000, 256, 8), (256, 256, 2),
                                                (0, 64, 2), (7, 1, 3)])
def test_shards_are_whole_batches_that_cover_the_rows_once(n_rows, batch, world):
    bounds = shard_bounds(n_rows, batch, world)
    assert len(bounds) == world and bounds[0][0] == 0 and bounds[-1][1] == n_rows
    assert all(a <= b for a, b in bounds) and all(bounds[r][1] == bounds[r + 1][0] for r in range(world - 1))
    # every shard starts on a batch boundary of the one-process order
    assert all(a % batch == 0 or a == n_rows for a, _ in bounds)
    n_batches = -(-n_rows // batch)
    sizes = [-(-(b - a) // batch) for a, b in bounds]  # batches per rank
    assert sum(sizes) == n_batches and max(sizes) - min(sizes) <= 1


@pytest.mark.slow
def test_two_torchrun_ranks_of_the_slurm_template_write_what_one_process_writes(tiny, tmp_path):
    args = ["deconvolve", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root),
            *[a for s in SAMPLES for a in ("--sample", s)], "--bootstrap", "20", "--device", "cpu"]
    one = tmp_path / "one"
    assert main([*args, "--threads", "1", "--out", str(one)]) == 0
    # the SLURM template, run by bash as sbatch would on a node with 2 GPUs (here: 2 CPU ranks)
    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLURM_GPUS_ON_NODE": "2", "CKPT": str(tiny.checkpoint),
           "OUT": str(two), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(REPO / "slurm" / "deconvolve_multigpu.sbatch"), *args[3:]],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0 of 2: unique rows 0-" in proc.stderr  # rank 0 reports its share; rank 1 is quiet
    for name in (OUT.COHORT_PROPORTIONS, OUT.COHORT_MATRIX):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    for sample in SAMPLES:
        a, b = (gzip.decompress((d / sample / OUT.POSTERIORS).read_bytes()) for d in (one, two))
        assert a == b and a.count(b"\n") > 256, sample  # more rows than one batch: both ranks scored
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())

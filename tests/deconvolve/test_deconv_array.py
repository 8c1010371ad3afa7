"""Cohort scoring as a SLURM array (issue 13 item 1): each `--shard I/N` task scores whole batches
of the cohort's unique rows into a shared folder, `--from-shards` gathers them, and every table
equals one process's byte for byte; a folder that is not exactly this run's shards is refused
(exit 2, one line naming the file) with nothing written."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tissuebert
from tissuebert.cli.app import main
from tissuebert.constants import SHARD
from tissuebert.deconvolve.shards import shard_bounds

REPO = Path(__file__).resolve().parents[2]
SAMPLES = ["Blood_test0", "Liver_test0", "Lung_test0", "Liver_val0", "Blood_val0"]
N_SHARDS = 3


def _args(tiny, samples=SAMPLES, checkpoint=None):
    return ["deconvolve", "--checkpoint", str(checkpoint or tiny.checkpoint), "--store", str(tiny.store.root),
            *[a for s in samples for a in ("--sample", s)], "--bootstrap", "20", "--device", "cpu",
            "--threads", "1"]


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes (a .gz decompressed: its header holds the time it was written)."""
    return {str(p.relative_to(root)): gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _same_as_one_process(one: Path, other: Path) -> None:
    a, b = _files(one), _files(other)
    assert sorted(a) == sorted(b)
    for name in a:
        if name == "run.json":
            continue
        assert a[name] == b[name], name
    info_one, info_other = json.loads(a["run.json"]), json.loads(b["run.json"])
    assert info_other.pop("scored_in_shards")["shards"] == N_SHARDS  # the provenance run.json adds
    assert info_one == info_other


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    """One process's output, and the N_SHARDS shard files of the same cohort."""
    root = tmp_path_factory.mktemp("array")
    assert main([*_args(tiny), "--out", str(root / "one")]) == 0
    for index in range(N_SHARDS):
        assert main([*_args(tiny), "--shard", f"{index}/{N_SHARDS}", "--out", str(root / "shards")]) == 0
    return root


def test_shards_gathered_write_what_one_process_writes(tiny, runs, tmp_path):
    shards = runs / "shards"
    names = sorted(p.name for p in shards.iterdir())
    assert names == [SHARD.FILE.format(index=i, count=N_SHARDS) for i in range(N_SHARDS)]  # no temporaries left
    info = json.loads((runs / "one" / "run.json").read_text())
    for index, name in enumerate(names):
        with np.load(shards / name) as npz:
            identity = json.loads(str(npz[SHARD.IDENTITY]))
            rows = npz[SHARD.LOGLIK].shape[0]
        assert (identity["shard"]["index"], identity["shard"]["count"]) == (index, N_SHARDS)
        batch = identity["run"]["batch_size"]
        start, stop = shard_bounds(info["unique_rows_scored"], batch, N_SHARDS)[index]
        assert rows == stop - start > 0  # every task scored rows: the split is real
    out = tmp_path / "gathered"
    assert main([*_args(tiny), "--from-shards", str(shards), "--out", str(out)]) == 0
    _same_as_one_process(runs / "one", out)
    assert json.loads((out / "run.json").read_text())["scored_in_shards"] == {"folder": str(shards),
                                                                              "shards": N_SHARDS}


def _refused(tiny, shards: Path, tmp_path: Path, capsys, args=None) -> str:
    out = tmp_path / "gathered"
    capsys.readouterr()
    assert main([*(args or _args(tiny)), "--from-shards", str(shards), "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[tissuebert ")]  # no log
    assert len(err) == 1 and err[0].startswith("tissuebert: error: "), err
    assert not out.exists() and not any(p.name.startswith(".gathered") for p in tmp_path.iterdir())
    return err[0]


def _copy(runs: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs / "shards", tmp_path / "shards"))


def test_a_missing_shard_is_refused_by_name(tiny, runs, tmp_path, capsys):
    shards = _copy(runs, tmp_path)
    (shards / SHARD.FILE.format(index=1, count=N_SHARDS)).unlink()
    err = _refused(tiny, shards, tmp_path, capsys)
    assert str(shards / "shard-0001-of-0003.npz") in err and "missing" in err and "--shard 1/3" in err


def test_a_duplicate_shard_is_refused_by_name(tiny, runs, tmp_path, capsys):
    shards = _copy(runs, tmp_path)
    shutil.copy(shards / "shard-0001-of-0003.npz", shards / "shard-0001-of-0003.copy.npz")
    err = _refused(tiny, shards, tmp_path, capsys)
    assert "shard-0001-of-0003" in err and "second copy of shard 1/3" in err


def test_a_shard_of_another_checkpoint_is_refused_by_name(tiny, runs, tmp_path, capsys):
    shards = _copy(runs, tmp_path)
    other = tmp_path / "other"
    assert main([*_args(tiny, checkpoint=tiny.random_checkpoint), "--shard", "2/3", "--out", str(other)]) == 0
    shutil.copy(other / "shard-0002-of-0003.npz", shards / "shard-0002-of-0003.npz")
    err = _refused(tiny, shards, tmp_path, capsys)
    assert str(shards / "shard-0002-of-0003.npz") in err and "another checkpoint" in err
    # and the other way round: the shards gathered under the other checkpoint
    err = _refused(tiny, runs / "shards", tmp_path, capsys, args=_args(tiny, checkpoint=tiny.random_checkpoint))
    assert "shard-0000-of-0003.npz" in err and "another checkpoint" in err


def test_a_shard_of_other_inputs_is_refused_by_name(tiny, runs, tmp_path, capsys):
    shards = _copy(runs, tmp_path)
    other = tmp_path / "other"
    assert main([*_args(tiny, samples=SAMPLES[:-1]), "--shard", "0/3", "--out", str(other)]) == 0
    shutil.copy(other / "shard-0000-of-0003.npz", shards / "shard-0000-of-0003.npz")
    err = _refused(tiny, shards, tmp_path, capsys)
    assert str(shards / "shard-0000-of-0003.npz") in err and "other inputs" in err and "Blood_val0" in err
    # the same sample ids with other reads: the content fingerprint tells them apart
    swapped = _args(tiny, samples=SAMPLES)
    swapped[swapped.index("Blood_val0")] = "Blood_train0"
    err = _refused(tiny, runs / "shards", tmp_path, capsys, args=swapped)
    assert "other inputs" in err and "shard-0000-of-0003.npz" in err


def test_shards_of_two_splits_and_a_stray_file_are_refused(tiny, runs, tmp_path, capsys):
    shards = _copy(runs, tmp_path)
    assert main([*_args(tiny), "--shard", "0/2", "--out", str(shards)]) == 0
    err = _refused(tiny, shards, tmp_path, capsys)
    assert "shard-0000-of-0002.npz" in err and "two splits" in err
    (shards / "shard-0000-of-0002.npz").unlink()
    for junk in (b"not a shard", (shards / "shard-0001-of-0003.npz").read_bytes()[:-200]):  # a truncated copy
        (shards / "shard-0009-of-0003.npz").write_bytes(junk)
        err = _refused(tiny, shards, tmp_path, capsys)
        assert str(shards / "shard-0009-of-0003.npz") in err and "not a readable deconvolve shard" in err


def test_the_shard_step_refuses_to_overwrite_and_bad_shard_specs(tiny, runs, tmp_path, capsys):
    shards = _copy(runs, tmp_path)
    before = (shards / "shard-0001-of-0003.npz").read_bytes()
    capsys.readouterr()
    assert main([*_args(tiny), "--shard", "1/3", "--out", str(shards)]) == 2
    assert "shard-0001-of-0003.npz" in capsys.readouterr().err and \
        (shards / "shard-0001-of-0003.npz").read_bytes() == before
    assert main([*_args(tiny), "--shard", "1/3", "--out", str(shards), "--force"]) == 0
    assert (shards / "shard-0001-of-0003.npz").read_bytes() == before  # the same scores again
    for spec in ("3/3", "-1/3", "1", "a/b"):
        assert main([*_args(tiny), "--shard", spec, "--out", str(tmp_path / "x")]) == 2
        assert "--shard" in capsys.readouterr().err
    assert main([*_args(tiny), "--shard", "0/2", "--from-shards", str(shards), "--out", str(tmp_path / "x")]) == 2
    assert main([*_args(tiny), "--from-shards", str(shards), "--out", str(shards), "--force"]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_slurm_array_template_run_by_bash_writes_what_one_process_writes(tiny, runs, tmp_path):
    """slurm/deconvolve_array.sbatch as sbatch runs it: N_SHARDS array tasks, then the dependent gather."""
    args = _args(tiny)[3:-2]  # the template passes the checkpoint and --threads itself
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(tissuebert.__file__).parents[1]),
           "CKPT": str(tiny.checkpoint), "OUT": str(tmp_path / "deconv"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SLURM_ARRAY_TASK_ID", None)
    script = str(REPO / "slurm" / "deconvolve_array.sbatch")
    for index in range(N_SHARDS):
        task = {**env, "SLURM_ARRAY_TASK_ID": str(index), "SLURM_ARRAY_TASK_COUNT": str(N_SHARDS),
                "SLURM_CPUS_PER_TASK": "1"}
        proc = subprocess.run(["bash", script, *args], capture_output=True, text=True, timeout=300, env=task,
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((tmp_path / "deconv.shards").glob(SHARD.GLOB))) == N_SHARDS
    proc = subprocess.run(["bash", script, *args], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_as_one_process(runs / "one", tmp_path / "deconv")

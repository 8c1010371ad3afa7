"""A read-only --out and a full disk (issue 12, item 2): every command that writes gives one
line naming the output, exit code 2, no traceback, and leaves nothing behind.

Read-only is injected in-process at the write layer (EROFS from open/os.open/mkdir/replace under
one folder: root ignores permission bits, so chmod cannot test it). A full disk is the kernel's
own refusal: a subprocess under a 2 KiB RLIMIT_FSIZE gets EFBIG from write(2) exactly where a
full disk gives ENOSPC, HDF5 and torch included, with no mount and no root.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny import write_tiny
from tests.support.tinystore import tiny_cohort
from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.errors import from_os_error, public_path

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
COMMANDS = ["prepare", "train", "evaluate", "predict", "deconvolve", "benchmark", "simulate"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tiny = tiny_cohort()
    files = write_tiny(tmp_path_factory.mktemp("tinyin"))
    return tiny, files


def command(name: str, inputs, out: Path) -> list[str]:
    tiny, files = inputs
    store, ckpt = str(tiny.store.root), str(tiny.checkpoint)
    return {
        "prepare": ["prepare", "--samples", str(files["sheet"]), "--reference", str(files["reference"]), "--regions",
                    str(files["regions"]), "--cpg-index", str(files["cpg_index"]), "--out", str(out)],
        "train": ["train", "--store", store, "--out", str(out), "--preset", "tiny",
                  *sets(*FAST, "train.epochs=1", "train.steps_per_epoch=20")],
        "evaluate": ["evaluate", "--checkpoint", ckpt, "--store", store, "--split", "test", "--out", str(out)],
        "predict": ["predict", "--checkpoint", ckpt, "--store", store, "--sample", "Liver_test0", "--out",
                    str(out / "posteriors.tsv.gz")],
        "deconvolve": ["deconvolve", "--checkpoint", ckpt, "--store", store, "--sample", "Liver_test0",
                       "--bootstrap", "5", "--out", str(out)],
        "benchmark": ["benchmark", "--checkpoint", ckpt, "--store", store, "--out", str(out), "--replicates", "1",
                      "--mixtures", "2", "--depth", "10", "--background", "Blood"],
        "simulate": ["simulate", "--preset", "demo", "--tissues", "3", "--regions", "12", "--samples-per-tissue", "2",
                     "--seed", "1", "--out", str(out)],
    }[name]


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("tissuebert: error:")]
    assert len(lines) == 1 and "Traceback" not in err and "Error:" not in err.replace("tissuebert: error:", ""), err
    return lines[0]


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def read_only(monkeypatch):
    """Make every write under a folder fail with EROFS, as on a read-only mount."""
    roots: list[str] = []

    def blocked(path) -> bool:
        try:
            full = os.path.abspath(os.fspath(path))
        except TypeError:  # a file descriptor or a file object
            return False
        return any(full == r or full.startswith(r + os.sep) for r in roots)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_replace, real_rename = os.replace, os.rename

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and blocked(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and blocked(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if blocked(path):
            if os.path.exists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path))
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_move(real):
        def move(src, dst, *args, **kwargs):
            if blocked(src) or blocked(dst):
                refuse(dst)
            return real(src, dst, *args, **kwargs)
        return move

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_move(real_replace))
    monkeypatch.setattr(os, "rename", fake_move(real_rename))
    return roots


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_out(name, inputs, read_only, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only.append(str(ro))
    out = ro / "out"
    code = main(command(name, inputs, out))
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert f"{ro}" in line and "cannot write: read-only file system" in line, line
    assert _tree(ro) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_full_disk(name, inputs, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    limit = 2 << 10

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # no spinning thread pools on a busy CI core
    proc = subprocess.run([sys.executable, "-m", "tissuebert", *command(name, inputs, full / "out")],
                          preexec_fn=small_files, env=env, capture_output=True, text=True, timeout=600)
    line = _one_error_line(proc.stderr)
    assert proc.returncode == 2, proc.stderr
    assert str(full / "out") in line and "cannot write:" in line and "file too large" in line, line
    leftovers = [p for p in _tree(full) if Path(p).name.startswith(".") or p.endswith(".tmp")]
    assert leftovers == [], _tree(full)


def test_os_errors_become_one_line_naming_the_final_path():
    tmp_name = "/data/.store.k2j3l.tmp/samples/.s1.h5.x8y9.tmp.h5"
    exc = from_os_error(OSError(errno.ENOSPC, "No space left on device", tmp_name))
    assert str(exc) == ("/data/store/samples/s1.h5: cannot write: no space left on the device (No space left on "
                        "device) (free some space, or choose an --out on another file system)")
    h5 = OSError("Unable to synchronously create file (unable to open file: name = '/ro/panel.h5', errno = 30, "
                 "error message = 'Read-only file system', flags = 13, o_flags = 242)")
    assert str(from_os_error(h5)).startswith("/ro/panel.h5: cannot write: read-only file system")
    assert from_os_error(OSError(errno.ENOENT, "No such file", "x")) is None  # not ours to reword
    assert public_path("/a/.run.abc.tmp/checkpoints/last.pt") == "/a/run/checkpoints/last.pt"

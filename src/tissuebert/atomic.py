"""Atomic file writes: write to a temporary sibling, then ``os.replace`` it into place.

A crash or Ctrl-C never leaves a half-written output under the final name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tissuebert.errors import OutputExistsError

# the names _tmp_sibling gives: ".{final name}.{mkstemp's random part}.tmp{final suffix}"
_TMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp(\.[^.]+)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    # mkstemp creates 0600; give the final file the permissions a plain open() would
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(name)


def fsync_path(path: str | Path) -> None:
    """Flush a file's or a folder's data and metadata to the disk (a folder: the names in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it into place, else delete it.

    ``durable``: fsync the file before the rename and the folder after it, so that a node crash
    leaves either the old or the new file under the final name, never an empty or lost one.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final, final.suffix)
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, final)
        if durable:
            fsync_path(final.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            exc.filename = str(final)  # a failed write() names no file: name the one the user asked for
        raise


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries (``.NAME.XXXX.tmp*``) that interrupted atomic writes left in ``folder``.

    Only safe while no other process writes into ``folder`` (the caller holds its lock).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if p.is_file() and _TMP_NAME.match(p.name)]
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` atomically. Files built in memory (HDF5 images, checkpoints) are written
    this way so a full disk is an ordinary ``OSError`` here, never a failure inside a C library."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # a delayed-allocation file system reports ENOSPC here, not at close


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name, then rename it into place.

    Refuses an existing ``path`` unless ``force``; with ``force`` the old directory is removed
    only after the new one is complete.
    """
    final = Path(path)
    check_output(final, force=force)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output(path: str | Path, *, force: bool) -> None:
    """Refuse to overwrite an existing, non-empty output without ``--force``."""
    p = Path(path)
    if not p.exists():
        return
    if p.is_dir() and not any(p.iterdir()):
        return
    if not force:
        raise OutputExistsError("output already exists", path=p,
                                hint="choose another --out or pass --force to overwrite it")

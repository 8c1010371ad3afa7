"""The project's error type: anything a user can cause becomes one clear line and exit code 2."""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

EXIT_USER_ERROR = 2


class TissueBertError(Exception):
    """An error the user can fix: a bad file, a bad config key, a mismatched checkpoint.

    The message must name the file (and line or record, or the config key) and say what to do.
    The CLI prints it on one line and exits with code 2, never with a traceback.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.hint = hint
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "") + ": "
        text = where + message
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ConfigError(TissueBertError):
    """A config file or ``--set`` override is invalid; the message names the key."""


class InputFormatError(TissueBertError):
    """An input file is malformed; the message names the file and line or record."""


class StoreError(TissueBertError):
    """A store is missing, incomplete or fails validation."""


class CheckpointError(TissueBertError):
    """A checkpoint is missing, corrupt, or does not match the store / input it is used with."""


class OutputExistsError(TissueBertError):
    """An output exists and ``--force`` was not given."""


def require_file(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise a clear error."""
    p = Path(path)
    if not p.exists():
        raise TissueBertError(f"{what} not found", path=p, hint="check the path")
    if not p.is_file():
        raise TissueBertError(f"{what} is not a file", path=p)
    return p


# File-system refusals a user fixes (space, permissions, read-only mounts), not program bugs
_FULL = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
         errno.EFBIG: "file too large for the file system or the process's file-size limit"}
_DENIED = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
           errno.EPERM: "operation not permitted"}
# h5py and some libraries report the errno only inside the message
_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")
_NAME_IN_TEXT = re.compile(r"name = '([^']+)'")
# temporary siblings of atomic writes: .NAME.RANDOM.tmp[SUFFIX] -> NAME
_TMP_PART = re.compile(r"^\.(.+)\.[^.]+\.tmp(\.[^/]*)?$")


def public_path(path: str | Path) -> str:
    """``path`` with atomic-write temporary names replaced by the final ones the user asked for."""
    parts = [(_TMP_PART.match(part).group(1) if _TMP_PART.match(part) else part) for part in Path(path).parts]
    return str(Path(*parts)) if parts else str(path)


def from_os_error(exc: BaseException, fallback: str | None = None) -> TissueBertError | None:
    """The project error for a full or read-only file system (None for any other error);
    ``fallback`` names the output when the error names no file."""
    if not isinstance(exc, OSError):
        return None
    code = exc.errno
    text = str(exc)
    if code is None and (found := _ERRNO_IN_TEXT.search(text)):
        code = int(found.group(1))
    if code not in _FULL and code not in _DENIED:
        return None
    name = exc.filename or (m.group(1) if (m := _NAME_IN_TEXT.search(text)) else None) or fallback
    hint = ("free some space, or choose an --out on another file system" if code in _FULL
            else "choose a writable --out (or fix the folder's permissions)")
    reason = _FULL.get(code) or _DENIED[code]
    return TissueBertError(f"cannot write: {reason} ({os.strerror(code)})", path=public_path(name) if name else None,
                           hint=hint)


# What HDF5 (h5py), htslib (pysam), numpy and torch raise for a truncated or damaged file
LOW_LEVEL_ERRORS = (OSError, ValueError, RuntimeError, EOFError, KeyError, IndexError)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not text or text.startswith("[Errno None]"):
        return type(exc).__name__
    return text[:200]


@contextlib.contextmanager
def reading(path: str | Path, what: str, error: type[TissueBertError] = InputFormatError,
            hint: str = "the file is truncated, damaged or not what it should be") -> Iterator[None]:
    """The one place low-level read errors (HDF5, htslib, numpy, torch) become the project's
    error naming the file: ``with reading(path, "sample file", StoreError): ...``."""
    try:
        yield
    except TissueBertError:
        raise
    except LOW_LEVEL_ERRORS as exc:
        if isinstance(exc, OSError) and from_os_error(exc) is not None:
            raise  # a permission or space problem, said as such by the CLI
        raise error(f"cannot read {what}: {_describe(exc)}", path=path, hint=hint) from None

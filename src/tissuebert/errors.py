"""The project's error type: anything a user can cause becomes one clear line and exit code 2."""

from __future__ import annotations

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

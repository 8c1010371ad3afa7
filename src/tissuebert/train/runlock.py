"""One writer per run folder: rank 0 holds an exclusive ``flock`` on ``RUN/.lock`` while it runs.

Two jobs writing one run (a requeued job while the workers of a killed torchrun still run, or
the same command started twice) would interleave checkpoints and log rows. The lock is taken
before anything in the folder is read or written and is released by the kernel when the
holder dies, so a crash never leaves a stale lock behind. The file itself is never removed
(removing a lock file while another process waits on it would let two holders in).

Shared file systems: Linux NFS clients (v3 with the lock manager, v4) implement ``flock`` as a
whole-file POSIX lock held on the server, so it excludes writers on other nodes too. Lustre
does only when mounted with ``-o flock``; without it, and on any file system without locks,
``flock`` fails with ENOSYS / ENOLCK / EOPNOTSUPP / EINVAL: the run then goes on without the lock
and says so in one warning (refusing to train there would leave those clusters no way to run).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from tissuebert.constants import RUN
from tissuebert.errors import TissueBertError
from tissuebert.progress import get_logger

log = get_logger("train.lock")


class RunLockedError(TissueBertError):
    """Another process is writing the run folder."""


class RunLock:
    """``with RunLock(run_dir):`` holds the run folder's lock, or raises RunLockedError at once."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / RUN.LOCK
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                log.warning("%s: this file system does not support locks (%s): a second job writing this run "
                            "would not be refused; make sure only one runs (on Lustre, mount with -o flock)",
                            self.path, os.strerror(exc.errno) if exc.errno else exc)
                return self
            holder = self.path.read_text().strip() or "unknown process"
            os.close(fd)
            raise RunLockedError(f"another process is writing this run ({holder})", path=self.path.parent,
                                 hint="wait for it to end, or stop it (touch RUN/STOP, or kill that process); "
                                      "two writers would mix their checkpoints and logs") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

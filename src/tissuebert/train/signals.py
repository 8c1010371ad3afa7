"""Graceful stops: SIGUSR1/SIGTERM (SLURM's warning before the time limit) and SLURM requeue.

The handler only records the request; the loop checks it at the next optimiser-step boundary,
where model, optimiser and sampler agree, writes a mid-epoch checkpoint and returns. Under DDP
the flag is OR-reduced over ranks so every rank stops after the same step. A stop can also be
requested with a file (``RUN/STOP``, ``constants.RUN.STOP``), which reaches every node of a multi-node job without
signalling torchrun itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tissuebert.progress import get_logger

log = get_logger("train.signals")

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGUSR1", None), signal.SIGTERM) if s is not None)


LAUNCHER_GONE = "launcher gone"


class StopRequest:
    """Installs handlers for STOP_SIGNALS while active; ``requested`` names what asked to stop.

    ``watch_launcher``: under torchrun (TORCHELASTIC_RUN_ID set), a worker whose parent, the
    torchrun agent, has died stops too. torchrun starts each worker in its own session, so
    killing torchrun's process group (or SIGKILL to torchrun) leaves the workers running on,
    writing into the run folder while the operator believes the job is gone. Their parent then
    changes (to init or a subreaper); the next step boundary sees it, and the workers stop
    together with a mid-epoch checkpoint, as on SIGTERM, but without a SLURM requeue.
    """

    def __init__(self, stop_file: Path | None = None, *, watch_launcher: bool = False) -> None:
        self.stop_file = stop_file
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}
        self.launcher = os.getppid() if watch_launcher and os.environ.get("TORCHELASTIC_RUN_ID") else None

    def __enter__(self) -> "StopRequest":
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test thread): no handler
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame) -> None:
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> str | None:
        if self.signal_name is None and self.stop_file is not None and self.stop_file.exists():
            self.signal_name = f"stop file {self.stop_file}"
        if self.signal_name is None and self.launcher is not None and os.getppid() != self.launcher:
            self.signal_name = f"{LAUNCHER_GONE}: torchrun (pid {self.launcher}) exited"
        return self.signal_name


def slurm_job_id() -> str | None:
    """The job to requeue: the array task's own id for array jobs, else SLURM_JOB_ID."""
    job = os.environ.get("SLURM_JOB_ID")
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        return f"{array_job}_{array_task}"
    return job


def requeue_slurm_job(job_id: str) -> bool:
    """Run ``scontrol requeue JOB``; True when it succeeded."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        log.warning("SLURM job %s but no scontrol on PATH: not requeued; resubmit with --resume auto", job_id)
        return False
    result = subprocess.run([scontrol, "requeue", job_id], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log.warning("scontrol requeue %s failed (%s): resubmit with --resume auto", job_id,
                    (result.stderr or result.stdout).strip())
        return False
    log.info("requeued SLURM job %s; it will continue from the mid-epoch checkpoint", job_id)
    return True

"""Run logs (rank 0 only): epochs.csv, per_tissue.csv, steps.csv, TensorBoard, confusion plots.

CSV files are appended row by row and flushed, so a killed run keeps every finished row. On
resume, rows written after the checkpoint being resumed are dropped first, so each epoch and
step appears once even when a run died between its last checkpoint and its last log line.
"""

from __future__ import annotations

import csv
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from tissuebert.atomic import atomic_path
from tissuebert.constants import RUN
from tissuebert.metrics import per_class_rows, write_confusion

EPOCH_COLUMNS = ("epoch", "global_step", "train_loss", "train_acc", "val_loss", "val_acc", "val_balanced_acc",
                 "val_macro_f1", "lr", "epoch_s", "elapsed_s", "eta_s", "samples_per_s", "peak_gpu_mem_mb",
                 "peak_cpu_mem_mb", "skipped_steps")
PER_TISSUE_COLUMNS = ("epoch", "tissue", "accuracy", "precision", "recall", "f1", "support")
STEP_COLUMNS = ("global_step", "epoch", "loss", "lr", "grad_norm", "skipped_steps")
CONFUSION_STEM = "confusion_epoch_{:03d}"


def peak_cpu_mem_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_gpu_mem_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def truncate_csv(path: Path, column: str, max_value: float) -> None:
    """Keep the header and the rows whose ``column`` is <= max_value (atomic rewrite)."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
        fields = rows[0].keys() if rows else None
    if fields is None:
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(r for r in rows if float(r[column]) <= max_value)


class _CsvLog:
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path, self.columns = path, columns
        new = not path.is_file() or path.stat().st_size == 0
        self.fh = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=list(columns))
        if new:
            self.writer.writeheader()
            self.fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: _fmt(row.get(k, "")) for k in self.columns})
        self.fh.flush()

    def sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


class RunLogger:
    """Writes every run log; on ranks other than 0 every method does nothing."""

    def __init__(self, run_dir: Path, tissues: list[str], *, enabled: bool, resume_epoch: int | None = None,
                 resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.tissues = tissues
        self.run_dir = run_dir
        if not enabled:
            return
        logs = run_dir / RUN.LOGS
        for sub in (logs, run_dir / RUN.PLOTS, run_dir / RUN.TENSORBOARD):
            sub.mkdir(parents=True, exist_ok=True)
        if resume_epoch is not None:
            truncate_csv(logs / RUN.EPOCHS_CSV, "epoch", resume_epoch)
            truncate_csv(logs / RUN.PER_TISSUE_CSV, "epoch", resume_epoch)
            truncate_csv(logs / RUN.STEPS_CSV, "global_step", resume_step if resume_step is not None else 0)
        self.epochs = _CsvLog(logs / RUN.EPOCHS_CSV, EPOCH_COLUMNS)
        self.per_tissue = _CsvLog(logs / RUN.PER_TISSUE_CSV, PER_TISSUE_COLUMNS)
        self.steps = _CsvLog(logs / RUN.STEPS_CSV, STEP_COLUMNS)
        from torch.utils.tensorboard import SummaryWriter  # slow import: only rank 0 pays it

        # purge_step drops the events a killed run wrote after the checkpoint being resumed
        purge = None if resume_step is None else resume_step + 1
        if purge is not None:
            _wait_past_event_files(run_dir / RUN.TENSORBOARD)
        self.tb = SummaryWriter(str(run_dir / RUN.TENSORBOARD), purge_step=purge)

    def step(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.steps.write(row)
        for key in ("loss", "lr", "grad_norm"):
            self.tb.add_scalar(f"step/{key}", row[key], row["global_step"])

    def epoch(self, row: dict[str, Any], val_metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        epoch = row["epoch"]
        self.epochs.write(row)
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_balanced_acc", "val_macro_f1", "lr",
                    "samples_per_s", "skipped_steps"):
            self.tb.add_scalar(f"epoch/{key}", row[key], row["global_step"])
        for item in per_class_rows(val_metrics, self.tissues):
            self.per_tissue.write({"epoch": epoch, **item})
            self.tb.add_scalar(f"tissue_f1/{item['tissue']}", item["f1"], row["global_step"])
        stem = CONFUSION_STEM.format(epoch)
        plots = self.run_dir / RUN.PLOTS
        write_confusion(val_metrics["confusion"], self.tissues, plots / f"{stem}.png", plots / f"{stem}.csv",
                        title=f"Validation confusion, epoch {epoch}")
        self.tb.flush()

    def sync(self) -> None:
        """Flush every log to the disk (before the epoch's checkpoints: a checkpoint never outlives its rows)."""
        if not self.enabled:
            return
        for log in (self.epochs, self.per_tissue, self.steps):
            log.sync()
        self.tb.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        for log in (self.epochs, self.per_tissue, self.steps):
            log.close()
        self.tb.close()


def _wait_past_event_files(tb_dir: Path) -> None:
    """Start the resumed run's event file in a later second than every existing one.

    Readers order event files by name (``events.out.tfevents.<unix seconds>.<host>.<pid>``);
    a run resumed within the same second as the killed one could sort first by pid, and the
    purge it writes would then apply to the wrong file.
    """
    stamps = []
    for f in tb_dir.glob("events.out.tfevents.*"):
        parts = f.name.split(".")
        if len(parts) > 3 and parts[3].isdigit():
            stamps.append(int(parts[3]))
    deadline = time.time() + 2.0  # a file stamped in the future (clock skew) must not hang the run
    while stamps and int(time.time()) <= max(stamps) and time.time() < deadline:
        time.sleep(0.05)

"""Classification metrics from a confusion matrix (torchmetrics), and confusion plots.

Everything is derived from one confusion matrix so that a DDP run can reduce a single
(C, C) tensor across ranks and get exactly the numbers a single process would compute.
Conventions: rows are true classes, columns predictions; a class's "accuracy" is its recall;
balanced accuracy and macro F1 average over classes present in the targets (support > 0), so
a tissue absent from a split does not count as a failure.

A top-level module, like config and constants: the training loop (validation) and evaluate both
score classifications, and evaluate must not import the training code.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.functional.classification import multiclass_confusion_matrix

from tissuebert.atomic import atomic_path


def _as_preds(logits_or_preds: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(logits_or_preds) if not torch.is_tensor(logits_or_preds) else logits_or_preds)
    return x.argmax(dim=-1) if x.dim() == 2 else x.long()  # (N, C) logits -> (N,) classes


def confusion_matrix(logits_or_preds: Any, targets: Any, n_classes: int) -> np.ndarray:
    """(N, C) logits or (N,) predicted classes + (N,) targets -> (C, C) int64 counts [true, pred]."""
    preds = _as_preds(logits_or_preds)
    target = torch.as_tensor(np.asarray(targets) if not torch.is_tensor(targets) else targets).long()
    if preds.shape != target.shape:
        raise ValueError(f"predictions {tuple(preds.shape)} and targets {tuple(target.shape)} differ in length")
    if target.numel() == 0:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return multiclass_confusion_matrix(preds, target, num_classes=n_classes).numpy().astype(np.int64)


def metrics_from_confusion(matrix: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1 and per-class precision/recall/F1/support."""
    matrix = np.asarray(matrix, dtype=np.int64)  # (C, C) [true, pred]
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)  # (C,) true counts
    predicted = matrix.sum(axis=0)  # (C,) predicted counts
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    total = int(support.sum())
    return {
        "n": total,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "confusion": matrix.tolist(),
    }


def classification_metrics(logits_or_preds: Any, targets: Any, n_classes: int) -> dict[str, Any]:
    """Metrics of one set of predictions: see :func:`metrics_from_confusion` for the keys."""
    return metrics_from_confusion(confusion_matrix(logits_or_preds, targets, n_classes))


class ConfusionAccumulator:
    """Accumulates a confusion matrix over batches; ``compute`` sums it across DDP ranks."""

    def __init__(self, n_classes: int) -> None:
        self.metric = MulticlassConfusionMatrix(num_classes=n_classes)

    def update(self, logits_or_preds: Any, targets: Any) -> None:
        preds = _as_preds(logits_or_preds)
        if preds.numel():
            self.metric.update(preds.cpu(), torch.as_tensor(np.asarray(targets)).long().cpu())

    def compute(self) -> np.ndarray:
        # torchmetrics all-reduces its state when torch.distributed is initialised (gloo or NCCL)
        return self.metric.compute().numpy().astype(np.int64)


def per_class_rows(metrics: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    """One row per class: accuracy (= recall), precision, recall, F1, support."""
    return [{"tissue": name, "accuracy": metrics["recall"][i], "precision": metrics["precision"][i],
             "recall": metrics["recall"][i], "f1": metrics["f1"][i], "support": int(metrics["support"][i])}
            for i, name in enumerate(classes)]


def write_confusion(matrix: np.ndarray, tissues: list[str], png_path: str | Path | None,
                    csv_path: str | Path | None, *, title: str = "Confusion matrix") -> None:
    """Counts as CSV (rows true, columns predicted) and a row-normalised heat map as PNG."""
    matrix = np.asarray(matrix, dtype=np.int64)
    if csv_path is not None:
        with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["true\\predicted", *tissues])
            for name, row in zip(tissues, matrix):
                writer.writerow([name, *row.tolist()])
    if png_path is not None:
        _plot_confusion(matrix, tissues, Path(png_path), title)


def _plot_confusion(matrix: np.ndarray, tissues: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    frac = matrix / np.maximum(rows, 1)  # (C, C) share of each true class
    size = max(4.0, 0.45 * len(tissues) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(frac, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(len(tissues)), tissues, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tissues)), tissues, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(tissues) <= 12:  # counts stay legible only on small matrices
        for i in range(len(tissues)):
            for j in range(len(tissues)):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)

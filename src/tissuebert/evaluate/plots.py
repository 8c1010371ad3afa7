"""Figures of evaluate / calibrate (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tissuebert.atomic import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_reliability(bins: dict, path: str | Path, ece: float, title: str = "") -> None:
    """Reliability diagram: accuracy vs confidence per bin, with the share of reads per bin."""
    edges = bins["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    acc = np.nan_to_num(bins["accuracy"])
    ax.bar(centers, acc, width=width * 0.95, color="tab:blue", label="accuracy")
    gap = np.nan_to_num(bins["confidence"]) - acc
    ax.bar(centers, gap, bottom=acc, width=width * 0.95, color="tab:red", alpha=0.35, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"Reliability (ECE = {ece:.3f})")
    share = bins["count"] / max(1, bins["count"].sum())
    axh.bar(centers, share, width=width * 0.95, color="gray")
    axh.set_xlabel("confidence (top-class probability)")
    axh.set_ylabel("share of reads")
    axh.set_xlim(0, 1)
    _save(fig, path)

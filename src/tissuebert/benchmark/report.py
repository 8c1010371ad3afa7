"""Benchmark figures and the self-contained HTML report (figures embedded, no external files)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tissuebert.constants import OUT  # noqa: E402

FIGURES = {"scatter": "estimated_vs_true.png", "lod": "lod_per_tissue.png", "spike": "spike_in.png",
           "depth": "mae_by_depth.png"}


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def _grid(n: int) -> tuple[int, int]:
    cols = min(3, n)
    return (n + cols - 1) // cols, cols


def plot_scatter(path: Path, result: dict, mixtures, est: dict[str, np.ndarray]) -> None:
    depth = result["design"]["spike_depth"]
    sel = [m.mixture_id for m in mixtures if m.kind == "dirichlet" and m.depth == depth]
    if not sel:
        sel = [m.mixture_id for m in mixtures if m.kind == "dirichlet"]
    truth = np.stack([mixtures[i].truth for i in sel]) if sel else np.zeros((0, len(result["tissues"])))
    rows, cols = _grid(len(est))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (method, values) in zip(axes.ravel(), est.items()):
        ax.scatter(truth.ravel(), values[sel].ravel(), s=6, alpha=0.5)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        stats = result["methods"][method]["per_depth"].get(f"{depth:g}x")
        label = f"MAE {stats['mae']:.3f}, r {stats['pearson_r']:.3f}" if stats else ""
        ax.set_title(f"{method}\n{label}", fontsize=9)
        ax.set_xlabel("true proportion", fontsize=8)
        ax.set_ylabel("estimate", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    for ax in axes.ravel()[len(est):]:
        ax.axis("off")
    fig.suptitle(f"Random sparse mixtures at {depth:g}x", fontsize=10)
    _save(fig, path)


def plot_lod(path: Path, result: dict) -> None:
    methods = list(result["methods"])
    tissues = sorted({t for m in methods for t in result["methods"][m]["lod"]})
    top = max(result["design"]["spike_levels"]) * 2
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(tissues) + 2), 3.8))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(tissues))
    for k, method in enumerate(methods):
        lods = [result["methods"][method]["lod"].get(t, {}).get("lod") for t in tissues]
        vals = [v if v is not None else top for v in lods]
        bars = ax.bar(x + (k - (len(methods) - 1) / 2) * width, vals, width=width, label=method)
        for bar, v in zip(bars, lods):
            if v is None:
                bar.set_hatch("//")
                bar.set_alpha(0.4)
    ax.set_yscale("log")
    ax.set_xticks(x, tissues, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("limit of detection (fraction)")
    ax.set_title("Limit of detection per tissue (hatched: not detected up to the highest level)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def plot_spike(path: Path, result: dict, mixtures, est: dict[str, np.ndarray]) -> None:
    tissues = result["tissues"]
    rows, cols = _grid(len(est))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    spiked = sorted({m.spike_tissue for m in mixtures if m.kind == "spike"})
    for ax, (method, values) in zip(axes.ravel(), est.items()):
        for t in spiked:
            ids = [m for m in mixtures if m.kind == "spike" and m.spike_tissue == t]
            levels = sorted({m.level for m in ids})
            means = [np.mean([values[m.mixture_id, t] for m in ids if m.level == lv]) for lv in levels]
            ax.plot(np.array(levels) * 100, np.array(means) * 100, marker="o", ms=3, lw=1, label=tissues[t])
        ax.plot([0, 10], [0, 10], "k--", lw=0.8)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("spiked-in %", fontsize=8)
        ax.set_ylabel("mean estimate %", fontsize=8)
    for ax in axes.ravel()[len(est):]:
        ax.axis("off")
    if spiked:
        axes.ravel()[0].legend(fontsize=6, ncol=2)
    fig.suptitle("Spike-in series into the blood background", fontsize=10)
    _save(fig, path)


def plot_depth(path: Path, result: dict) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, res in result["methods"].items():
        depths = [float(d.rstrip("x")) for d in res["per_depth"]]
        ax.plot(depths, [v["mae"] for v in res["per_depth"].values()], marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("depth (reads per window)")
    ax.set_ylabel("MAE")
    ax.set_title("Error by depth (random sparse mixtures)", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)


def _img(folder: Path, name: str) -> str:
    data = base64.b64encode((folder / name).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(name)}">'


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "&mdash;"
    return f"{100 * v:.2g}%" if pct else f"{v:.4f}"


ORACLE = "oracle"


def best_usable(result: dict) -> dict[str, str]:
    """{depth: the non-oracle method with the lowest MAE there} (the oracle needs the true model)."""
    methods = {m: r for m, r in result["methods"].items() if m != ORACLE}
    if not methods:
        return {}
    depths = list(next(iter(methods.values()))["per_depth"])
    return {d: min(methods, key=lambda m: methods[m]["per_depth"][d]["mae"]) for d in depths}


def verdict(result: dict) -> str:
    """One sentence: which usable method is best at which depth, and how far from the oracle."""
    best = best_usable(result)
    if not best:
        return "Only the oracle was run: there is no usable method to judge."
    oracle = result["methods"].get(ORACLE)
    parts = []
    for method in dict.fromkeys(best.values()):  # each winner once, in depth order
        depths = [d for d, m in best.items() if m == method]
        maes = ", ".join(f"{result['methods'][method]['per_depth'][d]['mae']:.4f}" for d in depths)
        text = f"{method} at {', '.join(depths)} (MAE {maes}"
        if oracle is not None:
            ratios = [result["methods"][method]["per_depth"][d]["mae"] / oracle["per_depth"][d]["mae"]
                      for d in depths if oracle["per_depth"][d]["mae"] > 0]
            if ratios:
                text += f"; {', '.join(f'{r:.2f}' for r in ratios)}x the oracle's"
        parts.append(text + ")")
    return "Best usable method on random sparse mixtures: " + "; ".join(parts) + "."


def write_report(folder: Path, result: dict, mixtures, est: dict[str, np.ndarray]) -> None:
    """Figures as PNG files, and report.html embedding them with the summary tables."""
    plot_scatter(folder / FIGURES["scatter"], result, mixtures, est)
    plot_lod(folder / FIGURES["lod"], result)
    plot_spike(folder / FIGURES["spike"], result, mixtures, est)
    plot_depth(folder / FIGURES["depth"], result)
    methods = result["methods"]
    depths = list(next(iter(methods.values()))["per_depth"])
    head = "".join(f"<th>{d} MAE</th><th>{d} RMSE</th><th>{d} r</th><th>{d} FP mass</th>" for d in depths)
    rows = []
    best = best_usable(result)  # bold: the best method a user can run (not the oracle)
    for method, res in methods.items():
        cells = ""
        for d in depths:
            v = res["per_depth"][d]
            mae = _fmt(v["mae"])
            cells += (f"<td>{'<b>' + mae + '</b>' if best.get(d) == method else mae}</td><td>{_fmt(v['rmse'])}</td>"
                      f"<td>{_fmt(v['pearson_r'])}</td><td>{_fmt(v['fp_mass'])}</td>")
        rows.append(f"<tr><th>{html.escape(method)}</th>{cells}</tr>")
    tissues = sorted({t for m in methods for t in methods[m]["lod"]})
    lod_head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    lod_rows = "".join(f"<tr><th>{html.escape(t)}</th>" + "".join(
        f"<td>{_fmt(methods[m]['lod'].get(t, {}).get('lod'), pct=True)}</td>" for m in methods) + "</tr>"
        for t in tissues)
    design = result["design"]
    notes = "".join(f'<p class="verdict"><b>{html.escape(n)}</b></p>' for n in result.get("notes", []))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tissuebert benchmark</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
img{{max-width:100%;margin:0.5em 0}}.note{{color:#555;font-size:90%}}</style></head><body>
<h1>Deconvolution benchmark</h1>
<p class="verdict" id="verdict"><b>{html.escape(result.get("verdict") or verdict(result), quote=False)}</b></p>
<p>{result['n_mixtures']} in-silico mixtures of held-out <b>test</b> reads ({result['pool_reads']} reads),
{len(result['tissues'])} tissues, panel of {result['n_windows']} windows. \
Checkpoint <code>{html.escape(result['checkpoint'])}</code>.</p>
{notes}
<h2>Accuracy on random sparse mixtures</h2>
<p class="note">{design['n_dirichlet']} Dirichlet mixtures of 2-5 tissues per depth; depth = reads per window.
Lowest MAE of a usable method (not the oracle) per depth in bold. \
FP mass = proportion given to tissues absent from the mixture.</p>
<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table>
{_img(folder, FIGURES['scatter'])}{_img(folder, FIGURES['depth'])}
<h2>Limit of detection</h2>
<p class="note">Spike-in of each tissue into the blood background at {design['spike_depth']:g}x, levels
{', '.join(f'{100 * v:g}%' for v in design['spike_levels'])}, {design['replicates']} replicates each. LoD = lowest
level whose estimates exceed the 95th percentile of the 0% blanks in at least 95% of replicates.</p>
<table><tr><th>tissue</th>{lod_head}</tr>{lod_rows}</table>
{_img(folder, FIGURES['lod'])}{_img(folder, FIGURES['spike'])}
<p class="note">Methods: em = maximum likelihood over the model's per-read likelihoods (training prior divided out);
mean-posterior / argmax = average / majority of per-read calls; logreg = EM over the likelihoods of the
simple rival, a read-level logistic regression on one-hot (panel CpG, call) features fit on the store's training
split (training prior divided out); uxm = fragment U-fraction per marker, weighted NNLS;
nnls = per-marker beta NNLS (Moss); oracle = EM over the true generative likelihoods (simulated data only).
Full numbers: benchmark.json and estimates.tsv.</p></body></html>"""
    (folder / OUT.BENCHMARK_HTML).write_text(page)

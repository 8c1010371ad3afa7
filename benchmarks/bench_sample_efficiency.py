"""Sample efficiency vs panel size: training reads the model and logreg need to reach a share
of the oracle's balanced accuracy, at several panel sizes, and the projection to the design's panel.

For each ``--regions`` value a cohort is simulated (``--sim-preset``, same seed) and prepared;
the model (``--preset`` + ``--set``) trains ``--steps`` steps with ``--points`` validation
points (a real `tissuebert train` run); logreg is fitted on the same sampler at the same read
budgets. Both are scored on the same fixed validation reads as the oracle. Reads-to-threshold
is interpolated (log-linear in reads) on each curve; thresholds are shares of the oracle's
balanced accuracy (``--thresholds``) and, because 50% of the oracle can lie below chance,
also shares of the gap from chance to the oracle.

    python benchmarks/bench_sample_efficiency.py --regions 60 240 960 --steps 4000 --points 8 --out runs/eff

Writes OUT/efficiency.json and OUT/efficiency.png; prints a table and the projection.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tissuebert.config import load_config
from tissuebert.data.eval_set import build_eval_reads
from tissuebert.evaluate.oracle import oracle_loglik_for_reads
from tissuebert.metrics import classification_metrics
from tissuebert.store.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learning import train_curve  # noqa: E402  (a sibling script: the same training run)

DESIGN_WINDOWS = 51_000


def balanced(pred: np.ndarray, labels: np.ndarray, n_tissues: int) -> float:
    return float(classification_metrics(pred, labels, n_tissues)["balanced_accuracy"])


def make_store(root: Path, sim_preset: str, regions: int, seed: int) -> Store:
    from tissuebert.cli.app import main as cli

    cohort, store = root / "cohort", root / "store"
    if not (store / "manifest.json").is_file():
        assert cli(["simulate", "--out", str(cohort), "--preset", sim_preset, "--regions", str(regions),
                    "--seed", str(seed), "--no-bam", "--force"]) == 0
        assert cli(["prepare", "--samples", str(cohort / "samples.tsv"), "--reference", str(cohort / "genome.fa"),
                    "--regions", str(cohort / "regions.bed"), "--cpg-index", str(cohort / "CpG.bed.gz"),
                    "--out", str(store), "--force"]) == 0
    return Store.open(store)


def reads_to_reach(reads: np.ndarray, acc: np.ndarray, target: float) -> float | None:
    """Reads at which the curve first reaches ``target`` (log-linear interpolation); None if never."""
    above = np.flatnonzero(acc >= target)
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return float(reads[0])
    x0, x1 = np.log(reads[i - 1]), np.log(reads[i])
    frac = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
    return float(np.exp(x0 + frac * (x1 - x0)))


def model_curve(store: Store, out: Path, args) -> tuple[np.ndarray, np.ndarray, float]:
    """The model's validation curve; cached in OUT/curve.json (a rerun with --skip-logreg
    removed, say, reuses the training run)."""
    cache = out / "curve.json"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        return np.array(saved["reads"]), np.array(saved["balanced"]), saved["seconds_per_read"]
    config, rows, seconds = train_curve(store, out, args)
    per_step = config.train.batch_size * config.train.accum_steps
    reads = np.array([int(r["global_step"]) * per_step for r in rows], dtype=np.float64)
    balanced_acc = np.array([float(r["val_balanced_acc"]) for r in rows])
    per_read = seconds / (args.steps * per_step)
    cache.write_text(json.dumps({"reads": reads.tolist(), "balanced": balanced_acc.tolist(),
                                 "seconds_per_read": per_read, "config": config.model_dump(mode="json")}))
    return reads, balanced_acc, per_read


def logreg_curve(store: Store, val, budgets: np.ndarray, seed: int) -> np.ndarray:
    from tissuebert.inference.logreg import fit_logreg

    accs = []
    for n_reads in budgets:
        fit = fit_logreg(store, n_reads=int(n_reads), seed=seed)
        logits = fit.logits(store.panel, val.window_idx, val.calls)
        accs.append(balanced(logits.argmax(1), val.labels, len(store.tissues)))
    return np.array(accs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, nargs="+", default=[60, 240, 960])
    ap.add_argument("--sim-preset", default="demo")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.8, 0.95])
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip-logreg", action="store_true", help="train the model curves only (cached for a rerun)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = []
    for regions in args.regions:
        store = make_store(out / f"regions{regions}", args.sim_preset, regions, args.seed)
        config = load_config(args.preset)
        val = build_eval_reads(store, "val", max_reads_per_sample=config.data.val_reads_per_sample,
                               seed=config.train.seed, min_cpgs=config.data.min_cpgs)
        cohort = Path(store.manifest.provenance["sheet"]).parent
        oracle = balanced(oracle_loglik_for_reads(cohort, store, val.window_idx, val.calls).argmax(1), val.labels,
                          len(store.tissues))
        chance = 1.0 / len(store.tissues)
        reads, model_acc, sec_per_read = model_curve(store, out / f"regions{regions}" / "run", args)
        if args.skip_logreg:
            continue
        logreg_acc = logreg_curve(store, val, reads, args.seed)
        row = {"regions": regions, "windows": store.panel.n_windows, "oracle": oracle, "chance": chance,
               "reads": reads.tolist(), "model": model_acc.tolist(), "logreg": logreg_acc.tolist(),
               "model_seconds_per_read": sec_per_read, "to_reach": {}}
        for share in args.thresholds:
            for kind, target in (("of_oracle", share * oracle), ("of_gap", chance + share * (oracle - chance))):
                row["to_reach"][f"{kind}_{share:g}"] = {"model": reads_to_reach(reads, model_acc, target),
                                                         "logreg": reads_to_reach(reads, logreg_acc, target)}
        results.append(row)
        print(f"regions {regions} ({row['windows']} windows): oracle {oracle:.4f}, chance {chance:.4f}; "
              f"final model {model_acc[-1]:.4f}, logreg {logreg_acc[-1]:.4f}; reads to reach: "
              + "; ".join(f"{k} model {v['model']} logreg {v['logreg']}" for k, v in row["to_reach"].items()),
              flush=True)
    if args.skip_logreg:
        return 0
    summary = {"args": vars(args), "results": results, "projection": project(results)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "efficiency.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(results, out / "efficiency.png")
    print(json.dumps(summary["projection"], indent=2))
    return 0


def project(results: list[dict]) -> dict:
    """Power-law fit reads = a * windows^b per threshold (where reached at >= 2 sizes), extrapolated."""
    proj = {}
    for key in results[0]["to_reach"]:
        for who in ("model", "logreg"):
            pts = [(r["windows"], r["to_reach"][key][who]) for r in results if r["to_reach"][key][who]]
            if len(pts) < 2:
                proj[f"{key}/{who}"] = None
                continue
            w, n = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            slope, icpt = np.polyfit(w, n, 1)
            proj[f"{key}/{who}"] = {"exponent": float(slope),
                                    "reads_at_design_panel": float(np.exp(icpt + slope * np.log(DESIGN_WINDOWS)))}
    return proj


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(results):
        color = f"C{i}"
        rel_m = np.array(r["model"]) / r["oracle"]
        rel_l = np.array(r["logreg"]) / r["oracle"]
        ax.plot(r["reads"], rel_m, "-o", color=color, label=f"model, {r['windows']} windows")
        ax.plot(r["reads"], rel_l, "--s", color=color, alpha=0.7, label=f"logreg, {r['windows']} windows")
        ax.axhline(r["chance"] / r["oracle"], color=color, lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training reads")
    ax.set_ylabel("balanced accuracy / oracle's")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())

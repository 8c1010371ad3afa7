"""`tissuebert demo`: every stage on the embedded simulated cohort, outputs kept for inspection.

The demo runs the same in-process commands a user would type (printed as it goes), so each
stage's output folder is exactly what that command writes.
"""

from __future__ import annotations

import csv
import json
import shlex
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from tissuebert.atomic import atomic_write_text, check_output
from tissuebert.constants import CKPT_BEST_ACC, OUT, RUN
from tissuebert.errors import TissueBertError
from tissuebert.progress import get_logger

log = get_logger("demo")

# Mixtures of known composition deconvolved at the end: a blood background with solid-tissue
# spike-ins, like a cfDNA sample (blood cell types dominate plasma cfDNA).
DEMO_DEPTH = 30.0


def _run(argv: list[str]) -> None:
    from tissuebert.cli.app import main

    log.info("$ tissuebert %s", " ".join(shlex.quote(a) for a in argv))
    code = main(argv)
    if code != 0:
        raise TissueBertError(f"demo step failed with exit code {code}: tissuebert {' '.join(argv)}")


def _read_proportions(path: Path) -> dict[str, float]:
    with open(path) as fh:
        rows = list(csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t"))
    return {row["tissue"]: float(row["proportion"]) for row in rows}


def demo_mixtures(tissues: list[str], seed: int) -> dict[str, dict[str, float]]:
    """Three cfDNA-like compositions over the cohort's tissues: mostly blood plus solid organs."""
    rng = np.random.default_rng(seed)
    blood = [t for t in tissues if t.startswith("Blood")] or tissues[:1]
    solid = [t for t in tissues if t not in blood] or tissues[1:]
    mixes: dict[str, dict[str, float]] = {}
    for k, solid_share in enumerate((0.1, 0.3, 0.5)):
        props = dict.fromkeys(tissues, 0.0)
        bw = rng.dirichlet(np.ones(len(blood)))
        for t, w in zip(blood, bw):
            props[t] += (1 - solid_share) * w
        picked = rng.choice(solid, size=min(2, len(solid)), replace=False)
        sw = rng.dirichlet(np.ones(len(picked)))
        for t, w in zip(picked, sw):
            props[t] += solid_share * w
        mixes[f"mix{k + 1}_solid{int(solid_share * 100)}"] = {t: round(p, 4) for t, p in props.items() if p > 0}
    return mixes


def run_demo(out: Path, *, seed: int, force: bool, epochs: int | None, preset: str) -> dict:
    from tissuebert.simulate import load_truth, simulate_mixture

    check_output(out, force=force)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cohort, store, run, ev, dec = (out / n for n in ("cohort", "store", "run", "eval", "deconvolution"))
    force_flag = ["--force"]
    _run(["simulate", "--out", str(cohort), "--preset", preset, "--seed", str(seed), *force_flag])
    _run(["prepare", "--samples", str(cohort / "samples.tsv"), "--reference", str(cohort / "genome.fa"),
          "--regions", str(cohort / "regions.bed"), "--cpg-index", str(cohort / "CpG.bed.gz"),
          "--out", str(store), *force_flag])
    _run(["validate", str(store)])
    train_args = ["train", "--store", str(store), "--preset", "tiny", "--out", str(run), "--set", f"train.seed={seed}"]
    if epochs is not None:
        train_args += ["--set", f"train.epochs={epochs}"]
    _run([*train_args, *force_flag])
    ckpt = run / RUN.CHECKPOINTS / CKPT_BEST_ACC
    _run(["evaluate", "--checkpoint", str(ckpt), "--store", str(store), "--split", "test", "--out", str(ev), *force_flag])
    metrics = json.loads((ev / OUT.METRICS).read_text())

    truth = load_truth(cohort)
    mixes = demo_mixtures(list(truth.tissues), seed)
    rows = []
    for name, props in mixes.items():
        pat = simulate_mixture(cohort, props, depth=DEMO_DEPTH, seed=seed, out_path=dec / "inputs" / f"{name}.pat.gz")
        _run(["deconvolve", "--checkpoint", str(ckpt), "--input", str(pat), "--cpg-index", str(cohort / "CpG.bed.gz"),
              "--reference", str(cohort / "genome.fa"), "--out", str(dec / name), *force_flag])
        est = _read_proportions(dec / name / OUT.PROPORTIONS)
        err = [abs(est.get(t, 0.0) - props.get(t, 0.0)) for t in truth.tissues]
        rows.append({"mixture": name, "mae": float(np.mean(err)), "max_abs_error": float(np.max(err)),
                     "true": props, "estimated": {t: round(v, 4) for t, v in est.items()}})
    summary = {
        "test_accuracy": metrics.get("accuracy"), "test_macro_f1": metrics.get("macro_f1"),
        "test_balanced_accuracy": metrics.get("balanced_accuracy"),
        "oracle_accuracy": metrics.get("oracle", {}).get("accuracy") if isinstance(metrics.get("oracle"), dict) else None,
        "chance_accuracy": 1.0 / len(truth.tissues), "n_tissues": len(truth.tissues),
        "mixture_mae": float(np.mean([r["mae"] for r in rows])), "mixtures": rows,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    atomic_write_text(out / "summary.md", _summary_markdown(summary, out))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _fmt(value: float | None, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:.4f}"


def _summary_markdown(s: dict, out: Path) -> str:
    lines = [
        "# tissuebert demo summary", "",
        f"Simulated cohort of {s['n_tissues']} tissues; tiny model trained on CPU; {s['elapsed_s']} s in all.", "",
        "| metric | value |", "| --- | --- |",
        f"| test read accuracy | {_fmt(s['test_accuracy'])} |",
        f"| test balanced accuracy | {_fmt(s['test_balanced_accuracy'])} |",
        f"| test macro F1 | {_fmt(s['test_macro_f1'], pct=False)} |",
        f"| oracle (Bayes-optimal) read accuracy | {_fmt(s['oracle_accuracy'])} |",
        f"| chance (1 / tissues) | {_fmt(s['chance_accuracy'])} |",
        f"| mixture MAE (EM, {len(s['mixtures'])} mixtures at {DEMO_DEPTH:g}x) | {_fmt(s['mixture_mae'], pct=False)} |",
        "", "## Mixtures", "", "| mixture | MAE | max abs error | true composition |", "| --- | --- | --- | --- |",
    ]
    for r in s["mixtures"]:
        comp = ", ".join(f"{t} {v:.2f}" for t, v in sorted(r["true"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {r['mixture']} | {r['mae']:.4f} | {r['max_abs_error']:.4f} | {comp} |")
    lines += ["", "## Where things are", "",
              f"- `{out}/cohort/`: simulated inputs (FASTA, regions BED, CpG index, sample sheet, .pat.gz, BAM, truth)",
              f"- `{out}/store/`: the prepared store", f"- `{out}/run/`: checkpoints, logs, plots",
              f"- `{out}/eval/`: test-split metrics and confusion matrix",
              f"- `{out}/deconvolution/`: one folder per mixture with proportions.tsv", ""]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for every stage.")] = Path("demo"),
        seed: Annotated[int, typer.Option("--seed", help="Seed of the simulation and training.")] = 0,
        preset: Annotated[str, typer.Option("--preset", help="Simulation preset (demo, small).")] = "demo",
        epochs: Annotated[Optional[int], typer.Option("--epochs", help="Override the tiny preset's epochs.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output directory.")] = False,
    ) -> None:
        """Simulate a cohort, prepare, train, evaluate and deconvolve mixtures; print a summary.

        Example: tissuebert demo --out demo --force
        """
        summary = run_demo(out, seed=seed, force=force, epochs=epochs, preset=preset)
        typer.echo((out / "summary.md").read_text())
        typer.echo(f"demo outputs: {out}/ (summary.md, cohort/, store/, run/, eval/, deconvolution/)")
        if summary["test_accuracy"] is not None and summary["test_accuracy"] <= summary["chance_accuracy"]:
            log.warning("test accuracy is not above chance: training too short for this cohort?")

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


DEMO_METHODS = ("em", "logreg", "uxm", "nnls")  # model EM, its simple rival, the two reference baselines
ORACLE = "oracle"
UNIFORM = "uniform"  # the guess that knows nothing: 1 / tissues each
TRUTH_SUFFIX = ".truth.tsv"  # beside each demo mixture: tissue, proportion


def _oracle_mixture(cohort: Path, store, pat: Path) -> dict[str, float]:
    """Maximum-likelihood proportions of a mixture's reads under the exact generative likelihoods."""
    from tissuebert.deconvolve.em import em_proportions, scaled_likelihoods
    from tissuebert.deconvolve.sample import load_sample
    from tissuebert.evaluate.oracle import oracle_loglik_for_reads

    sample = load_sample(state=None, input_path=pat, fmt="pat", cpg_index=cohort / "CpG.bed.gz",
                         reference=cohort / "genome.fa", store=store, sample_id=None)
    lik = scaled_likelihoods(oracle_loglik_for_reads(cohort, store, sample.window_idx, sample.calls))
    est = em_proportions(None, weights=sample.counts.astype(np.float64), lik=lik)
    return {t: float(v) for t, v in zip(store.tissues, est)}


def run_demo(out: Path, *, seed: int, force: bool, epochs: int | None, preset: str) -> dict:
    from tissuebert.deconvolve.output import read_proportions_tsv
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
    t_train = time.perf_counter()
    _run([*train_args, *force_flag])
    train_s = time.perf_counter() - t_train
    # temperature scaling on the validation split: EM needs likelihoods, not label-smoothed scores
    ckpt = run / RUN.CHECKPOINTS / "calibrated.pt"
    _run(["calibrate", "--checkpoint", str(run / RUN.CHECKPOINTS / CKPT_BEST_ACC), "--store", str(store),
          "--out", str(ckpt), *force_flag])
    _run(["evaluate", "--checkpoint", str(ckpt), "--store", str(store), "--split", "test", "--out", str(ev), *force_flag])
    metrics = json.loads((ev / OUT.METRICS).read_text())

    truth = load_truth(cohort)
    tissues = list(truth.tissues)
    mixes = demo_mixtures(tissues, seed)
    from tissuebert.store.store import Store

    opened = Store.open(store)  # read once for the oracle of every mixture
    mix_dir = out / "mixtures"
    pats = {}
    for name, props in mixes.items():
        pats[name] = simulate_mixture(cohort, props, depth=DEMO_DEPTH, seed=seed, out_path=mix_dir / f"{name}.pat.gz",
                                      force=True)
        # the truth beside each mixture: what a user compares the deconvolution with
        atomic_write_text(mix_dir / f"{name}{TRUTH_SUFFIX}", "tissue\tproportion\n"
                          + "".join(f"{t}\t{props.get(t, 0.0):.4f}\n" for t in tissues))
    # one call for the three mixtures: one table (deconvolution/cohort_proportions.tsv), one folder each
    _run(["deconvolve", "--checkpoint", str(ckpt), "--cpg-index", str(cohort / "CpG.bed.gz"),
          "--reference", str(cohort / "genome.fa"), "--store", str(store), "--method", ",".join(DEMO_METHODS),
          "--out", str(dec), *force_flag, *(str(p) for p in pats.values())])
    dec_info = json.loads((dec / OUT.RUN_INFO).read_text())
    rows = []
    for name, props in mixes.items():
        estimates = read_proportions_tsv(dec / name / OUT.PROPORTIONS)
        estimates[ORACLE] = _oracle_mixture(cohort, opened, pats[name])
        estimates[UNIFORM] = dict.fromkeys(tissues, 1.0 / len(tissues))
        per_method = {}
        for method, est in estimates.items():
            err = [abs(est.get(t, 0.0) - props.get(t, 0.0)) for t in tissues]
            per_method[method] = {"mae": float(np.mean(err)), "max_abs_error": float(np.max(err)),
                                  "estimated": {t: round(v, 4) for t, v in est.items()}}
        rows.append({"mixture": name, "true": props, "methods": per_method})
    methods = [*DEMO_METHODS, ORACLE, UNIFORM]
    summary = {
        "n_tissues": len(tissues), "chance_accuracy": 1.0 / len(tissues),
        "reads": {who: _read_metrics(metrics, who) for who in ("model", "logreg", ORACLE)},
        "test_sample_calls": {"correct": int(sum(s["correct"] for s in metrics.get("per_sample", []))),
                              "total": len(metrics.get("per_sample", []))},
        "f1_share_of_oracle": _f1_shares(ev / OUT.PER_TISSUE),
        "mixture_mae": {m: float(np.mean([r["methods"][m]["mae"] for r in rows])) for m in methods},
        "mixture_max_abs_error": {m: float(np.max([r["methods"][m]["max_abs_error"] for r in rows])) for m in methods},
        "mixtures": rows, "deconvolution_warnings": dec_info.get("warnings", []), "train_s": round(train_s, 1), "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    summary["verdicts"] = _verdicts(summary)
    atomic_write_text(out / "summary.md", _summary_markdown(summary, out))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _f1_shares(per_tissue: Path) -> dict[str, float] | None:
    """Each tissue's F1 as a share of the oracle's on the same reads (None without an oracle)."""
    with open(per_tissue, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or "oracle_f1" not in rows[0]:
        return None
    return {r["tissue"]: round(float(r["f1"]) / float(r["oracle_f1"]), 4) if float(r["oracle_f1"]) > 0 else None
            for r in rows}


def _read_metrics(metrics: dict, who: str) -> dict | None:
    block = metrics if who == "model" else metrics.get(who)
    if not isinstance(block, dict):
        return None
    return {k: block.get(k) for k in ("accuracy", "balanced_accuracy", "macro_f1")}


def _verdicts(s: dict) -> list[str]:
    """Plain sentences on what the numbers say (shown in the summary): one on the reads, one on
    the mixtures, whichever way each goes."""
    out = []
    mae = s["mixture_mae"]
    reads = s["reads"]
    if reads.get("logreg"):
        model_acc, logreg_acc = reads["model"]["balanced_accuracy"], reads["logreg"]["balanced_accuracy"]
        if model_acc <= logreg_acc:
            out.append("Per read, the transformer is not more accurate than the logistic regression on this cohort.")
        else:
            out.append(f"Per read, the transformer is more accurate than the logistic regression "
                       f"({100 * model_acc:.1f}% against {100 * logreg_acc:.1f}% balanced accuracy).")
    baseline = min(mae["uxm"], mae["nnls"])
    ratio = mae["em"] / mae[ORACLE]
    if mae["em"] >= baseline:
        out.append("The model's mixture estimates are no better than a reference baseline (UXM / NNLS): use those.")
    elif ratio > 1.5:
        out.append(f"The model's mixture estimates beat UXM and NNLS, but their MAE is {ratio:.1f}x the oracle's "
                   "(target <= 1.5x).")
    else:
        out.append(f"The model's mixture estimates beat UXM and NNLS (MAE {mae['em']:.4f} against {baseline:.4f}) "
                   f"and are within 1.5x of the oracle's error ({ratio:.2f}x).")
    if "logreg" in mae and mae["em"] < mae["logreg"]:
        out.append(f"They also beat the logistic regression's (MAE {mae['logreg']:.4f}).")
    return out


def _fmt(value: float | None, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:.4f}"


def _summary_markdown(s: dict, out: Path) -> str:
    reads = s["reads"]
    methods = [m for m in ("em", "logreg", "uxm", "nnls", ORACLE) if m in s["mixture_mae"]]
    label = {"em": "TissueBERT (EM)", "logreg": "logreg (EM)", "uxm": "UXM", "nnls": "NNLS", ORACLE: "oracle",
             UNIFORM: "uniform guess (1 / tissues each)"}
    calls = s["test_sample_calls"]
    lines = [
        "# tissuebert demo summary", "",
        f"Simulated cohort of {s['n_tissues']} tissues; tiny model trained on CPU in {s['train_s']} s; "
        f"{s['elapsed_s']} s in all.", "",
        "## Per read (test split)", "",
        "| classifier | accuracy | balanced accuracy | macro F1 |", "| --- | --- | --- | --- |",
    ]
    for who, name in (("model", "TissueBERT"), ("logreg", "logreg"), (ORACLE, "oracle (Bayes-optimal)")):
        m = reads.get(who)
        if m:
            lines.append(f"| {name} | {_fmt(m['accuracy'])} | {_fmt(m['balanced_accuracy'])} | "
                         f"{_fmt(m['macro_f1'], pct=False)} |")
    lines.append(f"| chance (1 / tissues) | {_fmt(s['chance_accuracy'])} | {_fmt(s['chance_accuracy'])} | |")
    shares = {t: v for t, v in (s.get("f1_share_of_oracle") or {}).items() if v is not None}
    if shares:
        low, high = min(shares, key=shares.get), max(shares, key=shares.get)
        lines += ["", f"Per-tissue F1 as a share of the oracle's (`eval/per_tissue.tsv`): from "
                      f"{shares[low]:.2f} ({low}) to {shares[high]:.2f} ({high})."]
    lines += ["", f"Whole-sample calls (each pure test sample's tissue from all its reads): "
              f"{calls['correct']} of {calls['total']} right.", "",
              f"## Mixtures ({len(s['mixtures'])} simulated cfDNA mixtures at {DEMO_DEPTH:g}x)", "",
              "| method | mean absolute error | largest error of one component |", "| --- | --- | --- |"]
    for m in [*methods, UNIFORM] if UNIFORM in s["mixture_mae"] else methods:
        lines.append(f"| {label[m]} | {s['mixture_mae'][m]:.4f} | {s['mixture_max_abs_error'][m]:.4f} |")
    lines += ["", "Estimated composition beside the truth (tissues with a true or estimated share >= 1%; "
              "`mixtures/<name>.truth.tsv` holds the truth):"]
    for r in s["mixtures"]:
        shown = [t for t in sorted(r["true"], key=lambda t: -r["true"][t])]
        shown += sorted({t for m in methods for t, v in r["methods"][m]["estimated"].items()
                         if v >= 0.01 and t not in shown})
        lines += ["", f"### {r['mixture']}", "", "| tissue | true | " + " | ".join(label[m] for m in methods) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in methods) + " |"]
        for t in shown:
            lines.append(f"| {t} | {r['true'].get(t, 0.0):.3f} | "
                         + " | ".join(f"{r['methods'][m]['estimated'].get(t, 0.0):.3f}" for m in methods) + " |")
    lines += ["", "## What this says", ""] + [f"- {v}" for v in s["verdicts"]]
    if s.get("deconvolution_warnings"):
        lines += ["", "Warnings of the deconvolution (also in `deconvolution/run.json`):", ""]
        lines += [f"- {w}" for w in s["deconvolution_warnings"]]
    lines += ["", "## Where things are", "",
              f"- `{out}/cohort/`: simulated inputs (FASTA, regions BED, CpG index, sample sheet, .pat.gz, BAM, truth)",
              f"- `{out}/store/`: the prepared store",
              f"- `{out}/run/`: checkpoints (`calibrated.pt` = best_acc.pt + temperature), logs, plots",
              f"- `{out}/eval/`: test-split metrics (model, logreg, oracle), per-sample calls, confusion matrix",
              f"- `{out}/mixtures/`: the simulated cfDNA mixtures (`<name>.pat.gz`) and their truth (`<name>.truth.tsv`)",
              f"- `{out}/deconvolution/`: one `tissuebert deconvolve` call on the three mixtures: "
              "`cohort_proportions.tsv` (every mixture and method, with intervals), `cohort_matrix.tsv`, "
              "`tissuebert_mqc.tsv`, and one folder per mixture with proportions.tsv + .png", ""]
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
        typer.echo(f"demo outputs: {out}/ (summary.md, cohort/, store/, run/, eval/, mixtures/, deconvolution/)")
        if summary["reads"]["model"]["balanced_accuracy"] <= summary["chance_accuracy"] + 0.01:
            log.warning("test balanced accuracy is within a point of chance: training too short for this cohort?")

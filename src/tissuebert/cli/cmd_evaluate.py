"""`tissuebert evaluate`, `calibrate`, `predict`, `deconvolve` and `benchmark`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import ForceOpt, require_at_least
from tissuebert.errors import TissueBertError
from tissuebert.io.formats import INPUT_FORMATS

CheckpointOpt = Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint .pt (e.g. RUN/checkpoints/best_acc.pt).")]
StoreOpt = Annotated[Path, typer.Option("--store", help="Store directory built by `tissuebert prepare`.")]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory (refused if it exists, unless --force).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="Inference precision: auto (bf16 where the device multiplies bf16 natively: CUDA, AMX / AVX512-BF16 CPUs; else fp32), fp32, bf16 or fp16.")]
MaxReadsOpt = Annotated[Optional[int], typer.Option("--max-reads-per-sample", help="Score a fixed random subset of at most this many reads per sample (default: all).")]
InputOpt = Annotated[Optional[Path], typer.Option("--input", "-i", help="Sample file: .pat.gz, BAM, bedMethyl, .cov or .beta.")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help=f"Input format ({', '.join(INPUT_FORMATS)}); default from the file name.")]
CpgIndexOpt = Annotated[Optional[Path], typer.Option("--cpg-index", help="wgbs_tools CpG.bed.gz of the reference (for .pat/.beta inputs).")]
ReferenceOpt = Annotated[Optional[Path], typer.Option("--reference", help="Reference FASTA the model was trained on (rebuilds its panel).")]
SampleOpt = Annotated[Optional[str], typer.Option("--sample", help="Use this store sample's reads instead of --input.")]


def _split_methods(methods: list[str] | None, default: list[str]) -> list[str]:
    out: list[str] = []
    for item in methods or default:
        out += [m.strip() for m in item.split(",") if m.strip()]
    return out


def evaluate(
    checkpoint: CheckpointOpt,
    store: StoreOpt,
    out: OutDirOpt,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    max_reads_per_sample: MaxReadsOpt = None,
    truth: Annotated[Optional[Path], typer.Option("--truth", help="Simulated cohort folder (with truth/) for the oracle rows; default: found from the store's provenance.")] = None,
    logreg: Annotated[bool, typer.Option("--logreg/--no-logreg", help="Also fit the simple rival (read-level logistic regression) on the store's train split and score the same reads.")] = True,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Per-read accuracy, balanced accuracy, macro F1, per-tissue P/R/F1, confusion matrix, calibration
    (ECE + reliability diagram) and per-sample calls of a checkpoint on a store split.

    Example: tissuebert evaluate --checkpoint run/checkpoints/best_acc.pt --store store --split test --out eval
    """
    from tissuebert.evaluate import evaluate_split

    require_at_least(max_reads_per_sample, 1, "--max-reads-per-sample")
    m = evaluate_split(checkpoint, store, split, out, force=force, max_reads_per_sample=max_reads_per_sample,
                       device=device, precision=precision, truth_dir=truth, logreg=logreg)
    typer.echo(f"{split}: {m['n_reads']} reads of {m['n_samples']} samples; accuracy {m['accuracy']:.4f}, "
               f"balanced accuracy {m['balanced_accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, "
               f"ECE {m['ece']:.4f}, sample calls {m['sample_accuracy']:.3f} correct -> {out}")
    if "logreg" in m:
        typer.echo(f"logreg (simple rival, {m['logreg']['fit']['n_reads']} training reads) on the same reads: "
                   f"accuracy {m['logreg']['accuracy']:.4f}, balanced accuracy {m['logreg']['balanced_accuracy']:.4f}, "
                   f"macro F1 {m['logreg']['macro_f1']:.4f}")
    if "oracle" in m:
        typer.echo(f"oracle (Bayes-optimal) on the same reads: accuracy {m['oracle']['accuracy']:.4f}, "
                   f"balanced accuracy {m['oracle']['balanced_accuracy']:.4f}, macro F1 {m['oracle']['macro_f1']:.4f}")
    for note in m.get("notes", []):
        typer.echo(note)


def calibrate(
    checkpoint: CheckpointOpt,
    store: StoreOpt,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Calibrated checkpoint to write (default: NAME.calibrated.pt beside the input).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split to fit the temperature on.")] = "val",
    max_reads_per_sample: MaxReadsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Fit temperature scaling on the validation split and save it with the checkpoint; predict and
    deconvolve then use it.

    Example: tissuebert calibrate --checkpoint run/checkpoints/best_acc.pt --store store
    """
    from tissuebert.evaluate import calibrate_checkpoint

    require_at_least(max_reads_per_sample, 1, "--max-reads-per-sample")
    r = calibrate_checkpoint(checkpoint, store, split=split, out=out, force=force,
                             max_reads_per_sample=max_reads_per_sample, device=device,
                             precision=precision)
    typer.echo(f"temperature {r['temperature']:.4f} ({r['n_reads']} {split} reads): NLL {r['nll_before']:.4f} -> "
               f"{r['nll_after']:.4f}, ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f}; wrote {r['checkpoint']}")


def deconvolve(
    out: OutDirOpt,
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Sample files (.pat.gz, BAM, bedMethyl, .cov, .beta) or quoted globs ('mixtures/*.pat.gz'); a sample's id is its file name without the format suffix.", show_default=False)] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Checkpoint .pt (needed by em, mean-posterior, argmax).")] = None,
    input: Annotated[Optional[list[Path]], typer.Option("--input", "-i", help="A sample file (repeatable; the same as a positional input).")] = None,
    samples: Annotated[Optional[Path], typer.Option("--samples", help="Sample sheet TSV with columns sample_id and path (format optional; a training sheet works).")] = None,
    fmt: FormatOpt = None,
    cpg_index: CpgIndexOpt = None,
    reference: ReferenceOpt = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="Store: its panel replaces --reference; its training split is the uxm/nnls reference and logreg's training data; with --sample, the reads.")] = None,
    sample: Annotated[Optional[list[str]], typer.Option("--sample", help="Use this store sample's reads (repeatable).")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="em (default), mean-posterior, argmax, logreg (needs --store), uxm, nnls; repeat or comma-separate.")] = None,
    atlas: Annotated[Optional[Path], typer.Option("--atlas", help="uxm: a published UXM atlas TSV (CpG-index markers) to score a .pat input against, or a BAM input with --cpg-index (the atlas genome's CpG.bed.gz).")] = None,
    bootstrap: Annotated[Optional[int], typer.Option("--bootstrap", help="Bootstrap resamples for the intervals (default: the checkpoint's eval.bootstrap; 0 = none).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Override the checkpoint's calibrated temperature.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    posteriors: Annotated[bool, typer.Option("--posteriors/--no-posteriors", help="Also write per-read posteriors (posteriors.tsv.gz).")] = True,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Tissue proportions of one sample or a cohort by maximum likelihood over the model's per-read
    likelihoods (EM, training prior divided out), with bootstrap intervals. Each unique
    (window, read pattern) of the whole cohort is scored once. Writes one folder per sample
    (proportions.tsv + .png) and the cohort tables cohort_proportions.tsv, cohort_matrix.tsv and
    tissuebert_mqc.tsv (MultiQC).

    Example: tissuebert deconvolve --checkpoint run/checkpoints/calibrated.pt --cpg-index CpG.bed.gz --reference genome.fa --out deconv 'mixtures/*.pat.gz'
    """
    from tissuebert.deconvolve.cohort import deconvolve_cohort
    from tissuebert.deconvolve.inputs import resolve_inputs

    methods = _split_methods(method, ["em"])
    require_at_least(bootstrap, 0, "--bootstrap")
    if temperature is not None and not temperature > 0:
        raise TissueBertError(f"--temperature must be > 0, got {temperature}")
    if sample and store is None:
        raise TissueBertError("--sample needs --store")
    specs = resolve_inputs([*(inputs or []), *(str(p) for p in input or [])], sheet=samples, store_samples=sample,
                           fmt=fmt)
    results = deconvolve_cohort(out, specs, checkpoint=checkpoint, methods=methods, cpg_index=cpg_index,
                                reference=reference, store_root=store, atlas=atlas, n_boot=bootstrap, seed=seed,
                                temperature=temperature, posteriors=posteriors, device=device,
                                precision=precision, force=force)
    for sample_id, res in results.items():
        for r in res:
            order = r.proportions.argsort()[::-1][:5]
            top = ", ".join(f"{r.tissues[i]} {r.proportions[i]:.3f}" for i in order)
            prefix = f"{sample_id} " if len(results) > 1 else ""
            typer.echo(f"{prefix}{r.method}: {top}  ({r.n_reads} reads)")
    typer.echo(f"wrote {out}" + (f" ({len(results)} samples; cohort_proportions.tsv, cohort_matrix.tsv)"
                                 if len(results) > 1 else ""))


def predict(
    checkpoint: CheckpointOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Per-read posteriors file (.tsv.gz).")],
    input: InputOpt = None,
    fmt: FormatOpt = None,
    cpg_index: CpgIndexOpt = None,
    reference: ReferenceOpt = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="Store whose panel replaces --reference; with --sample, the reads.")] = None,
    sample: SampleOpt = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Override the checkpoint's calibrated temperature.")] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Per-read tissue posteriors of one sample (identical reads collapsed, with their count) to a
    gzipped TSV: window, count, one column per tissue, call.

    Example: tissuebert predict --checkpoint run/checkpoints/best_acc.pt --input sample.pat.gz --cpg-index CpG.bed.gz --reference genome.fa --out sample.posteriors.tsv.gz
    """
    from tissuebert.deconvolve.sample import predict_sample

    if temperature is not None and not temperature > 0:
        raise TissueBertError(f"--temperature must be > 0, got {temperature}")
    if sample is not None and store is None:
        raise TissueBertError("--sample needs --store")
    n_rows, n_reads = predict_sample(out, checkpoint=checkpoint, input_path=input, fmt=fmt, cpg_index=cpg_index,
                                     reference=reference, store_root=store, sample_id=sample,
                                     temperature=temperature, device=device, precision=precision,
                                     force=force)
    typer.echo(f"{n_reads} reads ({n_rows} unique) -> {out}")


def benchmark(
    checkpoint: CheckpointOpt,
    store: StoreOpt,
    out: OutDirOpt,
    truth: Annotated[Optional[Path], typer.Option("--truth", help="Simulated cohort folder (with truth/) for the oracle; default: found from the store's provenance.")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="Methods to compare (default: all: em, mean-posterior, argmax, logreg, uxm, nnls; oracle added on simulated data).")] = None,
    background: Annotated[Optional[list[str]], typer.Option("--background", help="Background tissue(s) of the spike-in series (default: every Blood* tissue).")] = None,
    replicates: Annotated[int, typer.Option("--replicates", help="Replicates per spike-in level.")] = 10,
    n_dirichlet: Annotated[int, typer.Option("--mixtures", help="Random sparse Dirichlet mixtures per depth.")] = 100,
    depth: Annotated[Optional[list[float]], typer.Option("--depth", help="Depths of the sweep, reads per window (repeatable; default 10, 30, 100).")] = None,
    spike_depth: Annotated[float, typer.Option("--spike-depth", help="Depth of the spike-in series.")] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the mixture design and read draws.")] = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """In-silico mixtures of held-out test reads (spike-in series into blood, random sparse mixtures,
    depth sweep); MAE, RMSE, Pearson r, bias, false-positive mass and limit of detection of every
    method; benchmark.json, estimates.tsv, plots and report.html.

    Example: tissuebert benchmark --checkpoint run/checkpoints/best_acc.pt --store store --out bench
    """
    from tissuebert.benchmark import run_benchmark
    from tissuebert.benchmark.design import DEPTHS

    require_at_least(replicates, 1, "--replicates")
    require_at_least(n_dirichlet, 0, "--mixtures")
    for value in (*(depth or ()), spike_depth):
        if not value > 0:
            raise TissueBertError(f"--depth / --spike-depth must be > 0 reads per window, got {value}")
    result = run_benchmark(checkpoint, store, out, methods=_split_methods(method, []) or None, truth_dir=truth,
                           background=background, replicates=replicates, n_dirichlet=n_dirichlet,
                           depths=tuple(depth) if depth else DEPTHS, spike_depth=spike_depth, seed=seed,
                           device=device, precision=precision, force=force)
    key = f"{spike_depth:g}x"
    for name, res in result["methods"].items():
        stats = res["per_depth"].get(key) or next(iter(res["per_depth"].values()))
        typer.echo(f"{name:>15}: MAE {stats['mae']:.4f}  RMSE {stats['rmse']:.4f}  r {stats['pearson_r']:.3f}")
    for note in result.get("notes", []):
        typer.echo(note)
    typer.echo(f"{result['n_mixtures']} mixtures -> {out}/report.html")


def register(app: typer.Typer) -> None:
    for command in (evaluate, calibrate, predict, deconvolve, benchmark):
        app.command()(command)

"""`tissuebert deconvolve`: tissue proportions of one sample or a cohort."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import (
    CpgIndexOpt,
    DeviceOpt,
    ForceOpt,
    FormatOpt,
    OutDirOpt,
    PrecisionOpt,
    ReferenceOpt,
    ThreadsOpt,
    parse_shard,
    require_at_least,
    set_threads,
    split_methods,
)
from tissuebert.deconvolve.methods import NEEDS, method_help, method_names
from tissuebert.errors import TissueBertError


def deconvolve(
    out: OutDirOpt,
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Sample files (.pat.gz, BAM, bedMethyl, .cov, .beta) or quoted globs ('mixtures/*.pat.gz'); a sample's id is its file name without the format suffix. With --format region-counts: one region-level count table (its column pairs are the samples) and --atlas the reference table.", show_default=False)] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help=f"Checkpoint .pt (needed by {', '.join(method_names(NEEDS.MODEL))}).")] = None,
    input: Annotated[Optional[list[Path]], typer.Option("--input", "-i", help="A sample file (repeatable; the same as a positional input).")] = None,
    samples: Annotated[Optional[Path], typer.Option("--samples", help="Sample sheet TSV with columns sample_id and path (format optional; a training sheet works).")] = None,
    fmt: FormatOpt = None,
    cpg_index: CpgIndexOpt = None,
    reference: ReferenceOpt = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="Store: its panel replaces --reference; its training split is the uxm/nnls reference and logreg's training data; with --sample, the reads.")] = None,
    sample: Annotated[Optional[list[str]], typer.Option("--sample", help="Use this store sample's reads (repeatable).")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help=f"{method_help()}; repeat or comma-separate.")] = None,
    atlas: Annotated[Optional[Path], typer.Option("--atlas", help="uxm: a published UXM atlas TSV (CpG-index markers) to score a .pat input against, or a BAM input with --cpg-index (the atlas genome's CpG.bed.gz).")] = None,
    bootstrap: Annotated[Optional[int], typer.Option("--bootstrap", help="Bootstrap resamples for the intervals (default: the checkpoint's eval.bootstrap; 0 = none).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Override the checkpoint's calibrated temperature.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    truth: Annotated[Optional[Path], typer.Option("--truth", help="Known composition (TSV: [mixture|sample] tissue proportion, e.g. simulate-mixture's truth.tsv): writes vs_truth.tsv (estimate beside truth, per method and a uniform guess) and prints each method's MAE.")] = None,
    no_posteriors: Annotated[bool, typer.Option("--no-posteriors", help="Skip the per-read posteriors (posteriors.tsv.gz, written by default).")] = False,
    _posteriors: Annotated[bool, typer.Option("--posteriors", hidden=True, help="The default (kept for old scripts).")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Only score shard i/N (0-based) of the cohort's unique rows and write it into --out, a folder the tasks share (one task of a SLURM array: slurm/deconvolve_array.sbatch); then fit with --from-shards.")] = None,
    from_shards: Annotated[Optional[Path], typer.Option("--from-shards", help="Take the model's scores from the folder the --shard i/N tasks wrote (every shard, of the same checkpoint and inputs) instead of scoring; writes what one process writes.")] = None,
    threads: ThreadsOpt = None,
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

    As a SLURM array (slurm/deconvolve_array.sbatch): each task runs the same command with --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT --out deconv.shards, then one dependent job runs it with --from-shards deconv.shards --out deconv.
    """
    from tissuebert.deconvolve.cohort import deconvolve_cohort
    from tissuebert.deconvolve.inputs import resolve_inputs
    from tissuebert.deconvolve.region_table import REGION_COUNTS

    set_threads(threads)
    methods = split_methods(method, ["em"])
    require_at_least(bootstrap, 0, "--bootstrap")
    if fmt == REGION_COUNTS:
        given = {"--checkpoint": checkpoint, "--samples": samples, "--cpg-index": cpg_index, "--reference": reference,
                 "--store": store, "--sample": sample, "--temperature": temperature, "--shard": shard,
                 "--from-shards": from_shards}
        _region_tables(out, [*(inputs or []), *(str(p) for p in input or [])], atlas, methods,
                       [flag for flag, value in given.items() if value], bootstrap, seed, force)
        return
    if temperature is not None and not temperature > 0:
        raise TissueBertError(f"--temperature must be > 0, got {temperature}")
    if sample and store is None:
        raise TissueBertError("--sample needs --store")
    specs = resolve_inputs([*(inputs or []), *(str(p) for p in input or [])], sheet=samples, store_samples=sample,
                           fmt=fmt)
    results = deconvolve_cohort(out, specs, checkpoint=checkpoint, methods=methods, cpg_index=cpg_index,
                                reference=reference, store_root=store, atlas=atlas, n_boot=bootstrap, seed=seed,
                                temperature=temperature, posteriors=not no_posteriors, device=device,
                                precision=precision, force=force, truth=truth, shard=parse_shard(shard),
                                from_shards=from_shards)
    if shard is not None:
        from tissuebert.deconvolve.shards import shard_path

        typer.echo(f"wrote {shard_path(out, *parse_shard(shard))} (gather every shard with --from-shards {out})")
        return
    if results is None:  # a torchrun rank other than 0: it scored its share, rank 0 writes
        return
    _echo_top(results, "reads", named=len(results) > 1)
    if truth is not None:
        _echo_truth(out)
    typer.echo(f"wrote {out}" + (f" ({len(results)} samples; cohort_proportions.tsv, cohort_matrix.tsv)"
                                 if len(results) > 1 else ""))


def _echo_truth(out: Path) -> None:
    """Each sample's methods against the truth, one line per sample (from run.json)."""
    import json

    from tissuebert.constants import OUT

    per_sample = json.loads((out / OUT.RUN_INFO).read_text())["truth"]["per_sample"]
    for sample_id, methods in per_sample.items():
        typer.echo(f"{sample_id} vs truth: " + ", ".join(f"{m} MAE {v['mae']:.4f}" for m, v in methods.items()))


def _echo_top(results: dict, unit: str, *, named: bool) -> None:
    """Each sample's and method's five largest proportions, one line each."""
    for sample_id, res in results.items():
        for r in res:
            order = r.proportions.argsort()[::-1][:5]
            top = ", ".join(f"{r.tissues[i]} {r.proportions[i]:.3f}" for i in order)
            typer.echo(f"{sample_id + ' ' if named else ''}{r.method}: {top}  ({r.n_reads} {unit})")


def _region_tables(out: Path, items: list[str], atlas: Optional[Path], methods: list[str], unused: list[str],
                   bootstrap: Optional[int], seed: int, force: bool) -> None:
    """``--format region-counts``: a sample count table against a reference count table."""
    from tissuebert.atomic import check_output
    from tissuebert.deconvolve.inputs import expand_inputs
    from tissuebert.deconvolve.region_table import (
        TABLE_METHODS,
        deconvolve_table,
        join_tables,
        read_region_counts,
        write_table_results,
    )

    if unused:
        raise TissueBertError(f"--format region-counts uses no {', '.join(unused)}: a count table is deconvolved "
                              "against the --atlas count table alone")
    wrong = [m for m in methods if m not in TABLE_METHODS]
    if wrong:
        raise TissueBertError(f"count tables support --method {', '.join(TABLE_METHODS)}, not {', '.join(wrong)}",
                              hint="the model and UXM need reads (fragments); a count table has only sums")
    paths = expand_inputs(items)
    if len(paths) != 1:
        raise TissueBertError(f"--format region-counts takes one count table (its column pairs are the samples), "
                              f"got {len(paths)} inputs")
    if atlas is None:
        raise TissueBertError("--format region-counts needs --atlas: the reference count table (chrom start end "
                              "<tissue>_meth <tissue>_depth ...)")
    check_output(out, force=force)
    sample_table, reference = read_region_counts(paths[0]), read_region_counts(atlas)
    joined = join_tables(sample_table, reference)
    n_boot = 200 if bootstrap is None else bootstrap
    results = deconvolve_table(joined, methods, n_boot=n_boot, seed=seed)
    info = {"format": "region-counts", "input": str(paths[0]), "atlas": str(atlas), "methods": methods,
            "bootstrap": n_boot, "regions_used": int(joined.beta.shape[0])}
    write_table_results(out, results, info, force=force)
    _echo_top(results, "calls", named=True)
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command()(deconvolve)

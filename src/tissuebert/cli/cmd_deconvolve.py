"""`tissuebert deconvolve`: tissue proportions of one sample or a cohort."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import (
    CpgIndexOpt, DeviceOpt, ForceOpt, FormatOpt, OutDirOpt, PrecisionOpt, ReferenceOpt, require_at_least, split_methods,
)
from tissuebert.errors import TissueBertError


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

    methods = split_methods(method, ["em"])
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


def register(app: typer.Typer) -> None:
    app.command()(deconvolve)

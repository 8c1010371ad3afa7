"""`tissuebert predict`: per-read tissue posteriors of one sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import (
    CheckpointOpt, CpgIndexOpt, DeviceOpt, ForceOpt, FormatOpt, InputOpt, PrecisionOpt, ReferenceOpt, SampleOpt,
    ThreadsOpt, set_threads,
)
from tissuebert.errors import TissueBertError


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
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Per-read tissue posteriors of one sample (identical reads collapsed, with their count) to a
    gzipped TSV: window, count, one column per tissue, call.

    Example: tissuebert predict --checkpoint run/checkpoints/best_acc.pt --input sample.pat.gz --cpg-index CpG.bed.gz --reference genome.fa --out sample.posteriors.tsv.gz
    """
    from tissuebert.deconvolve.sample import predict_sample

    set_threads(threads)
    if temperature is not None and not temperature > 0:
        raise TissueBertError(f"--temperature must be > 0, got {temperature}")
    if sample is not None and store is None:
        raise TissueBertError("--sample needs --store")
    n_rows, n_reads = predict_sample(out, checkpoint=checkpoint, input_path=input, fmt=fmt, cpg_index=cpg_index,
                                     reference=reference, store_root=store, sample_id=sample,
                                     temperature=temperature, device=device, precision=precision,
                                     force=force)
    typer.echo(f"{n_reads} reads ({n_rows} unique) -> {out}")


def register(app: typer.Typer) -> None:
    app.command()(predict)

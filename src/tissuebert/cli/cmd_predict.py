"""`tissuebert predict`: per-read tissue posteriors of one sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import (
    CheckpointOpt,
    CpgIndexOpt,
    DeviceOpt,
    ForceOpt,
    FormatOpt,
    InputOpt,
    PrecisionOpt,
    ReferenceOpt,
    SampleOpt,
    ThreadsOpt,
    set_threads,
)
from tissuebert.errors import TissueBertError


def predict(
    checkpoint: CheckpointOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Per-read posteriors file (ending in .tsv.gz), or an existing folder (then FOLDER/<sample>.posteriors.tsv.gz).")],
    input: InputOpt = None,
    fmt: FormatOpt = None,
    cpg_index: CpgIndexOpt = None,
    reference: ReferenceOpt = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="Store whose panel replaces --reference; with --sample, the reads.")] = None,
    sample: SampleOpt = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Override the checkpoint's calibrated temperature.")] = None,
    read_names: Annotated[bool, typer.Option("--read-names", help="BAM input: add a last column read_names, the names of the reads collapsed into each row (comma-joined, file order; a pair's template name once). A .pat or count file has no read names: refused.")] = False,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Per-read tissue posteriors of one sample (identical reads collapsed, with their count) to a
    gzipped TSV: window, chrom, start, end, cpg_start, pattern, count, one column per tissue, call
    (and read_names with --read-names; docs/deconvolution.md).

    Example: tissuebert predict --checkpoint run/checkpoints/best_acc.pt --input sample.pat.gz --cpg-index CpG.bed.gz --reference genome.fa --out sample.posteriors.tsv.gz
    """
    from tissuebert.deconvolve.sample import predict_sample

    set_threads(threads)
    if temperature is not None and not temperature > 0:
        raise TissueBertError(f"--temperature must be > 0, got {temperature}")
    if sample is not None and store is None:
        raise TissueBertError("--sample needs --store")
    out = _posteriors_path(out, input, sample)
    n_rows, n_reads = predict_sample(out, checkpoint=checkpoint, input_path=input, fmt=fmt, cpg_index=cpg_index,
                                     reference=reference, store_root=store, sample_id=sample,
                                     temperature=temperature, device=device, precision=precision,
                                     force=force, read_names=read_names)
    typer.echo(f"{n_reads} reads ({n_rows} unique) -> {out}")


def _posteriors_path(out: Path, input: Path | None, sample: str | None) -> Path:
    """--out as a file ending in .tsv.gz, or an existing folder that gets <sample>.posteriors.tsv.gz."""
    from tissuebert.io.formats import sample_id_from_path

    if out.is_dir():
        name = sample if sample is not None else sample_id_from_path(input) if input is not None else "sample"
        return out / f"{name}.posteriors.tsv.gz"
    if not out.name.endswith(".tsv.gz"):
        raise TissueBertError(f"--out {out}: the posteriors are a gzipped TSV; name the file *.tsv.gz "
                              "or give an existing folder")
    return out


def register(app: typer.Typer) -> None:
    app.command()(predict)

"""Argument helpers shared by the subcommands (config, --force, checkpoint / store / input options)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.config import PRESETS
from tissuebert.errors import TissueBertError
from tissuebert.io.formats import INPUT_FORMATS

PresetOpt = Annotated[str, typer.Option("--preset", help=f"Config preset: {', '.join(PRESETS)}.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML config file (sections data, model, train, eval).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override one key, e.g. --set train.epochs=3 (repeatable).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory.")]

# the commands that run a checkpoint: evaluate, calibrate, predict, deconvolve, benchmark
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
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads of the model's arithmetic (torch intra-op threads); default: torch's default (one per core).")]
SampleOpt = Annotated[Optional[str], typer.Option("--sample", help="Use this store sample's reads instead of --input.")]


def require_at_least(value: int | float | None, minimum: int | float, flag: str) -> None:
    """Refuse a numeric option below ``minimum`` (None = not given), naming the flag."""
    if value is not None and value < minimum:
        raise TissueBertError(f"{flag} must be >= {minimum}, got {value}")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard i/N`` -> (i, N); None when not given."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise TissueBertError(f"--shard must look like i/N (e.g. 0/8), got {text!r}") from None
    return i, n


def split_methods(methods: list[str] | None, default: list[str]) -> list[str]:
    """``--method a,b --method c`` -> [a, b, c]; ``default`` when none is given."""
    out: list[str] = []
    for item in methods or default:
        out += [m.strip() for m in item.split(",") if m.strip()]
    return out


def set_threads(threads: int | None) -> None:
    """``--threads N``: torch's intra-op CPU threads for the rest of the process (None = leave as is)."""
    require_at_least(threads, 1, "--threads")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

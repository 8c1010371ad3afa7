"""`tissuebert prepare`, `validate` and `inspect`: input files -> store, and checks of a store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import ForceOpt, parse_shard, require_at_least
from tissuebert.constants import WINDOW_BP
from tissuebert.errors import TissueBertError

SamplesOpt = Annotated[Path, typer.Option("--samples", help="Sample sheet TSV: sample_id, tissue, split, path, format [, donor].")]


def prepare(
    samples: SamplesOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Store directory to create.")],
    reference: Annotated[Optional[Path], typer.Option("--reference", help="Reference FASTA (+ .fai); required unless --assemble.")] = None,
    regions: Annotated[Optional[Path], typer.Option("--regions", help="Region BED (0-based, half-open); each region is cut into 150 bp windows; required unless --assemble.")] = None,
    cpg_index: Annotated[Optional[Path], typer.Option("--cpg-index", help="wgbs_tools CpG.bed.gz (chr loc index); required for .pat/.beta inputs.")] = None,
    tissue_map: Annotated[Optional[Path], typer.Option("--tissue-map", help="TSV 'label<TAB>class' collapsing sheet labels into training classes.")] = None,
    window: Annotated[int, typer.Option("--window", help="Window length in bp (fixed by the model: 150).")] = WINDOW_BP,
    min_cpgs: Annotated[int, typer.Option("--min-cpgs", help="A read enters a window only with at least this many CpG calls there.")] = 1,
    max_reads_per_window: Annotated[Optional[int], typer.Option("--max-reads-per-window", help="Keep a random subset of at most this many reads per window and sample.")] = None,
    min_mapq: Annotated[int, typer.Option("--min-mapq", help="BAM inputs: minimum mapping quality.")] = 10,
    keep_duplicates: Annotated[bool, typer.Option("--keep-duplicates", help="BAM inputs: keep reads flagged as PCR/optical duplicates.")] = False,
    mod_threshold: Annotated[float, typer.Option("--mod-threshold", help="MM/ML BAMs: P(5mC) >= t is methylated, <= 1-t unmethylated.")] = 0.5,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Prepare only samples i, i+N, ... of the sheet (i/N, 0-based), e.g. in a SLURM array.")] = None,
    assemble: Annotated[bool, typer.Option("--assemble", help="Only write the manifest of a store filled by --shard runs.")] = False,
    threads: Annotated[int, typer.Option("--threads", help="Samples prepared in parallel (processes).")] = 1,
    skip_bad_samples: Annotated[bool, typer.Option("--skip-bad-samples", help="Leave out samples whose file is bad and list them, instead of stopping.")] = False,
    force: ForceOpt = False,
) -> None:
    """Read the sample sheet's files into a store (panel + per-sample reads + manifest).

    Example: tissuebert prepare --samples samples.tsv --reference genome.fa --regions regions.bed --cpg-index CpG.bed.gz --out store
    """
    from tissuebert.prepare import ReadFilters, assemble_store, prepare_store, skipped_samples

    require_at_least(threads, 1, "--threads")
    require_at_least(min_cpgs, 1, "--min-cpgs")
    require_at_least(max_reads_per_window, 1, "--max-reads-per-window")
    require_at_least(min_mapq, 0, "--min-mapq")
    if assemble:
        root = assemble_store(out, samples, tissue_map=tissue_map)
    else:
        if reference is None or regions is None:
            raise TissueBertError("prepare needs --reference and --regions (or --assemble)",
                                  hint="every format needs the FASTA: a bwa-meth BAM's MD tags cannot replace it "
                                       "(docs/input_formats.md)")
        if window != WINDOW_BP:
            raise TissueBertError(f"--window {window}: the model's windows are {WINDOW_BP} bp; other sizes are not supported")
        if not 0.5 <= mod_threshold <= 1.0:
            raise TissueBertError(f"--mod-threshold must be in [0.5, 1], got {mod_threshold}")
        filters = ReadFilters(min_mapq=min_mapq, drop_duplicates=not keep_duplicates, mod_threshold=mod_threshold)
        root = prepare_store(samples, reference, regions, out, cpg_index=cpg_index, tissue_map=tissue_map,
                             min_cpgs=min_cpgs, max_reads_per_window=max_reads_per_window, shard=parse_shard(shard),
                             threads=threads, force=force, skip_bad_samples=skip_bad_samples, filters=filters)
    skipped = skipped_samples(root)
    for sample_id, error in skipped.items():
        typer.echo(f"skipped {sample_id}: {error}", err=True)
    if (root / "manifest.json").exists():
        typer.echo(f"store ready: {root}" + (f" ({len(skipped)} sample(s) skipped)" if skipped else ""))
    else:
        typer.echo(f"shard done: {root} (manifest written when every shard has finished, or run --assemble)")


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the same facts as one JSON object on stdout.")]


def validate(
    store: Annotated[Path, typer.Argument(help="Store directory.")],
    no_checksums: Annotated[bool, typer.Option("--no-checksums", help="Skip the sha256 check of every file (faster).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a store: schema, shapes, dtypes, label ranges and checksums.

    Example: tissuebert validate store --json
    """
    from tissuebert.store.validate import validate_store

    try:
        manifest, panel = validate_store(store, verify_checksums=not no_checksums)
    except TissueBertError as exc:
        if as_json:  # a script reads the verdict on stdout; the message also goes to stderr, exit 2
            typer.echo(json.dumps({"ok": False, "store": str(store), "error": " ".join(str(exc).split())}))
        raise
    n_reads = sum(s.n_reads for s in manifest.samples)
    if as_json:
        typer.echo(json.dumps({"ok": True, "store": str(store), "n_samples": len(manifest.samples),
                               "n_tissues": len(manifest.tissues), "tissues": list(manifest.tissues),
                               "n_windows": int(panel.n_windows), "n_reads": int(n_reads),
                               "panel_hash": manifest.panel_hash, "checksums_verified": not no_checksums}, indent=2))
        return
    typer.echo(f"store OK: {len(manifest.samples)} samples, {len(manifest.tissues)} tissues, "
               f"{panel.n_windows} windows, {n_reads} reads, panel {manifest.panel_hash}")


def inspect(
    store: Annotated[Path, typer.Argument(help="Store directory.")],
    as_json: JsonOpt = False,
) -> None:
    """Summarise a store: samples per tissue and split, reads per window and sample, CpGs per read.

    Example: tissuebert inspect store
    """
    from tissuebert.prepare.inspect import inspect_facts, render_facts

    facts = inspect_facts(store)
    typer.echo(json.dumps(facts, indent=2) if as_json else render_facts(facts), nl=as_json)


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare)
    app.command("validate")(validate)
    app.command("inspect")(inspect)

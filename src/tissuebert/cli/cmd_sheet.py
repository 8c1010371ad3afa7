"""`tissuebert sheet`: a sample sheet from downloaded files, labelled from GEO and split by donor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import ForceOpt
from tissuebert.errors import TissueBertError


def _fractions(text: str) -> tuple[float, float, float]:
    parts = text.replace(",", ":").split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 0 or values[0] <= 0 or values[1] <= 0:
        raise TissueBertError(f"--split must be three numbers train:val:test (train and val > 0), got {text!r}")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def sheet(
    files: Annotated[list[str], typer.Argument(help="Sample files (.pat.gz, .beta, ...) or quoted globs ('pat/GSM*.pat.gz').", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Sample sheet to write (TSV: sample_id tissue split path format donor).")],
    series_matrix: Annotated[Optional[Path], typer.Option("--series-matrix", help="GEO GSExxx_series_matrix.txt(.gz): labels and donors per GSM accession (files named GSM..._*).")] = None,
    annotation: Annotated[Optional[Path], typer.Option("--annotation", help="Instead of --series-matrix: TSV 'sample<TAB>label[<TAB>donor]', sample = GSM accession or file name without suffix.")] = None,
    label_field: Annotated[str, typer.Option("--label-field", help="Series-matrix field holding the cell type: title, source_name, or a characteristic's key.")] = "title",
    donor_field: Annotated[Optional[str], typer.Option("--donor-field", help="Series-matrix characteristic holding the donor (e.g. 'donor', 'individual'); without it samples are split one by one.")] = None,
    label_pattern: Annotated[Optional[str], typer.Option("--label-pattern", help="Regex taking the label out of the label field (or, without an annotation, the file name): group 'label' or 1.")] = None,
    tissue_map: Annotated[Optional[Path], typer.Option("--tissue-map", help="Stratify the split by the mapped classes (TSV or a shipped name: atlas22); the sheet keeps the original labels.")] = None,
    split: Annotated[str, typer.Option("--split", help="Target shares train:val:test (the design's 455:135:175).")] = "455:135:175",
    fmt: Annotated[Optional[str], typer.Option("--format", help="Format of every file (default: from the suffix; BAMs need bismark, bwameth or mmml).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Order of equal-sized donors; the same seed gives the same sheet.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Build a sample sheet: one row per file, labels and donors from GEO, a donor-aware split.

    Every donor's samples stay in one split; each class gets its share of train/val/test, and a
    class with two donors gets one in train and one in val. Prints samples per class and split.

    Example: tissuebert sheet 'pat/GSM*.hg38.pat.gz' --series-matrix GSE186458_series_matrix.txt.gz --donor-field donor --label-pattern '^(.+)-Z[0-9A-Z]+$' --tissue-map atlas22 --out samples.tsv
    """
    from tissuebert.atomic import atomic_path, check_output
    from tissuebert.deconvolve.inputs import expand_inputs
    from tissuebert.io.formats import INPUT_FORMATS
    from tissuebert.io.sheet import read_sheet, read_tissue_map, shipped_file
    from tissuebert.prepare.sheet_make import make_sheet, read_annotation, read_series_matrix, sheet_text, split_table
    from tissuebert.progress import get_logger

    if series_matrix is not None and annotation is not None:
        raise TissueBertError("give --series-matrix or --annotation, not both")
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise TissueBertError(f"--format must be one of {', '.join(INPUT_FORMATS)}, got {fmt!r}")
    fractions = _fractions(split)
    check_output(out, force=force)
    mapping = read_tissue_map(tissue_map) if tissue_map is not None else None
    if series_matrix is not None:
        annotations = read_series_matrix(series_matrix, label_field, donor_field)
    elif annotation is not None:
        annotations = read_annotation(annotation)
    else:
        annotations = None
    entries = make_sheet(expand_inputs(files), out, annotations=annotations, label_pattern=label_pattern,
                         tissue_map=mapping, fmt=fmt, fractions=fractions, seed=seed)
    with atomic_path(out) as tmp:
        tmp.write_text(sheet_text(entries))
        # the same reader as prepare: a sheet that prepare would refuse is never written
        read_sheet(tmp, mapping, map_path=shipped_file(tissue_map) if tissue_map is not None else None)
    table = split_table(entries, mapping)
    typer.echo("class\ttrain\tval\ttest\tdonors")
    for row in table:
        typer.echo("\t".join(str(v) for v in row))
    missing = [r[0] for r in table if r[1] == 0 or r[2] == 0]
    if missing:
        get_logger("sheet").warning("no training or no validation sample for %s: move donors by hand, or `train` "
                                    "refuses these classes", ", ".join(missing))
    typer.echo(f"sample sheet written: {out} ({len(entries)} samples)")


def register(app: typer.Typer) -> None:
    app.command("sheet")(sheet)

"""Build a sample sheet from downloaded files (`tissuebert sheet`).

Labels and donors come from GEO's series matrix (the ``!Sample_*`` rows every GEO series ships as
``GSExxx_series_matrix.txt.gz``) or from a plain annotation TSV; the split keeps every donor in one
split (reads of one person must not leak between training and test) while giving each class its
share of training, validation and test samples.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tissuebert.constants import SPLITS
from tissuebert.errors import InputFormatError, TissueBertError, require_file
from tissuebert.io.formats import infer_format, sample_id_from_path
from tissuebert.io.text import open_text
from tissuebert.progress import get_logger

log = get_logger("sheet")

# GEO names supplementary files "GSM<digits>_<submitter's name>"; the accession keys the annotation
_GSM = re.compile(r"^(GSM\d+)(?:[_.-]|$)")
# the design's 455 / 135 / 175 of 765 samples
DEFAULT_FRACTIONS = (455 / 765, 135 / 765, 175 / 765)
# bonus for a split that has no sample of a class yet: training first, then validation, then test,
# so a class with two donors gets one of each in train and val (`train` refuses a class without)
_EMPTY_BONUS = {"train": 3.0, "val": 2.0, "test": 1.0}


@dataclass(frozen=True)
class Annotation:
    label: str
    donor: str  # "" when unknown


@dataclass(frozen=True)
class SheetEntry:
    sample_id: str
    label: str
    split: str
    path: Path
    format: str
    donor: str


def sample_key(path: Path) -> str:
    """The GSM accession of a GEO file name, else the name without its format ending."""
    hit = _GSM.match(path.name)
    return hit.group(1) if hit else sample_id_from_path(path)


def read_annotation(path: str | Path) -> dict[str, Annotation]:
    """TSV ``sample<TAB>label[<TAB>donor]`` (sample: the GSM accession or the file name's key); a
    first line whose first cell is sample / sample_id / gsm / id is a header."""
    path = require_file(path, "annotation")
    out: dict[str, Annotation] = {}
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            cols = [c.strip() for c in line.rstrip("\n\r").split("\t")]
            if line_no == 1 and cols[0].lower() in ("sample", "sample_id", "gsm", "id"):
                continue
            if len(cols) < 2 or not cols[0] or not cols[1]:
                raise InputFormatError("an annotation line needs 'sample<TAB>label[<TAB>donor]'", path=path, line=line_no)
            if cols[0] in out:
                raise InputFormatError(f"sample {cols[0]!r} annotated twice", path=path, line=line_no)
            out[cols[0]] = Annotation(cols[1], cols[2] if len(cols) > 2 else "")
    if not out:
        raise InputFormatError("annotation lists no sample", path=path)
    return out


def _matrix_cells(line: str) -> list[str]:
    return [c.strip().strip('"').strip() for c in line.rstrip("\n\r").split("\t")[1:]]


def read_series_matrix(path: str | Path, label_field: str, donor_field: str | None) -> dict[str, Annotation]:
    """Labels and donors per GSM from a GEO series matrix.

    ``label_field`` / ``donor_field``: ``title``, ``source_name``, or the key of a
    ``!Sample_characteristics_ch1`` cell ("cell type: Liver-Hep" -> key ``cell type``). GEO writes
    each sample's characteristics in its own order, so every characteristics row is read cell by
    cell, not by the first sample's keys.
    """
    path = require_file(path, "series matrix")
    accessions: list[str] | None = None
    plain: dict[str, list[str]] = {}
    traits: list[dict[str, str]] = []
    with open_text(path) as fh:
        for line in fh:
            if line.startswith("!series_matrix_table_begin"):
                break
            tag = line.split("\t", 1)[0]
            if tag == "!Sample_geo_accession":
                accessions = _matrix_cells(line)
                traits = traits or [{} for _ in accessions]
            elif tag in ("!Sample_title", "!Sample_source_name_ch1"):
                plain[tag.removeprefix("!Sample_").removesuffix("_ch1")] = _matrix_cells(line)
            elif tag == "!Sample_characteristics_ch1":
                cells = _matrix_cells(line)
                traits = traits or [{} for _ in cells]
                for k, cell in enumerate(cells[: len(traits)]):
                    key, sep, value = cell.partition(":")
                    if sep and value.strip():
                        traits[k][key.strip().lower()] = value.strip()
    if not accessions:
        raise InputFormatError("no '!Sample_geo_accession' row: not a GEO series matrix", path=path,
                               hint="download GSExxx_series_matrix.txt.gz from the series page, or pass --annotation")

    def column(field: str) -> list[str]:
        if field in plain:
            return plain[field]
        values = [t.get(field.lower(), "") for t in traits]
        if not any(values):
            keys = sorted({k for t in traits for k in t})
            raise InputFormatError(f"no sample field {field!r}", path=path,
                                   hint=f"fields here: title, source_name, {', '.join(keys) or '(no characteristics)'}")
        return values

    labels = column(label_field)
    donors = column(donor_field) if donor_field else [""] * len(accessions)
    return {gsm: Annotation(label, donor) for gsm, label, donor in zip(accessions, labels, donors)}


def assign_splits(groups: dict[str, Counter], fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
                  seed: int = 0) -> dict[str, str]:
    """Donor (group) -> split, every donor whole, each class near its share in every split.

    Greedy, largest donors first (ties in a seeded random order): a donor goes to the split whose
    classes most lack samples relative to their target, each class's shortfall divided by its size
    so rare classes count as much as common ones; a split still without a class gets a bonus
    (train first, then val, then test).
    """
    totals: Counter = Counter()
    for counts in groups.values():
        totals.update(counts)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    names.sort(key=lambda g: -sum(groups[g].values()))  # stable: ties keep the shuffled order
    have = {s: Counter() for s in SPLITS}
    n_split = Counter()
    n_all = sum(totals.values())
    out: dict[str, str] = {}
    for group in names:
        counts = groups[group]

        def score(s: int) -> tuple[float, float]:
            split = SPLITS[s]
            need = sum(c * (fractions[s] * totals[k] - have[split][k]) / totals[k] for k, c in counts.items())
            need += sum(_EMPTY_BONUS[split] for k in counts if have[split][k] == 0 and fractions[s] > 0)
            return need, fractions[s] * n_all - n_split[split]

        best = SPLITS[max(range(len(SPLITS)), key=score)]
        out[group] = best
        have[best].update(counts)
        n_split[best] += sum(counts.values())
    return out


def make_sheet(files: list[Path], out: Path, *, annotations: dict[str, Annotation] | None,
               label_pattern: str | None = None, tissue_map: dict[str, str] | None = None,
               fmt: str | None = None, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
               seed: int = 0) -> list[SheetEntry]:
    """One sheet row per file, labelled and split. Classes (after ``tissue_map``) drive the
    stratification; the sheet keeps the original labels (`prepare --tissue-map` maps them)."""
    if not files:
        raise TissueBertError("no input files (give paths or a quoted glob)")
    pattern = re.compile(label_pattern) if label_pattern else None
    rows: list[tuple[str, str, Path, str, str]] = []
    seen: dict[str, Path] = {}
    for path in sorted(set(files)):
        path = require_file(path, "sample file")
        key = sample_key(path)
        if key in seen:
            raise TissueBertError(f"two files share the sample key {key!r}: {seen[key]} and {path}",
                                  hint="keep one file per sample")
        seen[key] = path
        ann = (annotations or {}).get(key)
        if annotations is not None and ann is None:
            raise TissueBertError(f"sample {key!r} is not in the annotation", path=path,
                                  hint="annotate it, or leave the file out")
        label = ann.label if ann else path.name  # without an annotation the file name carries the label
        if pattern:
            hit = pattern.search(label)
            if not hit:
                raise TissueBertError(f"--label-pattern {label_pattern!r} does not match {label!r}", path=path)
            label = hit.group("label") if "label" in pattern.groupindex else hit.group(1) if pattern.groups else hit.group(0)
        elif annotations is None:
            raise TissueBertError("without --annotation or --series-matrix the label must come from the file name",
                                  path=path, hint="pass --label-pattern, e.g. '^(?:GSM\\d+_)?(.+)-Z[0-9A-Z]+' for the atlas")
        if tissue_map is not None and label not in tissue_map:
            raise TissueBertError(f"label {label!r} is not in the tissue map", path=path,
                                  hint="add it to the map or fix --label-field / --label-pattern")
        rows.append((key, label, path, fmt or infer_format(path), ann.donor if ann else ""))
    if not any(donor for *_, donor in rows):
        log.warning("no donor information: samples are split one by one, so a person's samples may land in "
                    "different splits (give --donor-field or a donor column)")
    groups: dict[str, Counter] = defaultdict(Counter)
    for key, label, _path, _fmt, donor in rows:
        groups[donor or f"sample:{key}"][tissue_map[label] if tissue_map else label] += 1
    split_of = assign_splits(dict(groups), fractions, seed)
    base = out.resolve().parent
    return [SheetEntry(key, label, split_of[donor or f"sample:{key}"], _sheet_path(path, base), file_fmt, donor)
            for key, label, path, file_fmt, donor in rows]


def _sheet_path(path: Path, base: Path) -> Path:
    """Relative to the sheet's folder when the file lies under it (the sheet moves with the data),
    else absolute (`read_sheet` resolves relative paths against the sheet's folder)."""
    path = path.resolve()
    return path.relative_to(base) if path.is_relative_to(base) else path


def sheet_text(entries: list[SheetEntry]) -> str:
    lines = ["sample_id\ttissue\tsplit\tpath\tformat\tdonor"]
    lines += [f"{e.sample_id}\t{e.label}\t{e.split}\t{e.path}\t{e.format}\t{e.donor}" for e in entries]
    return "\n".join(lines) + "\n"


def split_table(entries: list[SheetEntry], tissue_map: dict[str, str] | None) -> list[tuple[str, int, int, int, int]]:
    """(class, train, val, test, donors) per class: what the split gave each class."""
    counts: dict[str, Counter] = defaultdict(Counter)
    donors: dict[str, set] = defaultdict(set)
    for e in entries:
        cls = tissue_map[e.label] if tissue_map else e.label
        counts[cls][e.split] += 1
        donors[cls].add(e.donor or e.sample_id)
    return [(cls, c["train"], c["val"], c["test"], len(donors[cls])) for cls, c in sorted(counts.items())]

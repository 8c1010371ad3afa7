"""Sample sheet (TSV: sample_id, tissue, split, path, format [, donor]) and tissue map."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tissuebert.constants import SHEET_COLUMNS, SHEET_OPTIONAL, SPLITS
from tissuebert.errors import InputFormatError, require_file
from tissuebert.io.formats import INPUT_FORMATS

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class SheetRow:
    sample_id: str
    tissue: str  # training class (after the tissue map)
    original_label: str  # the sheet's label
    split: str
    path: Path  # resolved against the sheet's folder
    format: str
    donor: str
    line: int


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    lines = [(i, ln.rstrip("\n\r")) for i, ln in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1)]
    lines = [(i, ln) for i, ln in lines if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise InputFormatError("file is empty", path=path)
    header = [c.strip() for c in lines[0][1].split("\t")]
    return header, [(i, [c.strip() for c in ln.split("\t")]) for i, ln in lines[1:]]


# Files shipped with the package, selected by name (``--tissue-map atlas22``): tissue_maps/NAME.tsv
# (labels -> classes) and tissue_maps/NAME.groups.tsv (the classes' hierarchy, for `markers --groups`).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "tissue_maps"
_SHIPPED_SUFFIX = {"map": ".tsv", "groups": ".groups.tsv"}


def shipped_names() -> list[str]:
    return sorted(p.name[: -len(".groups.tsv")] for p in SHIPPED_DIR.glob("*.groups.tsv"))


def shipped_file(path: str | Path, kind: str = "map") -> Path:
    """``path`` itself when it is a file, else the shipped file of that name (e.g. ``atlas22``)."""
    path = Path(path)
    if path.is_file():
        return path
    cand = SHIPPED_DIR / f"{path.name}{_SHIPPED_SUFFIX[kind]}"
    if len(path.parts) == 1 and cand.is_file():
        return cand
    what = "tissue map" if kind == "map" else "groups file"
    return require_file(path, f"{what} (neither a file nor a shipped name: {', '.join(shipped_names())})")


def read_tissue_map(path: str | Path) -> dict[str, str]:
    """Two tab-separated columns ``label  class`` (an optional header ``label  class``); a shipped
    map is selected by name (``atlas22``)."""
    path = shipped_file(path, "map")
    header, rows = _rows(path)
    mapping: dict[str, str] = {}
    if [h.lower() for h in header[:2]] != ["label", "class"]:
        rows = [(1, header)] + rows
    for line_no, cols in rows:
        if len(cols) < 2 or not cols[0] or not cols[1]:
            raise InputFormatError("a tissue map line needs 'label<TAB>class'", path=path, line=line_no)
        if cols[0] in mapping and mapping[cols[0]] != cols[1]:
            raise InputFormatError(f"label {cols[0]!r} mapped twice ({mapping[cols[0]]!r} and {cols[1]!r})",
                                   path=path, line=line_no)
        mapping[cols[0]] = cols[1]
    return mapping


def read_sheet(path: str | Path, tissue_map: dict[str, str] | None = None, *,
               map_path: str | Path | None = None) -> list[SheetRow]:
    """Parse and check a sample sheet: columns, unique ids, splits, formats, labels, donors.

    Input files are not opened here; ``prepare`` checks each when it reads it.
    """
    path = require_file(path, "sample sheet")
    header, rows = _rows(path)
    missing = [c for c in SHEET_COLUMNS if c not in header]
    if missing:
        raise InputFormatError(f"sample sheet lacks column(s) {', '.join(missing)}", path=path, line=1,
                               hint=f"the header must be tab-separated: {'  '.join(SHEET_COLUMNS)} [donor]")
    col = {name: header.index(name) for name in (*SHEET_COLUMNS, *SHEET_OPTIONAL) if name in header}
    out: list[SheetRow] = []
    seen: dict[str, int] = {}
    donor_split: dict[str, tuple[str, int]] = {}
    for line_no, cols in rows:
        if len(cols) < len(header):
            cols = cols + [""] * (len(header) - len(cols))
        get = {name: cols[i] for name, i in col.items()}
        sid = get["sample_id"]
        if not _SAFE_ID.match(sid):
            raise InputFormatError(f"sample_id {sid!r} must be letters, digits and . _ + - (it names files)",
                                   path=path, line=line_no)
        if sid in seen:
            raise InputFormatError(f"duplicate sample_id {sid!r} (first on line {seen[sid]})", path=path, line=line_no,
                                   hint="every sample needs its own id")
        seen[sid] = line_no
        if get["split"] not in SPLITS:
            raise InputFormatError(f"split {get['split']!r} of {sid!r} is not one of {', '.join(SPLITS)}", path=path,
                                   line=line_no)
        fmt = get["format"].lower()
        if fmt not in INPUT_FORMATS:
            raise InputFormatError(f"format {get['format']!r} of {sid!r} is not one of {', '.join(INPUT_FORMATS)}",
                                   path=path, line=line_no)
        label = get["tissue"]
        if not label:
            raise InputFormatError(f"sample {sid!r} has no tissue", path=path, line=line_no)
        tissue = label
        if tissue_map is not None:
            if label not in tissue_map:
                raise InputFormatError(f"unknown tissue {label!r} of {sid!r}: not in the tissue map {map_path or ''}".rstrip(),
                                       path=path, line=line_no, hint="add it to the tissue map or fix the label")
            tissue = tissue_map[label]
        if not get["path"]:
            raise InputFormatError(f"sample {sid!r} has no path", path=path, line=line_no)
        donor = get.get("donor", "")
        if donor:
            if donor in donor_split and donor_split[donor][0] != get["split"]:
                first_split, first_line = donor_split[donor]
                raise InputFormatError(f"donor {donor!r} is in split {first_split!r} (line {first_line}) and {get['split']!r}",
                                       path=path, line=line_no,
                                       hint="keep all samples of a donor in one split, or reads of one person leak across splits")
            donor_split.setdefault(donor, (get["split"], line_no))
        out.append(SheetRow(sid, tissue, label, get["split"], (path.parent / get["path"]).resolve(), fmt, donor, line_no))
    if not out:
        raise InputFormatError("sample sheet lists no samples", path=path)
    return out


def tissue_list(rows: list[SheetRow]) -> list[str]:
    """The store's tissues: sorted unique training classes."""
    return sorted({r.tissue for r in rows})

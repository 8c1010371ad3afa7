"""Which samples a `tissuebert deconvolve` run covers: positional paths or globs, repeated
``--input``, a sample sheet, and store samples (``--store STORE --sample ID``), each with a
unique sample id (the file name without its format suffix, or the sheet's ``sample_id``)."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from tissuebert.errors import InputFormatError, TissueBertError, require_file
from tissuebert.io.formats import INPUT_FORMATS, sample_id_from_path

_GLOB_CHARS = re.compile(r"[*?\[]")
SHEET_REQUIRED = ("sample_id", "path")


@dataclass(frozen=True)
class InputSpec:
    """One sample of the cohort: a file (``path``, ``fmt``) or a store sample (``store_sample``)."""

    sample_id: str
    path: Path | None = None
    fmt: str | None = None
    store_sample: str | None = None

    @property
    def source(self) -> str:
        return str(self.path) if self.path is not None else f"store:{self.store_sample}"


def expand_inputs(items: list[str]) -> list[Path]:
    """Paths as given; an item with glob characters that is not itself a file is expanded (sorted)."""
    out: list[Path] = []
    for item in items:
        if _GLOB_CHARS.search(item) and not Path(item).exists():
            matches = sorted(glob.glob(item))
            if not matches:
                raise TissueBertError(f"the pattern {item!r} matches no file", hint="quote a glob so that "
                                      "tissuebert expands it, or check the folder")
            out += [Path(m) for m in matches]
        else:
            out.append(Path(item))
    return out


def read_input_sheet(path: Path) -> list[InputSpec]:
    """A TSV with columns ``sample_id`` and ``path`` (and optionally ``format``); other columns,
    as in a training sample sheet, are ignored. Relative paths are resolved against the sheet's folder."""
    path = require_file(path, "sample sheet")
    lines = [(i, ln.rstrip("\r")) for i, ln in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), start=1)]
    lines = [(i, ln) for i, ln in lines if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise InputFormatError("the sample sheet is empty", path=path)
    header = [c.strip() for c in lines[0][1].split("\t")]
    missing = [c for c in SHEET_REQUIRED if c not in header]
    if missing:
        raise InputFormatError(f"the sample sheet lacks column(s) {', '.join(missing)} (tab-separated header "
                               f"needs sample_id and path; format is optional)", path=path, line=lines[0][0])
    out = []
    for line_no, text in lines[1:]:
        row = dict(zip(header, (c.strip() for c in text.split("\t"))))
        if not row.get("sample_id") or not row.get("path"):
            raise InputFormatError("a row needs a sample_id and a path", path=path, line=line_no)
        fmt = row.get("format") or None
        if fmt is not None and fmt not in INPUT_FORMATS:
            raise InputFormatError(f"unknown format {fmt!r}; choose one of {', '.join(INPUT_FORMATS)}",
                                   path=path, line=line_no)
        file = Path(row["path"])
        out.append(InputSpec(row["sample_id"], file if file.is_absolute() else path.parent / file, fmt))
    if not out:
        raise InputFormatError("the sample sheet has a header but no sample", path=path)
    return out


def resolve_inputs(items: list[str] | None, *, sheet: Path | None = None, store_samples: list[str] | None = None,
                   fmt: str | None = None) -> list[InputSpec]:
    """Every sample of the run, in the order given: files, then the sheet's rows, then store samples.

    A file named twice, or two samples with one id, is an error: nothing given is silently dropped.
    """
    specs = [InputSpec(sample_id_from_path(p), p, fmt) for p in expand_inputs(items or [])]
    if sheet is not None:
        specs += [s if s.fmt or fmt is None else InputSpec(s.sample_id, s.path, fmt) for s in read_input_sheet(sheet)]
    specs += [InputSpec(sid, store_sample=sid) for sid in store_samples or []]
    if not specs:
        raise TissueBertError("nothing to deconvolve", hint="pass input files (paths or a quoted glob), "
                              "--samples SHEET, or --store STORE --sample ID")
    seen_paths: dict[str, str] = {}
    seen_ids: dict[str, str] = {}
    for spec in specs:
        if "/" in spec.sample_id or spec.sample_id.startswith("."):  # it names the sample's output folder
            raise TissueBertError(f"sample id {spec.sample_id!r} ({spec.source}) cannot name a folder",
                                  hint="use letters, digits, '.', '_', '+' or '-', not starting with '.'")
        if spec.path is not None:
            key = str(spec.path.resolve())
            if key in seen_paths:
                raise TissueBertError(f"the input {spec.path} is given twice", hint="give each sample once")
            seen_paths[key] = spec.sample_id
        if spec.sample_id in seen_ids:
            raise TissueBertError(f"two inputs have the sample id {spec.sample_id!r} ({seen_ids[spec.sample_id]} "
                                  f"and {spec.source})", hint="rename one, or name them in a --samples sheet")
        seen_ids[spec.sample_id] = spec.source
    return specs

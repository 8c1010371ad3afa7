"""The input formats, one row each: how prepare reads it, the file names that imply it, what it needs.

Everything that names a format reads this table: the sample sheet's check, ``prepare``'s reader
choice, ``predict`` / ``deconvolve``'s guess from a file name and the CLI help. A new format is
one row here and one reader behind its route (docs/input_formats.md describes each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tissuebert.errors import TissueBertError

# How prepare reads a format (prepare/reads.py holds one reader per route)
ROUTE_PAT = "pat"  # read patterns in CpG-index coordinates (wgbs_tools .pat)
ROUTE_BAM = "bam"  # alignments: one fragment per read (pair), calls made at the panel's CpGs
ROUTE_COUNTS = "counts"  # per-CpG counts only: pseudo-reads are drawn from them


@dataclass(frozen=True)
class InputFormat:
    """One input format."""

    name: str
    """The name in ``--format`` and in the sample sheet's format column."""
    route: str
    """How prepare reads it: ROUTE_PAT, ROUTE_BAM or ROUTE_COUNTS."""
    suffixes: tuple[str, ...]
    """Lower-case file-name endings that imply it; an ending several formats share (.bam) needs --format."""
    needs_cpg_index: bool = False
    """Positions are CpG indices, so the genome's CpG index (--cpg-index) places them; every format
    needs the reference FASTA, which the panel is built from."""

    @property
    def pseudo_reads(self) -> bool:
        """Its reads are drawn from per-CpG counts and carry no co-methylation (the store flags them)."""
        return self.route == ROUTE_COUNTS


FORMATS: dict[str, InputFormat] = {f.name: f for f in (
    InputFormat("pat", ROUTE_PAT, (".pat", ".pat.gz"), needs_cpg_index=True),
    InputFormat("bismark", ROUTE_BAM, (".bam",)),
    InputFormat("bwameth", ROUTE_BAM, (".bam",)),
    InputFormat("mmml", ROUTE_BAM, (".bam",)),
    InputFormat("bedmethyl", ROUTE_COUNTS, (".bed", ".bed.gz", ".bedmethyl", ".bedmethyl.gz")),
    InputFormat("cov", ROUTE_COUNTS, (".cov", ".cov.gz")),
    InputFormat("beta", ROUTE_COUNTS, (".beta",), needs_cpg_index=True),
)}
INPUT_FORMATS = tuple(FORMATS)
BAM_FORMATS = tuple(f.name for f in FORMATS.values() if f.route == ROUTE_BAM)  # fragments, not per-CpG counts
ORDINAL_FORMATS = tuple(f.name for f in FORMATS.values() if f.needs_cpg_index)  # read through the CpG index


# every format's endings, longest first, so that "x.pat.gz" loses ".pat.gz", not ".gz"
_ENDINGS = tuple(sorted({s for f in FORMATS.values() for s in f.suffixes}, key=len, reverse=True))


def sample_id_from_path(path: Path) -> str:
    """A sample's id from its file name: the name without its format ending."""
    name = path.name
    for suffix in _ENDINGS:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def one_of(names: tuple[str, ...] | list[str]) -> str:
    """'a, b or c' for an error message."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def infer_format(path: Path) -> str:
    """The format a file name implies; an ambiguous ending (.bam) or an unknown one asks for --format."""
    name = path.name.lower()
    matches = [f for f in FORMATS.values() if name.endswith(f.suffixes)]
    if len(matches) > 1:
        ending = next(s for s in matches[0].suffixes if name.endswith(s))
        raise TissueBertError(f"a {ending.lstrip('.').upper()} needs --format {one_of([f.name for f in matches])}",
                              path=path)
    if matches:
        return matches[0].name
    raise TissueBertError("cannot tell the input format from the file name", path=path, hint="pass --format")

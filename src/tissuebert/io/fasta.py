"""Reference FASTA access through pysam, with clear errors and chromosome-name hints."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pysam

from tissuebert.errors import InputFormatError, require_file


def naming_hint(name: str, known: list[str] | tuple[str, ...] | set[str], where: str = "the reference") -> str | None:
    """Suggest the fix when ``name`` differs from a known chromosome only by a ``chr`` prefix."""
    known = set(known)
    if name.startswith("chr") and name[3:] in known:
        return f"'{name}' is called '{name[3:]}' in {where}: use the same chromosome naming (with or without 'chr') everywhere"
    if "chr" + name in known:
        return f"'{name}' is called 'chr{name}' in {where}: use the same chromosome naming (with or without 'chr') everywhere"
    if name in ("MT", "chrMT") and ("chrM" in known or "M" in known):
        return "mitochondrial naming differs (MT vs M)"
    return None


def check_fai(fasta: Path, fai: Path) -> None:
    """A ``.fai`` left from an earlier version of the FASTA makes every fetch return other bases:
    each contig's first base must follow a header line and its last base a line end."""
    with open(fasta, "rb") as fh:
        if fh.read(2) == b"\x1f\x8b":
            return  # bgzipped: offsets are in the .gzi's uncompressed space, htslib checks them
        size = fasta.stat().st_size
        for line_no, line in enumerate(fai.read_text().splitlines(), start=1):
            cols = line.split("\t")
            try:
                name, length, offset, line_bases, line_width = cols[0], *map(int, cols[1:5])
            except ValueError:
                raise InputFormatError("malformed .fai line", path=fai, line=line_no,
                                       hint="delete the .fai: it is rebuilt from the FASTA") from None
            if length == 0 or line_bases <= 0:
                continue
            full, rest = divmod(length - 1, line_bases)
            last = offset + full * line_width + rest  # byte of the contig's last base
            fh.seek(max(offset - 1, 0))
            before = fh.read(1)
            fh.seek(last)
            base, after = fh.read(1), fh.read(1)
            if before != b"\n" or last >= size or base in (b"\n", b"\r", b">") or after not in (b"\n", b"\r", b""):
                raise InputFormatError(f"the FASTA index {fai.name} does not fit {fasta.name} at contig {name!r}",
                                       path=fai, line=line_no,
                                       hint="the FASTA changed after it was indexed: delete the .fai (it is rebuilt) "
                                            "or run `samtools faidx` again")


class Reference:
    """A FASTA opened with pysam; sequences come back upper-cased (soft-masking ignored).

    A missing ``.fai`` is built next to the FASTA when that folder is writable, else in a
    temporary folder, so read-only reference collections work.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = require_file(path, "reference FASTA")
        fai = Path(str(self.path) + ".fai")
        index = None
        if not fai.exists() and not os.access(self.path.parent, os.W_OK):
            self._tmpdir = tempfile.TemporaryDirectory(prefix="tissuebert-fai-")
            index = os.path.join(self._tmpdir.name, self.path.name + ".fai")
            try:
                pysam.faidx(str(self.path), "--fai-idx", index)
            except pysam.SamtoolsError as exc:
                raise InputFormatError(f"cannot index FASTA: {exc}", path=self.path,
                                       hint="is it a (b)gzip-compressed or plain FASTA?") from None
        try:
            self._fa = pysam.FastaFile(str(self.path), filepath_index=index)
        except (OSError, ValueError) as exc:
            raise InputFormatError(f"cannot open FASTA: {exc}", path=self.path,
                                   hint="a gzipped FASTA must be bgzip-compressed; or decompress it") from None
        self.names: tuple[str, ...] = tuple(self._fa.references)
        self.lengths: dict[str, int] = dict(zip(self._fa.references, self._fa.lengths))
        if index is None and fai.exists():
            check_fai(self.path, fai)

    def require_chrom(self, chrom: str, *, path: str | Path, line: int | None = None, what: str = "chromosome") -> int:
        """Return the chromosome's length, or raise naming the file/line and suggesting a fix."""
        if chrom in self.lengths:
            return self.lengths[chrom]
        hint = naming_hint(chrom, self.names) or (f"the reference {self.path.name} has {', '.join(self.names[:5])}"
                                                  f"{' ...' if len(self.names) > 5 else ''}")
        raise InputFormatError(f"unknown {what} {chrom!r}", path=path, line=line, hint=hint)

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Upper-cased sequence of ``chrom`` over 0-based half-open [start, end)."""
        return self._fa.fetch(chrom, start, end).upper()

    def close(self) -> None:
        self._fa.close()

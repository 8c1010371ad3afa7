"""Text-file helpers every reader shares: plain or gzipped input, and the tabix index beside a file."""

from __future__ import annotations

import gzip
from pathlib import Path


def open_text(path: str | Path):
    """Open a plain or (b)gzipped text file for reading."""
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, "rt", encoding="utf-8-sig")


def tabix_index(path: str | Path) -> Path | None:
    """The ``.csi`` or ``.tbi`` tabix index beside a bgzipped file, if there is one."""
    for suffix in (".csi", ".tbi"):
        cand = Path(f"{path}{suffix}")
        if cand.is_file():
            return cand
    return None

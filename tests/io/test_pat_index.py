"""A .pat.gz read through a tabix index that belongs to another file (issue 12, item 3): the
index's offsets are another file's, so the reader lands past the end or in the middle of a line.
Both must stop with one error naming the file and how to re-index, never yield other reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pysam
import pytest

from tissuebert.errors import InputFormatError
from tissuebert.io.pat import fetch_pat, open_indexed_pat

S1 = "chr1\t1001\tCTC\t2\nchr1\t1002\tCC\t3\nchr1\t1004\tCT\t1\n"
# chr1's lines start 11 bytes into the other file: inside s1's first line ("TC\t2")
OTHERS = {"middle_of_a_line": "chr2\t1\tC\t1\n" + "chr1\t1001\tCCC\t2\n"}
# Not covered: offsets past the end of a one-block file. htslib then raises "iteration failed"
# (caught: the same error) in a fresh process, but in a process that decompressed the other file
# before it was seen to return that file's stale line; the range check below catches such lines
# only when they fall outside the asked range.


def _indexed(path: Path, text: str) -> Path:
    path.write_text(text)
    return Path(pysam.tabix_index(str(path), seq_col=0, start_col=1, end_col=1, csi=True, force=True))


@pytest.mark.parametrize("case", list(OTHERS))
def test_index_of_another_file_is_refused(tmp_path: Path, case: str) -> None:
    s1 = _indexed(tmp_path / "s1.pat", S1)
    tbx = open_indexed_pat(s1)
    assert [r[:4] for r in fetch_pat(tbx, s1, "chr1", 1001, 1005)] == [
        ("chr1", 1001, "CTC", 2), ("chr1", 1002, "CC", 3), ("chr1", 1004, "CT", 1)]  # its own index: all
    other = _indexed(tmp_path / "other.pat", OTHERS[case])
    shutil.copy(f"{other}.csi", f"{s1}.csi")
    with pytest.raises(InputFormatError, match=r"s1.pat.gz: the tabix index does not belong to this file.*"
                                               r"tabix -f -C -b 2 -e 2"):
        list(fetch_pat(open_indexed_pat(s1), s1, "chr1", 1001, 1005))


class _Foreign:
    """What a foreign index makes htslib return: whole lines, but of another place in the genome."""

    contigs = ["chr1", "chr2"]

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def fetch(self, chrom, start, end):
        return iter(self.lines)


@pytest.mark.parametrize("line, detail", [
    ("chr2\t1003\tCC\t1", "it gave chr2:1003"),  # another contig
    ("chr1\t9001\tCC\t1", "it gave chr1:9001"),  # far past the range
])
def test_lines_outside_the_asked_range_are_refused(line: str, detail: str) -> None:
    with pytest.raises(InputFormatError, match=f"does not belong to this file: asked for chr1:1-1005, {detail}"):
        list(fetch_pat(_Foreign([line]), "s.pat.gz", "chr1", 1001, 1005))

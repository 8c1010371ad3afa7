"""The simulator's block boundaries as a blocks BED: the markers tests' and benchmark's stand-in segmentation."""

from __future__ import annotations

from pathlib import Path


def blocks_from_truth(cohort: Path, out: Path) -> Path:
    """The simulator's methylation-block boundaries as a wgbs_tools blocks BED (chrom start end
    startCpG endCpG). Only where blocks are, never their type or target: the stand-in for the
    published atlas segmentation (wgbstools segment) that the real recipe starts from."""
    lines = []
    for k, line in enumerate((cohort / "truth" / "blocks.tsv").read_text().splitlines()):
        cols = line.split("\t")
        if k == 0 or cols[6] == ".":
            continue
        lines.append(f"{cols[0]}\t{cols[1]}\t{cols[2]}\t{cols[6]}\t{int(cols[6]) + int(cols[7])}")
    out.write_text("\n".join(lines) + "\n")
    return out

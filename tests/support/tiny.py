"""A hand-built genome, panel and .pat small enough to check every value by eye.

chr1 (600 bp) is an 'AT' repeat (no CpG) with a CG whose C sits at 0-based 100, 110, 130,
250 and 400; chr2 (300 bp) is all 'AT'. Genome-wide CpG indices of chr1's CpGs are
1001..1005 (as if earlier chromosomes held 1000 CpGs).

BED                    windows (150 bp)          CpGs (C position -> window offset)
chr1 95 140  "m1"      [43, 193)   window 0      100 -> 57, 110 -> 67, 130 -> 87
chr1 240 420 "m2"      [180, 330)  window 1      250 -> 70
                       [330, 480)  window 2      400 -> 70

.pat                   window 0          window 1     window 2
chr1 1001 CTC 2        [M U M] x2        -            -
chr1 1003 C.TT 1       [. . M]           [.] dropped  [U]
chr1 1005 T 3          -                 -            [U] x3
"""

from __future__ import annotations

from pathlib import Path

CPG_C = (100, 110, 130, 250, 400)
CPG_ORD = (1001, 1002, 1003, 1004, 1005)
WIN_START = (43, 180, 330)
PAT_LINES = ["chr1\t1001\tCTC\t2", "chr1\t1003\tC.TT\t1", "chr1\t1005\tT\t3"]


def chr1_seq() -> str:
    seq = list("AT" * 300)
    for pos in CPG_C:
        seq[pos], seq[pos + 1] = "C", "G"
    return "".join(seq)


def write_tiny(root: Path, *, pat_lines: list[str] | None = None, chrom_prefix: str = "chr") -> dict[str, Path]:
    """Write genome.fa, regions.bed, CpG.bed, s1.pat and a one-sample sheet under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    seq = chr1_seq().lower()  # soft-masked: must be upper-cased on reading
    fa = root / "genome.fa"
    fa.write_text(f">{chrom_prefix}1\n" + "\n".join(seq[i:i + 60] for i in range(0, 600, 60))
                  + f"\n>{chrom_prefix}2\n" + "AT" * 150 + "\n")
    bed = root / "regions.bed"
    bed.write_text(f"{chrom_prefix}1\t95\t140\tm1\n{chrom_prefix}1\t240\t420\tm2\n")
    cpg = root / "CpG.bed"
    cpg.write_text("".join(f"{chrom_prefix}1\t{c + 1}\t{o}\n" for c, o in zip(CPG_C, CPG_ORD)))
    pat = root / "s1.pat"
    pat.write_text("\n".join(pat_lines if pat_lines is not None else PAT_LINES) + "\n")
    sheet = root / "samples.tsv"
    sheet.write_text("sample_id\ttissue\tsplit\tpath\tformat\ns1\tliver\ttrain\ts1.pat\tpat\n")
    return {"reference": fa, "regions": bed, "cpg_index": cpg, "pat": pat, "sheet": sheet}

"""Ingest throughput (reads/s) and peak memory per input format, on the real files of ../shared/data.

Each format runs in its own process so its peak RSS is its own. The readers need a panel; there
is no hg19 FASTA here, so panels are built from what the files themselves give: the U25 hg19
marker CpG ranges (.pat, .beta), the CpGs of the MD-rebuilt references (Bismark BAM, and the
.cov / bedMethyl tables derived from its calls), the bwa-meth MD consensus (NR1I2). Windows and
CpG indices are real; DNA tokens are left empty (readers do not use them).
Baseline for scale: MethylBERT's preprocessing, ~3,200 reads/s on this machine (DESIGN.md).

Usage: python benchmarks/bench_prepare.py [--repeat 3] [--only pat bismark ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pysam

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FORMATS = ("pat", "pat-tabix", "bismark", "bwameth", "cov", "bedmethyl", "beta")
PAT_FILES = sorted((DATA / "UXM_deconv" / "tutorial" / "data").glob("*.pat.gz"))
BWAMETH = sorted((DATA / "wgbs_tools" / "tutorial" / "bams").glob("*.small.bam"))
BISMARK = DATA / "methtuple" / "se_directional.fq.gz_bismark_bt2.bam"


def _panel(chroms, win_chrom, win_start, cpg_lists):
    from tissuebert.store.panel import Panel

    counts = np.array([len(c) for c in cpg_lists])
    ptr = np.zeros(len(cpg_lists) + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    offsets = np.concatenate([np.asarray([o for o, _ in c], np.uint8) for c in cpg_lists])
    index = np.concatenate([np.asarray([i for _, i in c], np.int64) for c in cpg_lists])
    n = len(cpg_lists)
    return Panel(chroms=chroms, chrom_lengths=np.full(len(chroms), 10**9), win_chrom=np.asarray(win_chrom, np.int32),
                 win_start=np.asarray(win_start, np.int64), win_region=np.arange(n, dtype=np.int32),
                 dna=np.zeros((n, 148), np.uint8), cpg_ptr=ptr, cpg_offset=offsets, cpg_index=index,
                 reg_chrom=np.zeros(0, np.int32), reg_start=np.zeros(0, np.int64), reg_end=np.zeros(0, np.int64))


def marker_panel():
    rows = [ln.split("\t")
            for ln in (DATA / "UXM_deconv" / "supplemental" / "Atlas.U25.l4.hg19.tsv").read_text().splitlines()[1:]]
    chroms = sorted({r[0] for r in rows}, key=lambda c: (len(c), c))
    rows.sort(key=lambda r: (chroms.index(r[0]), int(r[3])))
    cpgs = [[(k, i) for k, i in enumerate(range(int(r[3]), int(r[4])))] for r in rows]
    return _panel(chroms, [chroms.index(r[0]) for r in rows], [int(r[1]) for r in rows], cpgs)


def positions_panel(cpg_by_chrom: dict[str, list[int]]):
    """150 bp windows tiling the CpGs of each chromosome (ordinals numbered in position order)."""
    chroms = sorted(cpg_by_chrom, key=lambda c: (len(c), c))
    win_chrom, win_start, cpgs, ordinal = [], [], [], 0
    for cid, chrom in enumerate(chroms):
        pos = np.unique(np.asarray(cpg_by_chrom[chrom]))
        k = 0
        while k < len(pos):
            start = int(pos[k])
            inside = pos[(pos >= start) & (pos < start + 148)]
            win_chrom.append(cid)
            win_start.append(start)
            cpgs.append([(int(p - start), ordinal + j + 1) for j, p in enumerate(inside)])
            ordinal += len(inside)
            k += len(inside)
    return _panel(chroms, win_chrom, win_start, cpgs)


def bismark_inputs(tmp: Path):
    """Sorted + indexed copy of the Bismark BAM, its CpGs (MD-rebuilt), and .cov / bedMethyl of its calls."""
    from tissuebert.io.bam import rebuild_reference

    bam = tmp / "bismark.bam"
    pysam.sort("-o", str(bam), str(BISMARK))
    pysam.index(str(bam))
    cpg_by_chrom: dict[str, list[int]] = defaultdict(list)
    calls: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    with pysam.AlignmentFile(str(bam)) as fh:
        for read in fh:
            ref = rebuild_reference(read)
            xm = read.get_tag("XM")
            r2q = {r: q for q, r in read.get_aligned_pairs(matches_only=True)}
            bottom = read.get_tag("XG") == "GA"
            for k in range(len(ref) - 1):
                if ref[k:k + 2] == "CG":
                    pos = read.reference_start + k
                    cpg_by_chrom[read.reference_name].append(pos)
                    q = r2q.get(pos + bottom)
                    if q is not None and xm[q] in "Zz":
                        calls[(read.reference_name, pos)][xm[q] == "z"] += 1
    cov, bed = tmp / "s.cov", tmp / "s.bedmethyl"
    keys = sorted(calls, key=lambda k: (k[0], k[1]))
    cov.write_text("".join(f"{c}\t{p + 1}\t{p + 1}\t{100 * m / (m + u):.2f}\t{m}\t{u}\n"
                           for (c, p), (m, u) in ((k, calls[k]) for k in keys)))
    bed.write_text("".join(f"{c}\t{p}\t{p + 1}\tm\t{m + u}\t+\t{p}\t{p + 1}\t255,0,0\t{m + u}\t"
                           f"{100 * m / (m + u):.2f}\t{m}\t{u}\t0\t0\t0\t0\t0\n"
                           for (c, p), (m, u) in ((k, calls[k]) for k in keys)))
    return bam, positions_panel(cpg_by_chrom), cov, bed


def beta_from_pat(tmp: Path) -> Path:
    """A genome-wide hg19 .beta (28,217,448 CpGs) holding the per-CpG counts of the liver .pat."""
    from tissuebert.io.pat import iter_pat

    table = np.zeros((28_217_448, 2), np.uint8)
    for _, start, pattern, count, _ in iter_pat(PAT_FILES[0]):
        for k, char in enumerate(pattern):
            if char != ".":
                row = table[start + k - 1]
                row[1] = min(255, int(row[1]) + count)
                row[0] = min(int(row[1]), int(row[0]) + count * (char == "C"))
    path = tmp / "liver.beta"
    table.tofile(path)
    return path


def run_one(fmt: str, repeat: int) -> dict:
    from tissuebert.prepare import read_sample_windows
    from tissuebert.testing.bwameth import consensus_reference, cpg_positions

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if fmt in ("pat", "pat-tabix"):
            jobs = [(p, "pat", marker_panel(), {"stream": fmt == "pat"}) for p in PAT_FILES]
        elif fmt == "bwameth":
            cons = consensus_reference(BWAMETH[0], "chr3", 119_527_827, 119_532_242)
            panel = positions_panel({"chr3": cpg_positions(cons, 119_527_827).tolist()})
            jobs = [(p, "bwameth", panel, {}) for p in BWAMETH]
        elif fmt == "beta":
            jobs = [(beta_from_pat(tmp), "beta", marker_panel(), {})]
        else:
            bam, panel, cov, bed = bismark_inputs(tmp)
            jobs = [({"bismark": bam, "cov": cov, "bedmethyl": bed}[fmt], fmt, panel, {})]
        from tissuebert.prepare import PanelIndex

        indexes = [PanelIndex(job[2]) for job in jobs]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        best, reads, rows = float("inf"), 0, 0
        for _ in range(repeat):
            start = time.perf_counter()
            reads = rows = 0
            for (path, f, panel, kw), index in zip(jobs, indexes):
                out = read_sample_windows(path, f, panel, index=index, **kw)
                reads += out.stats.get("reads_in", 0) if not out.pseudo else out.n_rows
                rows += out.n_rows
            best = min(best, time.perf_counter() - start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"format": fmt, "files": len(jobs), "reads": reads, "rows": rows, "seconds": best,
            "reads_per_s": reads / best, "peak_rss_mb": peak / 1024, "rss_before_mb": rss_before / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--one", choices=FORMATS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.repeat)))
        return 0
    if not DATA.is_dir():
        print(f"real data not found at {DATA}", file=sys.stderr)
        return 1
    print(f"{'format':<10} {'files':>5} {'reads':>9} {'rows':>9} {'best s':>8} {'reads/s':>10} "
          f"{'vs MethylBERT':>13} {'peak RSS MB':>11}")
    for fmt in args.only:
        res = subprocess.run([sys.executable, __file__, "--one", fmt, "--repeat", str(args.repeat)],
                             capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{r['format']:<10} {r['files']:>5} {r['reads']:>9} {r['rows']:>9} {r['seconds']:>8.3f} "
              f"{r['reads_per_s']:>10,.0f} {r['reads_per_s'] / 3200:>12.1f}x {r['peak_rss_mb']:>11.0f}")
    print("reads = input reads (pat: sum of counts; BAM: fragments after filters; per-CpG tables: pseudo-reads made)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`tissuebert markers` against the simulator's truth, and its time and peak memory.

1. `small` preset (22 tissues, seed 0): markers on the training split, candidates = the
   simulator's block boundaries (the stand-in for the atlas's published segmentation), groups =
   the shipped atlas22 hierarchy; precision and recall of the true marker blocks, then the same
   with blind 50 bp tiling.
2. `--atlas`: the `atlas` preset's panel (22 tissues, 30,000 regions, ~51,000 windows) with
   `--atlas-samples` samples per tissue at depth 10-30 (the full 765 samples at 10-500x take
   hours to simulate here): markers' wall time, peak RSS and .pat lines/s.

markers runs as a subprocess; its peak RSS is the largest of it and its worker processes.

Usage: python benchmarks/bench_markers.py [--atlas] [--atlas-samples 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_markers(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, the largest process) of one `tissuebert markers` run."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tissuebert", "-q", "markers", *args], check=True)
    wall = time.perf_counter() - start
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def train_lines(cohort: Path) -> tuple[int, int]:
    with open(cohort / "truth" / "samples.tsv") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["split"] == "train"]
    return len(rows), sum(int(r["n_pat_lines"]) for r in rows)


def score(cohort: Path, bed: Path) -> str:
    from tissuebert.io.sheet import shipped_file
    from tissuebert.markers import read_groups, read_selection
    from tissuebert.markers.truth import score_panel
    from tissuebert.simulate.truth import load_truth

    truth = load_truth(cohort)
    groups = {t.name: frozenset(truth.tissues[m] for m in t.members)
              for t in read_groups(shipped_file("atlas22", "groups"), truth.tissues)}
    s = score_panel(read_selection(bed), truth, groups, min_cpgs=4)
    return (f"precision {s.precision:.3f} ({s.n_correct}/{s.n_selected}), "
            f"recall {s.recall:.3f} ({s.n_found}/{s.n_true} true marker blocks with >= 4 CpGs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", action="store_true", help="also measure time and memory at the atlas panel's size")
    parser.add_argument("--atlas-samples", type=float, default=3.0, help="samples per tissue of the atlas run")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from tissuebert.simulate import simulate_cohort
    from tissuebert.testing.blocks import blocks_from_truth

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cohort = simulate_cohort(tmp / "small", preset="small", seed=0, write_bam=False)
        blocks = blocks_from_truth(cohort, tmp / "blocks.bed")
        n_train, n_lines = train_lines(cohort)
        common = ["--samples", str(cohort / "samples.tsv"), "--groups", "atlas22", "--per-class", "1000",
                  "--threads", str(args.threads)]
        wall, rss = run_markers([*common, "--blocks", str(blocks), "--out", str(tmp / "m.bed")])
        print(f"small, seed 0, {n_train} training samples, {n_lines:,} .pat lines: markers {wall:.1f} s wall, "
              f"peak RSS {rss:.0f} MB")
        print(f"  block boundaries: {score(cohort, tmp / 'm.bed')}")
        run_markers([*common, "--tile-bp", "50", "--cpg-index", str(cohort / "CpG.bed.gz"), "--out", str(tmp / "t.bed")])
        print(f"  50 bp tiling:     {score(cohort, tmp / 't.bed')}")
        if args.atlas:
            start = time.perf_counter()
            atlas = simulate_cohort(tmp / "atlas", preset="atlas", seed=0, samples_per_tissue=args.atlas_samples,
                                    depth_min=10, depth_max=30)
            sim_s = time.perf_counter() - start
            blocks = blocks_from_truth(atlas, tmp / "atlas_blocks.bed")
            n_blocks = sum(1 for _ in open(blocks))
            n_train, n_lines = train_lines(atlas)
            wall, rss = run_markers(["--samples", str(atlas / "samples.tsv"), "--groups", "atlas22",
                                     "--threads", str(args.threads), "--blocks", str(blocks),
                                     "--out", str(tmp / "a.bed")])
            print(f"atlas panel, {n_blocks:,} blocks, {n_train} training samples (depth 10-30), {n_lines:,} .pat lines "
                  f"(simulated in {sim_s:.0f} s): markers {wall:.1f} s wall with {args.threads} processes = "
                  f"{n_lines / wall:,.0f} lines/s, peak RSS {rss:.0f} MB")
            print(f"  {score(atlas, tmp / 'a.bed')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

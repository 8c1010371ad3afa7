"""Throughput (reads/s written) and peak memory of `simulate` at the atlas preset's scale.

Builds the atlas panel (22 tissues, 30,000 regions, ~51,000 windows) once, then simulates a slice
of its 765 samples into a temporary directory, each sample streamed to disk chunk by chunk.
Peak RSS is printed after every sample: if it stays flat, memory does not grow with the cohort.
The full cohort's time is extrapolated from the slice's reads/s and every sample's expected read
count (depth x panel length / fragment length).

Usage: python benchmarks/bench_simulate.py [--samples 3] [--depth 30] [--bam]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="samples of the atlas cohort to simulate")
    parser.add_argument("--depth", type=float, default=30.0, help="depth of each simulated sample (the atlas draws 10-500x)")
    parser.add_argument("--bam", action="store_true", help="also write the Bismark BAMs")
    args = parser.parse_args(argv)

    from tissuebert.simulate.cohort import _build_truth, _simulate_sample, design_samples
    from tissuebert.simulate.formats import write_cpg_index, write_fasta
    from tissuebert.simulate.params import resolve
    from tissuebert.simulate.reads import mean_fragment_length

    cfg = resolve("atlas", write_bam=args.bam)
    streams = np.random.SeedSequence(0).spawn(3)
    t0 = time.perf_counter()
    truth, genome = _build_truth(cfg, np.random.default_rng(streams[0]), None, None)
    t_panel = time.perf_counter() - t0
    windows = int(((truth.reg_end - truth.reg_start) // 150).sum())
    print(f"panel: {len(truth.reg_name)} regions, {windows} windows, {truth.n_blocks} blocks, {truth.n_cpgs} CpGs, "
          f"genome {truth.chrom_lengths.sum() / 1e6:.1f} Mb on {len(truth.chroms)} chromosomes: "
          f"{t_panel:.1f} s, peak RSS {peak_rss_mb():.0f} MB")
    designs = design_samples(cfg, truth.tissues, np.random.default_rng(streams[1]))
    with tempfile.TemporaryDirectory(prefix="bench_simulate.") as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        write_fasta(out / "genome.fa", genome.chroms, genome.seqs)
        write_cpg_index(out / "CpG.bed.gz", truth.chroms, truth.cpg_chrom, truth.cpg_pos)
        print(f"genome.fa + CpG.bed.gz: {time.perf_counter() - t0:.1f} s")
        flat = np.concatenate(genome.seqs)
        seeds = streams[2].spawn(len(designs))
        total_reads, total_time = 0, 0.0
        for k in range(min(args.samples, len(designs))):
            design = designs[k]
            design.depth = args.depth
            t0 = time.perf_counter()
            rec = _simulate_sample(cfg, truth, flat, design, np.random.default_rng(seeds[k]), out)
            elapsed = time.perf_counter() - t0
            total_reads += rec["n_reads"]
            total_time += elapsed
            print(f"sample {design.sample_id}: depth {args.depth:.0f}x, {rec['n_reads']} reads in {elapsed:.1f} s "
                  f"= {rec['n_reads'] / elapsed:,.0f} reads/s; peak RSS {peak_rss_mb():.0f} MB")
    rate = total_reads / total_time
    panel_bp = float((truth.reg_end - truth.reg_start).sum())
    mean_len = mean_fragment_length(cfg.frag_mode)
    # reads of a sample ~ depth x (panel bp + regions x L) / L
    expected = sum(d.depth for d in designs) * (panel_bp + len(truth.reg_name) * mean_len) / mean_len
    print(f"throughput: {rate:,.0f} reads/s ({'pat + BAM' if args.bam else 'pat only'}), peak RSS {peak_rss_mb():.0f} MB")
    print(f"full atlas cohort: {len(designs)} samples, ~{expected / 1e9:.2f} G reads at the preset's depths "
          f"-> ~{expected / rate / 3600:.1f} h on one core at this rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of the simulator tests: read the files a cohort holds, independently of the simulator."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def read_pat(path: Path) -> list[tuple[str, int, str, int]]:
    """All lines of a .pat.gz as (chrom, first CpG index, pattern, count)."""
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            chrom, first, pattern, count = line.rstrip("\n").split("\t")
            out.append((chrom, int(first), pattern, int(count)))
    return out


def expand_pat(lines) -> list[tuple[int, str]]:
    """One (first index, pattern) per read (a line with count n stands for n reads)."""
    return [(first, pattern) for _, first, pattern, count in lines for _ in range(count)]


def pat_to_arrays(lines) -> tuple[np.ndarray, np.ndarray]:
    """Reads of .pat lines -> (cpg_index (R, K), calls (R, K)) padded with index 0 / call 2."""
    reads = expand_pat(lines)
    width = max(len(p) for _, p in reads)
    cpg_index = np.zeros((len(reads), width), dtype=np.int64)
    calls = np.full((len(reads), width), 2, dtype=np.uint8)
    code = {"T": 0, "C": 1, ".": 2}
    for row, (first, pattern) in enumerate(reads):
        cpg_index[row, : len(pattern)] = np.arange(first, first + len(pattern))
        calls[row, : len(pattern)] = [code[c] for c in pattern]
    return cpg_index, calls


def oracle_mixture(cohort: Path, truth_props: dict[str, float], *, depth: float, seed: int, out_path: Path):
    """Simulate a mixture of ``cohort`` and score its reads with the exact likelihoods:
    (truth, cpg_index, calls, loglik, EM proportions, true proportions in truth.tissues order)."""
    from tissuebert.simulate import load_truth, oracle_loglik, oracle_proportions, simulate_mixture

    truth = load_truth(cohort)
    path = simulate_mixture(cohort, truth_props, depth=depth, seed=seed, out_path=out_path)
    idx, calls = pat_to_arrays(read_pat(path))
    loglik = oracle_loglik(truth, idx, calls)
    expected = np.array([truth_props.get(t, 0.0) for t in truth.tissues])
    return truth, idx, calls, loglik, oracle_proportions(loglik), expected

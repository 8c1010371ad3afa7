"""Batch assembly: the vectorised sampler against a per-item h5py Dataset, in one process.

Builds a marker store (default 8 samples x 250,000 reads over 2,000 windows) in a temporary
folder, then times, on the main thread:

  vectorised, in RAM        TrainSampler.batch (draw + one gather + tokens + 5% CpG dropout)
  vectorised, memory-mapped the same over np.memmap views of the sample files
  per-item h5py, cached     ItemDataset[(file, row)] per read, file handles kept open
  per-item h5py, reopened   the same, opening the sample file for every read

and prints reads/s (median of repeats) and the ratio of the vectorised path to each per-item one.

    .venv/bin/python benchmarks/bench_loader.py [--reads-per-sample 250000] [--batch 128]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from tissuebert.constants import STORE
from tissuebert.data.sampler import TrainSampler, batch_rng
from tissuebert.testing.reference import ItemDataset
from tissuebert.testing.synthetic import build_marker_store


def reads_per_second(fn, reads_per_call: int, seconds: float, repeats: int = 5) -> float:
    """Median over `repeats` windows of ~seconds/repeats each."""
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / repeats:
            fn(calls)
            calls += 1
        rates.append(calls * reads_per_call / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8, help="training samples (half per tissue)")
    parser.add_argument("--reads-per-sample", type=int, default=250_000)
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = build_marker_store(Path(tmp) / "store", tissues=("a", "b"), n_windows=args.windows,
                                   reads_per_sample=args.reads_per_sample, splits={"train": args.samples // 2, "val": 1},
                                   marker_beta=0.1, background_beta=0.9, seed=0)
        n_reads = sum(r.n_reads for r in store.samples("train"))
        print(f"store: {args.samples} train samples, {n_reads:,} reads, {args.windows} windows, "
              f"max {store.panel.max_cpgs} CpGs/window (built in {time.perf_counter() - t0:.1f} s)")
        ram = TrainSampler(store, seed=0, cpg_dropout=0.05, in_memory=True)
        mapped = TrainSampler(store, seed=0, cpg_dropout=0.05, in_memory=False)
        dataset = ItemDataset(store)
        b = args.batch
        # the per-item paths read the reads the sampler would draw, so every path does the same work
        items = [list(zip(*[x.tolist() for x in ram.draw_indices(batch_rng(0, 0, s, 0), b)[::2]])) for s in range(64)]

        def per_item_cached(step: int) -> None:
            for item in items[step % 64]:
                dataset[item]

        def per_item_reopen(step: int) -> None:
            for file_pos, row in items[step % 64]:
                with h5py.File(store.root / dataset.samples[file_pos].file, "r") as f:
                    window = int(f[STORE.READ_WINDOW][row])
                    calls = f[STORE.CALLS][row]
                dataset.tables.batch(np.array([window]), calls[None, :])

        results = {
            "vectorised, in RAM": reads_per_second(lambda s: ram.batch(0, s, b), b, args.seconds),
            "vectorised, memory-mapped": reads_per_second(lambda s: mapped.batch(0, s, b), b, args.seconds),
            "per-item h5py, cached handle": reads_per_second(per_item_cached, b, args.seconds),
            "per-item h5py, reopened": reads_per_second(per_item_reopen, b, args.seconds),
        }
        dataset.close()
    print(f"\nbatch {b}, one core, main thread:")
    for name, rate in results.items():
        print(f"  {name:30s} {rate:12,.0f} reads/s")
    fast = results["vectorised, in RAM"]
    print(f"\n  vectorised in RAM / per-item cached : {fast / results['per-item h5py, cached handle']:8.1f}x")
    print(f"  vectorised in RAM / per-item reopen : {fast / results['per-item h5py, reopened']:8.1f}x")
    print(f"  memory-mapped / in RAM              : {results['vectorised, memory-mapped'] / fast:8.2f}")


if __name__ == "__main__":
    main()

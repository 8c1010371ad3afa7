"""Deconvolution throughput: scoring every read vs scoring each unique (window, pattern) once.

Simulates a demo cohort and one cfDNA-like mixture (.pat.gz) at --depth, builds the panel from
the cohort's files, and deconvolves the mixture with an untrained tiny-preset model (speed does
not depend on the weights) in two modes, each in its own process so peak RSS is its own:

  per-read : read_sample_windows(collapse=False), every row scored
  dedup    : read_sample_windows(collapse=True), unique rows scored once, weighted by count

Prints reads/s (reads of the input, with multiplicity) for reading, scoring and EM, the unique
fraction, and peak RSS; the ratio dedup/per-read is measured in the same run.

    .venv/bin/python benchmarks/bench_deconvolve.py --depth 200 --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def prepare_inputs(work: Path, depth: float, seed: int) -> dict:
    from tissuebert.simulate import simulate_cohort, simulate_mixture

    cohort = simulate_cohort(work / "cohort", preset="demo", seed=seed, write_bam=False, donors=100000)
    tissues = json.loads((cohort / "simulate.json").read_text())["tissues"]
    props = {t: 1.0 / len(tissues) for t in tissues}
    mix = simulate_mixture(cohort, props, depth=depth, seed=seed, out_path=work / "mix.pat.gz")
    return {"cohort": str(cohort), "mix": str(mix), "tissues": tissues}


def run_mode(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from tissuebert.config import config_to_dict, load_config
    from tissuebert.constants import CKPT
    from tissuebert.deconvolve import proportions_from_loglik, score_reads
    from tissuebert.model.tissuebert import build_model
    from tissuebert.prepare import build_panel, read_sample_windows

    torch.set_num_threads(args.threads)
    cohort = Path(args.cohort)
    panel = build_panel(cohort / "genome.fa", cohort / "regions.bed", cohort / "CpG.bed.gz")
    tissues = json.loads((cohort / "simulate.json").read_text())["tissues"]
    config = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(config.model, len(tissues)).eval()
    state = {CKPT.MODEL: model.state_dict(), CKPT.CONFIG: config_to_dict(config), CKPT.TISSUES: tissues,
             CKPT.PANEL_HASH: panel.panel_hash(), CKPT.EPOCH: 0, CKPT.GLOBAL_STEP: 0}
    t0 = time.perf_counter()
    reads = read_sample_windows(args.mix, "pat", panel, collapse=args.mode == "dedup")
    t1 = time.perf_counter()
    _, loglik = score_reads(state, panel, reads.window_idx, reads.calls, device="cpu", model=model)
    t2 = time.perf_counter()
    res = proportions_from_loglik(loglik, reads.counts, tissues, method="em", n_boot=0)
    t3 = time.perf_counter()
    n_reads = int(reads.counts.sum())
    print(json.dumps({"mode": args.mode, "rows": reads.n_rows, "reads": n_reads,
                      "read_s": t1 - t0, "score_s": t2 - t1, "em_s": t3 - t2, "total_s": t3 - t0,
                      "reads_per_s": n_reads / (t3 - t0), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "max_prop_error": float(np.abs(res.proportions - 1 / len(tissues)).max())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=float, default=200.0, help="mixture depth (simulate_mixture units)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["per-read", "dedup"], help=argparse.SUPPRESS)
    parser.add_argument("--cohort", help=argparse.SUPPRESS)
    parser.add_argument("--mix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        run_mode(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        inputs = prepare_inputs(Path(tmp), args.depth, args.seed)
        results = {}
        for mode in ("per-read", "dedup"):
            out = subprocess.run([sys.executable, __file__, "--mode", mode, "--cohort", inputs["cohort"], "--mix",
                                  inputs["mix"], "--threads", str(args.threads)], check=True, capture_output=True,
                                 text=True).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
    for mode, r in results.items():
        print(f"{mode:>9}: {r['reads']} reads in {r['rows']} rows; read {r['read_s']:.1f} s, score {r['score_s']:.1f} s, "
              f"EM {r['em_s']:.2f} s; {r['reads_per_s']:.0f} reads/s; peak RSS {r['peak_rss_mb']:.0f} MB")
    ratio = results["dedup"]["reads_per_s"] / results["per-read"]["reads_per_s"]
    unique = results["dedup"]["rows"] / results["per-read"]["rows"]
    print(f"dedup / per-read throughput: {ratio:.2f}x (unique rows {100 * unique:.1f}% of all rows)")


if __name__ == "__main__":
    main()

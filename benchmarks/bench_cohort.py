"""Cohort deconvolution: the scoring stage of 10 samples at 30x in one call vs in separate calls.

A separate call scores each unique (window, pattern) row of its own sample; the cohort call
(`tissuebert deconvolve` with many inputs, deconvolve/cohort.py) collapses the rows of all
samples once more and scores each unique row once. Both contenders run in this process on the
same already-read samples, interleaved (separate, cohort, separate, cohort, ...) and repeated;
the script prints the median and the spread (min-max) of each and of their ratio per round, and
checks that the cohort's log-likelihoods equal the separate calls' (fp32).

Cohort: the `demo` simulation preset (104 windows) without BAMs; 10 cfDNA-like mixtures (a blood
background plus 2-5 solid tissues, random sparse Dirichlet weights) at 30x; the model is the
`tiny` preset (the demo's model) or `paper` (--preset paper), untrained: speed does not depend
on the weights. Each mixture is a fresh read draw, so samples share rows only where the same
(window, pattern) occurs in several samples, as in a real cohort on one panel.

    .venv/bin/python benchmarks/bench_cohort.py [--samples 10] [--depth 30] [--repeats 5] [--preset tiny]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _state(preset: str, panel, tissues: list[str]):
    import torch

    from tissuebert.config import config_to_dict, load_config
    from tissuebert.constants import CKPT
    from tissuebert.model.tissuebert import build_model

    config = load_config(preset)
    torch.manual_seed(0)
    model = build_model(config.model, len(tissues), panel).eval()
    state = {CKPT.MODEL: model.state_dict(), CKPT.CONFIG: config_to_dict(config), CKPT.TISSUES: tissues,
             CKPT.PANEL_HASH: panel.panel_hash(), CKPT.EPOCH: 0, CKPT.GLOBAL_STEP: 0}
    return model, state


def _mixtures(truth, n: int, seed: int) -> list[dict[str, float]]:
    """Blood-dominated mixtures: 70-95% blood cell types, the rest 2-5 solid tissues."""
    rng = np.random.default_rng(seed)
    blood = [t for t in truth.tissues if t.startswith("Blood")]
    solid = [t for t in truth.tissues if t not in blood]
    out = []
    for _ in range(n):
        share = rng.uniform(0.05, 0.3)
        props = dict(zip(blood, (1 - share) * rng.dirichlet(np.ones(len(blood)))))
        picked = rng.choice(solid, size=int(rng.integers(2, 6)), replace=False)
        props.update(zip(picked, share * rng.dirichlet(np.ones(len(picked)))))
        out.append(props)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--depth", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="tiny", help="model preset: tiny (the demo's) or paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import torch

    from tissuebert.deconvolve.cohort import unique_cohort_rows
    from tissuebert.deconvolve.run import score_reads
    from tissuebert.deconvolve.sample import SampleInput
    from tissuebert.prepare import build_panel, read_sample_windows
    from tissuebert.simulate import load_truth, simulate_cohort, simulate_mixture

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cohort = simulate_cohort(work / "cohort", seed=args.seed, preset="demo", write_bam=False)
        truth = load_truth(cohort)
        panel = build_panel(cohort / "genome.fa", cohort / "regions.bed", cohort / "CpG.bed.gz")
        samples = []
        for k, props in enumerate(_mixtures(truth, args.samples, args.seed)):
            pat = simulate_mixture(cohort, props, depth=args.depth, seed=args.seed + k, out_path=work / f"m{k}.pat.gz")
            reads = read_sample_windows(pat, "pat", panel, collapse=True)
            samples.append(SampleInput(panel, reads.window_idx.astype(np.int64), reads.calls,
                                       reads.counts.astype(np.int64), str(pat)))
    model, state = _state(args.preset, panel, list(truth.tissues))
    kw = dict(device="cpu", precision="fp32", model=model)
    score_reads(state, panel, samples[0].window_idx[:256], samples[0].calls[:256], **kw)  # warm-up (oneDNN kernels)

    def separate() -> list[np.ndarray]:
        return [score_reads(state, panel, s.window_idx, s.calls, **kw)[1] for s in samples]

    def together():
        rows = unique_cohort_rows(samples)
        return rows, score_reads(state, panel, rows.window_idx, rows.calls, **kw)[1]

    times: dict[str, list[float]] = {"separate": [], "cohort": []}
    for _ in range(args.repeats):  # interleaved: A B A B ... so both see the same machine load
        t0 = time.perf_counter()
        sep = separate()
        t1 = time.perf_counter()
        rows, ll = together()
        t2 = time.perf_counter()
        times["separate"].append(t1 - t0)
        times["cohort"].append(t2 - t1)
    worst = max(float(np.abs(ll[inv] - s).max()) for inv, s in zip(rows.inverse, sep))
    per_sample_rows = sum(len(s.window_idx) for s in samples)
    reads = sum(int(s.counts.sum()) for s in samples)
    ratios = [a / b for a, b in zip(times["separate"], times["cohort"])]
    result = {"samples": args.samples, "depth": args.depth, "preset": args.preset, "threads": args.threads,
              "window_reads": reads, "rows_separate": per_sample_rows, "rows_cohort": rows.n_unique,
              "row_ratio": per_sample_rows / rows.n_unique, "max_abs_loglik_diff": worst,
              "separate_s": times["separate"], "cohort_s": times["cohort"], "speedup_per_round": ratios}
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.samples} mixtures at {args.depth:g}x on {panel.n_windows} windows, {args.preset} model, "
          f"{args.threads} threads, fp32: {reads:,} window-reads")
    print(f"  rows scored: separate calls {per_sample_rows:,} (each sample's unique rows), cohort {rows.n_unique:,} "
          f"({per_sample_rows / rows.n_unique:.2f}x fewer)")
    for name in ("separate", "cohort"):
        v = times[name]
        print(f"  {name:>8}: median {med[name]:.2f} s (min {min(v):.2f}, max {max(v):.2f}; {len(v)} rounds)")
    print(f"  scoring-stage speed-up: median {statistics.median(ratios):.2f}x (per round {min(ratios):.2f}-"
          f"{max(ratios):.2f}x); largest |loglik difference| {worst:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

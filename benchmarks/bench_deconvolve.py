"""Deconvolution with the paper-size model: scoring every read vs each unique (window, pattern) once.

Three parts, each mode in its own process so that its peak RSS is its own:

1. Unique-pattern fraction, full size: a ~7,100-window panel (simulate preset `small`, 4,100
   regions) and a cfDNA-like mixture of all 22 tissues at 30x, 100x and 500x (100x: ~1.0 M
   fragments, ~1.2 M window-reads). Each file is read with identical (window, calls) rows
   collapsed: rows, unique rows, reading reads/s, peak RSS.
2. End to end with the paper model (19.3 M parameters, untrained: speed does not depend on the
   weights) on a 100x mixture of a panel cut to --e2e-regions regions, in three modes:
     per-read : read_sample_windows(collapse=False), every row scored
     dedup    : read_sample_windows(collapse=True), unique rows scored once, weighted by count
   both at the default inference settings (precision auto, cache-sized CPU chunks, SDPA), and
   the rate of the inference path as it was before those settings (fp32, batches of 256,
   explicit attention) on --baseline-rows rows.
3. Each full sample of part 1, projected from the measured parts: reading time (part 1)
   + rows / scoring rate (part 2) + EM time scaled by rows (part 2). On this 2-core CPU the
   per-read paper-model run of 1.2 M rows would take hours, so it is projected, not run.

    .venv/bin/python benchmarks/bench_deconvolve.py [--e2e-regions 24] [--threads 2]
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

DEPTHS = (30, 100, 500)
PANEL_REGIONS = 4100  # ~7,100 windows: the 100x mixture has ~1.0 M fragments
# a panel-only cohort: one shallow sample per tissue (the mixtures draw from the truth, not from samples)
COHORT = dict(preset="small", write_bam=False, depth_min=1.0, depth_max=1.0, samples_per_tissue=1.0,
              min_samples_per_tissue=1, split_fractions=(1.0, 0.0, 0.0))


def _cohort(out: Path, regions: int, seed: int) -> Path:
    from tissuebert.simulate import simulate_cohort

    return simulate_cohort(out, seed=seed, regions=regions, **COHORT)


def _mixture(cohort: Path, depth: float, seed: int, out: Path) -> Path:
    from tissuebert.simulate import simulate_mixture

    tissues = json.loads((cohort / "simulate.json").read_text())["tissues"]
    return simulate_mixture(cohort, {t: 1.0 / len(tissues) for t in tissues}, depth=depth, seed=seed, out_path=out)


def _panel(cohort: Path):
    from tissuebert.prepare import build_panel

    return build_panel(cohort / "genome.fa", cohort / "regions.bed", cohort / "CpG.bed.gz")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mode_read(args: argparse.Namespace) -> dict:
    from tissuebert.prepare import read_sample_windows

    panel = _panel(Path(args.cohort))
    t0 = time.perf_counter()
    reads = read_sample_windows(args.mix, "pat", panel, collapse=True)
    took = time.perf_counter() - t0
    return {"reads_in": reads.stats["reads_in"], "rows": int(reads.counts.sum()), "unique": reads.n_rows,
            "read_s": took, "peak_rss_mb": _rss_mb()}


def _paper_state(panel, tissues: list[str]):
    import torch

    from tissuebert.config import config_to_dict, load_config
    from tissuebert.constants import CKPT
    from tissuebert.model.tissuebert import build_model

    config = load_config("paper")
    torch.manual_seed(0)
    model = build_model(config.model, len(tissues), panel).eval()
    state = {CKPT.MODEL: model.state_dict(), CKPT.CONFIG: config_to_dict(config), CKPT.TISSUES: tissues,
             CKPT.PANEL_HASH: panel.panel_hash(), CKPT.EPOCH: 0, CKPT.GLOBAL_STEP: 0}
    return model, state


def mode_score(args: argparse.Namespace) -> dict:
    import numpy as np

    from tissuebert.deconvolve import proportions_from_loglik, score_reads
    from tissuebert.inference import predict as infer
    from tissuebert.inference.device import resolve_device
    from tissuebert.prepare import read_sample_windows

    cohort = Path(args.cohort)
    panel = _panel(cohort)
    tissues = json.loads((cohort / "simulate.json").read_text())["tissues"]
    model, state = _paper_state(panel, tissues)
    if args.mode == "baseline":  # the path before this work: fp32, batches of 256, explicit attention
        infer.CPU_CHUNK_ELEMENTS = 1 << 62
        for layer in model.layers:
            layer.attention = "math"
    # warm-up outside the timing (oneDNN builds its kernels on the first calls), the same in every mode
    warm = read_sample_windows(args.mix, "pat", panel, collapse=True)
    score_reads(state, panel, warm.window_idx[:64], warm.calls[:64], device=args.device, model=model, batch_size=256,
                precision="fp32" if args.mode == "baseline" else "auto")
    t0 = time.perf_counter()
    reads = read_sample_windows(args.mix, "pat", panel, collapse=args.mode == "dedup")
    t1 = time.perf_counter()
    window_idx, calls = reads.window_idx, reads.calls
    precision = "auto"
    if args.mode == "baseline":
        window_idx, calls = window_idx[: args.baseline_rows], calls[: args.baseline_rows]
        precision = "fp32"
    _, loglik = score_reads(state, panel, window_idx, calls, device=args.device, precision=precision, model=model,
                            batch_size=256)
    t2 = time.perf_counter()
    out = {"mode": args.mode, "rows_scored": int(window_idx.shape[0]), "reads": int(reads.counts.sum()),
           "read_s": t1 - t0, "score_s": t2 - t1, "score_rows_s": window_idx.shape[0] / (t2 - t1),
           "precision": infer.resolve_precision(precision, resolve_device(args.device)),
           "device": str(resolve_device(args.device))}
    if args.mode != "baseline":
        res = proportions_from_loglik(loglik, reads.counts, tissues, method="em", n_boot=0)
        t3 = time.perf_counter()
        out.update(em_s=t3 - t2, total_s=t3 - t0, reads_per_s=out["reads"] / (t3 - t0),
                   max_prop_error=float(np.abs(res.proportions - 1 / len(tissues)).max()))
    out["peak_rss_mb"] = _rss_mb()
    return out


def _child(mode: str, cohort: Path, mix: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--mode", mode, "--cohort", str(cohort), "--mix", str(mix),
           "--threads", str(args.threads), "--baseline-rows", str(args.baseline_rows), "--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"bench_deconvolve: mode {mode} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--e2e-regions", type=int, default=24, help="regions of the end-to-end panel (part 2)")
    parser.add_argument("--baseline-rows", type=int, default=768, help="rows scored by the old inference path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--mode", choices=["read", "per-read", "dedup", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--cohort", help=argparse.SUPPRESS)
    parser.add_argument("--mix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(mode_read(args) if args.mode == "read" else mode_score(args)))
        return
    results: dict = {"depths": {}, "e2e": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big = _cohort(work / "panel", PANEL_REGIONS, args.seed)
        n_windows = json.loads((big / "simulate.json").read_text())["n_windows"]
        print(f"part 1: unique (window, pattern) rows, {n_windows}-window panel, 22-tissue even mixture")
        for depth in DEPTHS:
            mix = _mixture(big, depth, args.seed + depth, work / f"mix{depth}.pat.gz")
            r = _child("read", big, mix, args)
            results["depths"][depth] = r
            print(f"  {depth:>4}x: {r['reads_in']:>9,} fragments, {r['rows']:>9,} window-reads, {r['unique']:>9,} unique "
                  f"({100 * r['unique'] / r['rows']:.1f}%); read + collapse {r['read_s']:.1f} s "
                  f"({r['reads_in'] / r['read_s']:,.0f} fragments/s), peak RSS {r['peak_rss_mb']:.0f} MB")
            mix.unlink()
        small = _cohort(work / "e2e", args.e2e_regions, args.seed)
        mix = _mixture(small, 100, args.seed + 1, work / "e2e100.pat.gz")
        e2e_windows = json.loads((small / "simulate.json").read_text())["n_windows"]
        print(f"part 2: paper model end to end, 100x mixture on {e2e_windows} windows")
        for mode in ("per-read", "dedup", "baseline"):
            r = _child(mode, small, mix, args)
            results["e2e"][mode] = r
            if mode == "baseline":
                print(f"  old inference path (fp32, batch 256, explicit attention): {r['score_rows_s']:.1f} rows/s "
                      f"on {r['rows_scored']} rows")
                continue
            print(f"  {mode:>8}: {r['reads']} window-reads, {r['rows_scored']} scored ({r['device']}, {r['precision']}); read "
                  f"{r['read_s']:.2f} s, score {r['score_s']:.1f} s ({r['score_rows_s']:.1f} rows/s), EM "
                  f"{r['em_s']:.2f} s; {r['reads_per_s']:.1f} reads/s; peak RSS {r['peak_rss_mb']:.0f} MB")
    per, ded, base = (results["e2e"][m] for m in ("per-read", "dedup", "baseline"))
    ratio = ded["reads_per_s"] / per["reads_per_s"]
    print(f"  measured dedup / per-read: {ratio:.2f}x (unique rows {100 * ded['rows_scored'] / per['rows_scored']:.1f}%)")
    results["e2e_ratio"] = ratio
    rate = per["score_rows_s"]
    em_per_row = per["em_s"] / per["rows_scored"]
    print(f"part 3: projected for each full sample of part 1 (score at {rate:.1f} rows/s, old path {base['score_rows_s']:.1f})")
    for depth, r in results["depths"].items():
        t_per = r["read_s"] + r["rows"] / rate + em_per_row * r["rows"]
        t_ded = r["read_s"] + r["unique"] / rate + em_per_row * r["unique"]
        t_old = r["read_s"] + r["rows"] / base["score_rows_s"] + em_per_row * r["rows"]
        r.update(projected_per_read_s=t_per, projected_dedup_s=t_ded, projected_old_per_read_s=t_old)
        print(f"  {depth:>4}x ({r['rows']:,} window-reads): per-read {t_per / 3600:.2f} h, dedup {t_ded / 3600:.2f} h "
              f"-> {t_per / t_ded:.2f}x; vs the old per-read path ({t_old / 3600:.1f} h) {t_old / t_ded:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

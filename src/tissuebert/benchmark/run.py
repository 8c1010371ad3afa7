"""`tissuebert benchmark`: in-silico mixtures of held-out test reads, every method side by side."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tissuebert import __version__
from tissuebert.atomic import atomic_dir
from tissuebert.benchmark.design import DEPTHS, SPIKE_LEVELS, Mixture, background_weights, design_mixtures, draw_reads
from tissuebert.benchmark.metrics import accuracy_metrics, limit_of_detection
from tissuebert.benchmark.pool import ReadPool, build_pool
from tissuebert.config import dump_config
from tissuebert.constants import LOGREG, OUT
from tissuebert.deconvolve.baselines import MarkerReference, build_references
from tissuebert.deconvolve.methods import NEEDS, REGISTRY, method_names
from tissuebert.errors import TissueBertError
from tissuebert.evaluate.evaluate import to_json
from tissuebert.evaluate.oracle import cohort_of_store
from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.inference.logreg import fit_logreg
from tissuebert.progress import get_logger, track
from tissuebert.store.store import Store

log = get_logger("benchmark")
ORACLE = "oracle"


def estimate(method: str, pool: ReadPool, reference: MarkerReference, rows: np.ndarray, counts: np.ndarray, *,
             max_iter: int, tol: float) -> np.ndarray:
    """Proportions of the mixture (pool rows, multiplicities) by one method of the table."""
    entry = REGISTRY[method]
    return entry.fit(pool.evidence(entry.needs, rows, reference), counts, max_iter=max_iter, tol=tol)


def _check_methods(methods: list[str]) -> None:
    known = tuple(REGISTRY)  # the listed methods and the benchmark-only ones (oracle)
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise TissueBertError(f"unknown method {unknown[0]!r}; choose from {', '.join(known)}")


def _summaries(mixtures: list[Mixture], est: dict[str, np.ndarray], tissues: list[str]) -> dict[str, Any]:
    truth = np.stack([m.truth for m in mixtures])
    kind = np.array([m.kind for m in mixtures])
    depth = np.array([m.depth for m in mixtures])
    out: dict[str, Any] = {}
    for method, values in est.items():
        per_depth = {}
        for d in sorted(set(depth[kind == "dirichlet"])):
            sel = (kind == "dirichlet") & (depth == d)
            per_depth[f"{d:g}x"] = accuracy_metrics(values[sel], truth[sel], tissues)
        lod = {}
        for t in sorted({m.spike_tissue for m in mixtures if m.kind == "spike"}):
            sel = np.array([m.kind == "spike" and m.spike_tissue == t for m in mixtures])
            levels = np.array([m.level for m in mixtures])[sel]
            lod[tissues[t]] = limit_of_detection(levels, values[sel, t])
        spike = kind == "spike"
        out[method] = {"per_depth": per_depth, "lod": lod,
                       "spike_in": accuracy_metrics(values[spike], truth[spike], tissues) if spike.any() else None}
    return out


def _estimates_tsv(mixtures: list[Mixture], est: dict[str, np.ndarray], tissues: list[str]) -> str:
    lines = ["mixture\tkind\tdepth\tspike_tissue\tlevel\treplicate\tmethod\ttissue\ttrue\testimate"]
    for method, values in est.items():
        for m in mixtures:
            spike = tissues[m.spike_tissue] if m.spike_tissue >= 0 else ""
            for t, name in enumerate(tissues):
                lines.append(f"{m.mixture_id}\t{m.kind}\t{m.depth:g}\t{spike}\t{m.level:g}\t{m.replicate}\t{method}\t"
                             f"{name}\t{m.truth[t]:.6f}\t{values[m.mixture_id, t]:.6f}")
    return "\n".join(lines) + "\n"


def model_vs_logreg_notes(methods: dict[str, Any]) -> list[str]:
    """A plain sentence when the model's EM is not more accurate (MAE) than logreg's at some depth."""
    if "em" not in methods or LOGREG.METHOD not in methods:
        return []
    em, rival = methods["em"]["per_depth"], methods[LOGREG.METHOD]["per_depth"]
    worse = [d for d in em if d in rival and not em[d]["mae"] < rival[d]["mae"]]
    if not worse:
        return []
    detail = ", ".join(f"{d}: {em[d]['mae']:.4f} vs {rival[d]['mae']:.4f}" for d in worse)
    return [f"The transformer adds nothing over logreg on this data: its mixture MAE (em) is not below "
            f"logreg's at {', '.join(worse)} ({detail})."]


def run_benchmark(checkpoint: str | Path | dict, store: str | Path | Store, out: str | Path, *,
                  methods: list[str] | None = None, truth_dir: str | Path | None = None,
                  background: list[str] | None = None, spike_levels=SPIKE_LEVELS, replicates: int = 10,
                  n_dirichlet: int = 100, depths=DEPTHS, spike_depth: float = 30.0, seed: int = 0,
                  device: str | None = None, precision: str = "auto", force: bool = False) -> dict[str, Any]:
    """Build the mixtures, estimate each by every method, write benchmark.json, estimates.tsv,
    plots and report.html to ``out``; returns the benchmark.json content.

    Depth = reads per panel window: a mixture at 30x has 30 x n_windows reads.
    """
    from tissuebert.benchmark.report import verdict, write_report

    started = time.time()
    loaded = Checkpoint.of(checkpoint)
    state, name = loaded.state, loaded.name
    store = store if isinstance(store, Store) else Store.open(store)
    config = loaded.config
    truth_dir = Path(truth_dir) if truth_dir is not None else cohort_of_store(store)
    methods = list(methods or method_names())
    _check_methods(methods)
    if truth_dir is not None and ORACLE not in methods:
        methods.append(ORACLE)
    needs = {REGISTRY[m].needs for m in methods}
    rival = None
    if NEEDS.LOGREG in needs:  # fit like the checkpoint's training: same split, min_cpgs and seed
        rival = fit_logreg(store, min_cpgs=config.data.min_cpgs, seed=config.train.seed)
    pool = build_pool(state, store, truth_dir=truth_dir if NEEDS.ORACLE in needs else None, device=device,
                      precision=precision, logreg=rival)
    if NEEDS.ORACLE in needs and pool.oracle_lik is None:  # no truth found: nothing to be the oracle
        methods = [m for m in methods if REGISTRY[m].needs != NEEDS.ORACLE]
    reference = build_references(store, "train")
    tissues = pool.tissues
    available = np.array([rows.size > 0 for rows in pool.rows_of_tissue])
    bg = background_weights(tissues, background)
    mixtures = design_mixtures(len(tissues), bg, available, spike_levels=spike_levels, replicates=replicates,
                               n_dirichlet=n_dirichlet, depths=depths, spike_depth=spike_depth, seed=seed)
    rng = np.random.default_rng(seed + 1)
    est = {m: np.zeros((len(mixtures), len(tissues))) for m in methods}
    seconds = {m: 0.0 for m in methods}
    n_windows = store.panel.n_windows
    for mix in track(mixtures, "mixtures"):
        rows, counts = draw_reads(mix, pool.rows_of_tissue, int(round(mix.depth * n_windows)), rng)
        for method in methods:
            t0 = time.perf_counter()
            # 1e-6 is ample for proportions scored to 1e-3, and EM creeps on boundary solutions
            est[method][mix.mixture_id] = estimate(method, pool, reference, rows, counts,
                                                   max_iter=config.eval.em_max_iter, tol=max(config.eval.em_tol, 1e-6))
            seconds[method] += time.perf_counter() - t0
    result = {
        "version": __version__, "checkpoint": name, "store": str(store.root), "truth": str(truth_dir) if truth_dir else None,
        "tissues": tissues, "background": {t: float(w) for t, w in zip(tissues, bg) if w > 0},
        "n_windows": n_windows, "pool_reads": pool.n_reads, "n_mixtures": len(mixtures),
        "design": {"spike_levels": list(spike_levels), "replicates": replicates, "spike_depth": spike_depth,
                   "n_dirichlet": n_dirichlet, "depths": list(depths), "seed": seed,
                   "depth_unit": "reads per panel window"},
        "methods": _summaries(mixtures, est, tissues),
        "seconds_per_mixture": {m: s / len(mixtures) for m, s in seconds.items()},
        "logreg_fit": rival.settings if rival is not None else None,
    }
    result["notes"] = model_vs_logreg_notes(result["methods"])
    result["verdict"] = verdict(result)
    log.info("%s", result["verdict"])
    for note in result["notes"]:
        log.warning("%s", note)
    with atomic_dir(out, force=force) as tmp:
        (tmp / OUT.BENCHMARK_TSV).write_text(_estimates_tsv(mixtures, est, tissues))
        write_report(tmp, result, mixtures, est)
        result["elapsed_s"] = time.time() - started
        (tmp / OUT.BENCHMARK_JSON).write_text(to_json(result))
        dump_config(config, tmp / OUT.CONFIG)
    return result

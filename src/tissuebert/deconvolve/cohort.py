"""Many samples, one table: every sample's reads are loaded (identical reads collapsed), the
(window, pattern) rows of the whole cohort are collapsed once more, each unique row is scored by
the model (and by logreg) once, and each sample's methods run on its share of the scores.

Outputs (docs/deconvolution.md): one folder per sample (``proportions.tsv``, ``.png``,
``posteriors.tsv.gz``) -- the output folder itself when there is one sample -- and, for every
run, the cohort tables ``cohort_proportions.tsv`` (long), ``cohort_matrix.tsv`` (wide) and
``tissuebert_mqc.tsv`` (MultiQC custom content), and ``run.json`` with the warnings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tissuebert.atomic import atomic_dir, check_output
from tissuebert.config import Config, dump_config
from tissuebert.constants import CKPT, OUT
from tissuebert.deconvolve.baselines import build_references
from tissuebert.deconvolve.inputs import InputSpec
from tissuebert.deconvolve.methods import NEEDS, NO_REFERENCE_HINT, Evidence, check_available, run_method
from tissuebert.deconvolve.output import result_warning_lines, write_posteriors, write_results, write_run_info
from tissuebert.deconvolve.result import DeconvResult
from tissuebert.deconvolve.run import logreg_loglik, score_reads
from tissuebert.deconvolve.sample import SampleInput, _no_cpg_index, infer_format, load_sample
from tissuebert.deconvolve.shards import (
    check_shard_spec,
    gather_shards,
    run_identity,
    score_shard,
    shard_bounds,
    shard_path,
)
from tissuebert.deconvolve.truth import compare, match_truth, read_truth, write_truth_table
from tissuebert.deconvolve.warnings import result_warnings
from tissuebert.dist import DistInfo, all_gather_cat, barrier, setup_distributed, teardown_distributed
from tissuebert.errors import TissueBertError
from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.inference.device import resolve_device, resolve_precision
from tissuebert.inference.predict import unique_rows
from tissuebert.io.formats import ORDINAL_FORMATS
from tissuebert.progress import get_logger
from tissuebert.store.panel import Panel
from tissuebert.store.store import Store

log = get_logger("deconvolve")

# measured (docs/training.md, "Counting the whole split"): on the 22-tissue `small` cohort the same
# checkpoint's EM mixture MAE was 0.053 uncalibrated and 0.0080 calibrated
UNCALIBRATED = ("{checkpoint} is not calibrated: the model's per-tissue lean goes straight into the "
                "proportions (mixture error several times higher where measured); run `tissuebert calibrate` "
                "and deconvolve with the checkpoint it writes")


@dataclass
class CohortRows:
    """The cohort's unique (window, packed calls) rows and, per sample, where its rows landed."""

    window_idx: np.ndarray  # (U,) int64
    calls: np.ndarray  # (U, B) uint8
    inverse: list[np.ndarray] = field(default_factory=list)  # per sample (R_s,) indices into the U rows

    @property
    def n_unique(self) -> int:
        return int(self.window_idx.shape[0])


def unique_cohort_rows(samples: list[SampleInput]) -> CohortRows:
    """Collapse identical (window, calls) rows across samples; a sample's rows are ``rows[inverse[s]]``."""
    window = np.concatenate([s.window_idx for s in samples]).astype(np.int64)
    calls = np.concatenate([np.asarray(s.calls, np.uint8) for s in samples])
    first, inverse = unique_rows(window, calls)
    bounds = np.cumsum([0] + [len(s.window_idx) for s in samples])
    return CohortRows(window[first], calls[first], [inverse[a:b] for a, b in zip(bounds[:-1], bounds[1:])])


def _load_all(specs: list[InputSpec], *, state, store: Store | None, cpg_index, reference, min_cpgs: int
              ) -> list[SampleInput]:
    panel: Panel | None = None
    if store is None and state is not None and any(s.path is not None for s in specs):
        from tissuebert.prepare import panel_from_coordinates

        if CKPT.PANEL_WINDOWS not in state:
            raise TissueBertError("the checkpoint lacks its panel's window coordinates", hint="pass --store STORE")
        if reference is None:
            raise TissueBertError("--reference FASTA is needed to rebuild the model's panel",
                                  hint="or pass --store STORE")
        if cpg_index is None:  # refuse a .pat/.beta the checkpoint cannot place before the panel is rebuilt
            for spec in specs:
                if spec.path is not None and (spec.fmt or infer_format(spec.path)) in ORDINAL_FORMATS:
                    _no_cpg_index(state, spec.path)
        panel = panel_from_coordinates(reference, state[CKPT.PANEL_WINDOWS], cpg_index)  # once for the cohort
    out = []
    for spec in specs:
        if spec.store_sample is not None and store is None:
            raise TissueBertError(f"--sample {spec.store_sample} needs --store")
        sample = load_sample(state=state, input_path=spec.path, fmt=spec.fmt, cpg_index=cpg_index,
                             reference=reference, store=store, sample_id=spec.store_sample, min_cpgs=min_cpgs,
                             panel=panel)
        log.info("%s: %d reads (%d unique rows)", spec.sample_id, int(sample.counts.sum()), len(sample.counts))
        out.append(sample)
    return out


def deconvolve_cohort(out: Path, specs: list[InputSpec], *, checkpoint: Path | None, methods: list[str],
                      cpg_index: Path | None = None, reference: Path | None = None, store_root: Path | None = None,
                      atlas: Path | None = None, n_boot: int | None = None, seed: int = 0,
                      temperature: float | None = None, posteriors: bool = True, device: str | None = None,
                      precision: str = "auto", force: bool = False, truth: Path | None = None,
                      shard: tuple[int, int] | None = None, from_shards: Path | None = None
                      ) -> dict[str, list[DeconvResult]] | None:
    """Deconvolve every sample of ``specs`` by each method and write the per-sample and cohort outputs.

    Under ``torchrun`` (WORLD_SIZE > 1) the model's scoring is shared by the ranks (see
    :func:`_score_shared`); rank 0 then fits, writes and returns the results, the other ranks
    return None. ``shard=(I, N)`` only scores shard I of N of the unique rows into ``out`` (a
    folder the tasks share) and returns None; ``from_shards`` takes the scores from such a
    folder instead of scoring (deconvolve/shards.py)."""
    chosen = check_available(methods, checkpoint=checkpoint is not None, store=store_root is not None,
                             atlas=atlas is not None)
    truth_table = read_truth(truth) if truth is not None else None  # its format checked before any work
    needs = {m.needs for m in chosen}
    need_model = NEEDS.MODEL in needs
    _check_split(shard, from_shards, out, need_model=need_model, force=force)
    loaded = Checkpoint.load(checkpoint) if checkpoint is not None else None
    state = loaded.state if loaded is not None else None
    config = loaded.config if loaded is not None else Config()
    n_boot = config.eval.bootstrap if n_boot is None else n_boot
    ci_level = config.eval.ci_level
    store = Store.open(store_root) if store_root is not None else None
    only_atlas = atlas is not None and all(m.from_atlas is not None for m in chosen)
    samples = [] if only_atlas else _load_all(specs, state=state, store=store, cpg_index=cpg_index,
                                              reference=reference, min_cpgs=config.data.min_cpgs)
    rows = unique_cohort_rows(samples) if samples else None
    if rows is not None and len(samples) > 1:
        total = sum(len(s.counts) for s in samples)
        log.info("cohort of %d samples: %d unique rows of %d (%.1f%%) to score", len(samples), rows.n_unique, total,
                 100 * rows.n_unique / max(total, 1))
    # each kind of evidence is prepared once for the cohort, then cut per sample
    loglik = None
    sources: dict[str, tuple[list[str], np.ndarray]] = {}  # needs -> (tissues, cohort rows' log-likelihoods)
    run_warnings = []
    if need_model and temperature is None and not state.get(CKPT.CLASS_BIAS) and not state.get(CKPT.TEMPERATURE):
        run_warnings.append(UNCALIBRATED.format(checkpoint=checkpoint))
        log.warning(run_warnings[-1])
    split_info = {}
    if need_model and (shard is not None or from_shards is not None):  # the SLURM array's two steps
        run = run_identity(checkpoint, state, samples[0].panel.panel_hash(), specs, samples, rows,
                           temperature=temperature, batch_size=config.eval.batch_size)
        if shard is not None:
            precision = resolve_precision(precision, resolve_device(device))
            score_shard(out, shard, state, samples[0].panel, rows, run, checkpoint=checkpoint,
                        sources=[s.source for s in specs], temperature=temperature, device=device,
                        precision=precision, force=force)
            return None
        loglik, precision, n_shards = gather_shards(from_shards, run, rows.n_unique)
        split_info = {"scored_in_shards": {"folder": str(from_shards), "shards": n_shards}}
        sources[NEEDS.MODEL] = (list(state[CKPT.TISSUES]), loglik)
    elif need_model:
        info = setup_distributed()  # under torchrun: each rank scores a share of the unique rows
        if info.enabled and device in (None, "auto"):
            device = str(info.device)
        precision = resolve_precision(precision, resolve_device(device))  # resolved once, recorded in run.json
        loglik = _score_shared(state, samples[0].panel, rows, info, temperature=temperature, device=device,
                               precision=precision, batch_size=config.eval.batch_size)
        if not info.is_main:
            return None  # rank 0 deconvolves and writes
        sources[NEEDS.MODEL] = (list(state[CKPT.TISSUES]), loglik)
    if NEEDS.LOGREG in needs:
        from tissuebert.inference.logreg import fit_logreg

        logreg_fit = fit_logreg(store, min_cpgs=config.data.min_cpgs, seed=config.train.seed)  # once per cohort
        sources[NEEDS.LOGREG] = (logreg_fit.tissues, logreg_loglik(logreg_fit, samples[0].panel, rows.window_idx,
                                                                    rows.calls))
    references = build_references(store) if store is not None and NEEDS.MARKERS in needs else None
    fit_kw = dict(n_boot=n_boot, ci_level=ci_level, seed=seed, max_iter=config.eval.em_max_iter, tol=config.eval.em_tol)
    results: dict[str, list[DeconvResult]] = {}
    for k, spec in enumerate(specs):
        sample = samples[k] if samples else None
        evidence = {kind: Evidence(tissues, loglik=ll[rows.inverse[k]]) for kind, (tissues, ll) in sources.items()}
        if references is not None and sample is not None:
            evidence[NEEDS.MARKERS] = Evidence(references.tissues, reads=(sample.panel, sample.window_idx,
                                                                          sample.calls), reference=references)
        res: list[DeconvResult] = []
        for method in chosen:
            if atlas is not None and method.from_atlas is not None:
                res.append(method.from_atlas(atlas, spec.path, n_boot, ci_level, seed, spec.fmt, cpg_index, reference))
            elif method.needs not in evidence:
                raise TissueBertError(f"method {method.name} builds its reference from a store's training split",
                                      hint=NO_REFERENCE_HINT)
            else:
                res.append(run_method(method, evidence[method.needs], sample.counts, **fit_kw))
        for r in res:
            r.warnings = result_warnings(r)
            for text in r.warnings:
                log.warning("%s, %s: %s", spec.sample_id, r.method, text)
        results[spec.sample_id] = res
    vs_truth = None
    if truth_table is not None:
        first = next(r for res in results.values() for r in res)
        matched = match_truth(truth_table, [s.sample_id for s in specs], first.tissues, truth)
        vs_truth = compare(results, matched)
    _write(out, specs, samples, rows, results, state=state, config=config, loglik=loglik if posteriors else None,
           vs_truth=vs_truth, truth_path=truth,
           info={"checkpoint": None if checkpoint is None else str(checkpoint), "methods": methods,
                 "precision": precision if need_model else None, "n_boot": n_boot, "ci_level": ci_level,
                 "seed": seed, "unique_rows_scored": rows.n_unique if rows is not None else 0,
                 "rows": int(sum(len(s.counts) for s in samples)), **split_info, "run_warnings": run_warnings},
           force=force)
    return results


def _check_split(shard: tuple[int, int] | None, from_shards: Path | None, out: Path, *, need_model: bool,
                 force: bool) -> None:
    """Refuse a --shard / --from-shards run that cannot work, before any input is read."""
    if shard is None and from_shards is None:
        return
    flag = "--shard" if shard is not None else "--from-shards"
    if shard is not None and from_shards is not None:
        raise TissueBertError("--shard scores, --from-shards gathers: give one of them",
                              hint="first every --shard I/N task, then one --from-shards run")
    if not need_model:
        raise TissueBertError(f"{flag} splits the model's scoring, and no chosen --method uses the model",
                              hint="add a model method (e.g. --method em), or drop the flag")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TissueBertError(f"{flag} runs as one process per task, not under torchrun",
                              hint="use either a SLURM array (--shard/--from-shards) or torchrun")
    if shard is not None:
        check_shard_spec(shard)
        check_output(shard_path(out, *shard), force=force)  # refused before the inputs are read
    elif Path(from_shards).resolve() == Path(out).resolve():
        raise TissueBertError("--from-shards and --out name the same folder", path=out,
                              hint="write the tables to another --out")


def _score_shared(state, panel: Panel, rows: CohortRows, info: DistInfo, *, temperature, device, precision,
                  batch_size: int) -> np.ndarray:
    """(U, T) log-likelihoods of the cohort's unique rows; with several ranks each scores its shard
    and every rank receives all of them (a gather of equal-sized, padded blocks)."""
    if not info.enabled:
        _, loglik = score_reads(state, panel, rows.window_idx, rows.calls, temperature=temperature, device=device,
                                precision=precision, batch_size=batch_size)
        return loglik
    bounds = shard_bounds(rows.n_unique, batch_size, info.world_size)
    start, stop = bounds[info.rank]
    log.info("rank %d of %d: unique rows %d-%d of %d", info.rank, info.world_size, start, stop, rows.n_unique)
    n_tissues = len(state[CKPT.TISSUES])
    part = np.zeros((0, n_tissues), np.float32)
    if stop > start:
        _, part = score_reads(state, panel, rows.window_idx[start:stop], rows.calls[start:stop],
                              temperature=temperature, device=device, precision=precision, batch_size=batch_size)
    width = max(b - a for a, b in bounds)
    block = torch.zeros((width, n_tissues), dtype=torch.float32)
    block[:stop - start] = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32))
    if info.device.type == "cuda":  # NCCL gathers GPU tensors
        block = block.to(info.device)
    (gathered,) = all_gather_cat([block], info)
    gathered = gathered.cpu().numpy().reshape(info.world_size, width, n_tissues)
    loglik = np.concatenate([gathered[r, :b - a] for r, (a, b) in enumerate(bounds)])
    barrier(info)
    teardown_distributed(info)
    return loglik


def _write(out: Path, specs: list[InputSpec], samples: list[SampleInput], rows: CohortRows | None,
           results: dict[str, list[DeconvResult]], *, state, config: Config, loglik, info: dict[str, Any],
           force: bool, vs_truth: tuple[list, dict] | None = None, truth_path: Path | None = None) -> None:
    single = len(specs) == 1
    with atomic_dir(out, force=force) as tmp:
        folders = write_results(tmp, results)
        if loglik is not None:
            for k, spec in enumerate(specs):
                sample = samples[k]
                write_posteriors(folders[spec.sample_id] / OUT.POSTERIORS, sample.panel, list(state[CKPT.TISSUES]),
                                 sample.window_idx, loglik[rows.inverse[k]], sample.counts, sample.calls)
        samples_info = [{"sample": s.sample_id, "input": s.source, "folder": "." if single else s.sample_id,
                         "n_reads": results[s.sample_id][0].n_reads if results[s.sample_id] else 0,
                         "warnings": result_warning_lines(results[s.sample_id])} for s in specs]
        info = dict(info)
        if vs_truth is not None:
            write_truth_table(tmp / OUT.VS_TRUTH, vs_truth[0])
            info["truth"] = {"file": str(truth_path), "per_sample": vs_truth[1]}
        if single:  # the one-sample layout of earlier versions
            info.update(input=specs[0].source, n_reads=samples_info[0]["n_reads"])
        write_run_info(tmp, info, samples_info)
        if state is not None:
            dump_config(config, tmp / OUT.CONFIG)

"""`tissuebert evaluate`: score a store split with a checkpoint and write metrics, tables and plots."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tissuebert.atomic import atomic_dir
from tissuebert.config import dump_config
from tissuebert.constants import LOGREG, OUT
from tissuebert.data.eval_set import EvalReads, build_eval_reads
from tissuebert.errors import StoreError
from tissuebert.evaluate.calibration import (
    expected_calibration_error,
    nll,
    reliability_bins,
    softmax_probs,
)
from tissuebert.evaluate.oracle import cohort_of_store, oracle_loglik_for_reads
from tissuebert.evaluate.plots import plot_reliability
from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.inference.device import resolve_device
from tissuebert.inference.likelihood import calibrated, class_prior, likelihoods_from_logits
from tissuebert.inference.predict import score_rows
from tissuebert.metrics import classification_metrics, write_confusion
from tissuebert.progress import get_logger
from tissuebert.store.store import Store

log = get_logger("evaluate")


@dataclass
class ScoredSplit:
    reads: EvalReads
    logits: np.ndarray  # (R, T) float32


def score_split(state: dict[str, Any], store: Store, split: str, *, name: str = "checkpoint",
                max_reads_per_sample: int | None = None, seed: int = 0, batch_size: int | None = None,
                device: str | None = None, precision: str = "auto") -> ScoredSplit:
    """Logits of the checkpoint's model for every (or a fixed random subset of) read of ``split``."""
    checkpoint = Checkpoint(state, name)
    checkpoint.check_compatible(tissues=store.tissues, panel_hash=store.panel_hash)
    config = checkpoint.config
    reads = build_eval_reads(store, split, max_reads_per_sample=max_reads_per_sample, seed=seed,
                             min_cpgs=config.data.min_cpgs)
    if reads.n_reads == 0:
        raise StoreError(f"split {split!r} has no reads", path=store.root, hint="choose a split the sample sheet fills")
    log.info("scoring %d reads of %d %s samples on %s", reads.n_reads, len(reads.samples), split,
             resolve_device(device))
    logits = score_rows(checkpoint, store.panel, reads.window_idx, reads.calls, batch_size=batch_size,
                        device=device, precision=precision, what=f"scoring {split} reads", unit="reads")
    return ScoredSplit(reads, logits)


def per_sample_calls(scored: ScoredSplit, tissues: list[str], prior: np.ndarray, temperature: float) -> list[dict]:
    """File-level calls: the tissue maximising the summed read log-likelihoods (a pure sample's
    maximum-likelihood tissue, prior divided out), and the read majority vote."""
    # log p(read | t) up to a per-read constant: the posterior with the training prior divided out
    loglik = likelihoods_from_logits(scored.logits, prior, temperature)
    preds = scored.logits.argmax(axis=1)
    rows = []
    for pos, rec in enumerate(scored.reads.samples):
        mask = scored.reads.sample_pos == pos
        if not mask.any():
            continue
        ml_call = int(loglik[mask].sum(axis=0).argmax())
        votes = np.bincount(preds[mask], minlength=len(tissues))
        rows.append({"sample_id": rec.sample_id, "tissue": rec.tissue, "n_reads": int(mask.sum()),
                     "read_accuracy": float(np.mean(preds[mask] == rec.tissue_id)),
                     "call": tissues[ml_call], "correct": ml_call == rec.tissue_id,
                     "vote_call": tissues[int(votes.argmax())], "vote_share": float(votes.max() / mask.sum())})
    return rows


def _per_tissue_tsv(metrics: dict, tissues: list[str], others: dict[str, dict | None] | None = None) -> str:
    """One row per tissue: the model's precision / recall / F1 / support, then NAME_precision /
    NAME_recall / NAME_f1 of each other classifier in ``others`` (logreg, oracle) that ran."""
    others = {k: v for k, v in (others or {}).items() if v is not None}
    extra = "".join(f"\t{k}_precision\t{k}_recall\t{k}_f1" for k in others)
    lines = ["tissue\tprecision\trecall\tf1\tsupport" + extra]
    for t, name in enumerate(tissues):
        row = (f"{name}\t{metrics['precision'][t]:.6f}\t{metrics['recall'][t]:.6f}\t"
               f"{metrics['f1'][t]:.6f}\t{int(metrics['support'][t])}")
        for other in others.values():
            row += f"\t{other['precision'][t]:.6f}\t{other['recall'][t]:.6f}\t{other['f1'][t]:.6f}"
        lines.append(row)
    return "\n".join(lines) + "\n"


def _confusion_tsv(cm: np.ndarray, tissues: list[str]) -> str:
    """Row-normalised confusion: row = true tissue, columns = share of its reads called each tissue."""
    cm = np.asarray(cm, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    lines = ["true\\predicted\t" + "\t".join(tissues)]
    for t, name in enumerate(tissues):
        lines.append(name + "\t" + "\t".join(f"{v:.6f}" for v in norm[t]))
    return "\n".join(lines) + "\n"


def _per_sample_tsv(rows: list[dict]) -> str:
    cols = ["sample_id", "tissue", "n_reads", "read_accuracy", "call", "correct", "vote_call", "vote_share"]
    out = ["\t".join(cols)]
    for row in rows:
        out.append("\t".join(f"{row[c]:.6f}" if isinstance(row[c], float) else str(row[c]) for c in cols))
    return "\n".join(out) + "\n"


def split_metrics(scored: ScoredSplit, tissues: list[str], *, temperature: float, ece_bins: int) -> dict:
    """Every number of the evaluation for already scored reads (also used for oracle rows)."""
    targets = scored.reads.labels
    probs = softmax_probs(scored.logits, temperature)
    cls = classification_metrics(probs.argmax(axis=1), targets, len(tissues))  # lists, confusion [true, pred]
    bins = reliability_bins(probs, targets, ece_bins)
    return {"classification": cls, "bins": bins,
            "ece": expected_calibration_error(probs, targets, ece_bins),
            "nll": nll(scored.logits, targets, temperature)}


def evaluate_split(checkpoint: str | Path | dict[str, Any], store: str | Path | Store, split: str,
                   out: str | Path, *, force: bool = False, max_reads_per_sample: int | None = None,
                   seed: int = 0, device: str | None = None, batch_size: int | None = None,
                   precision: str = "auto", truth_dir: str | Path | None = None, logreg: bool = True) -> dict:
    """Evaluate ``checkpoint`` on ``split`` of ``store`` and write DIR/{metrics.json, per_tissue.tsv,
    confusion.tsv, confusion.png, reliability.png, per_sample.tsv}. Returns the metrics dict.

    On a simulated store (``truth_dir``, or found from the store's provenance) the same reads are
    also classified by the oracle (exact likelihoods, uniform prior): metrics["oracle"] and the
    oracle_* columns of per_tissue.tsv are the Bayes-optimal ceiling.

    With ``logreg`` (default) the simple rival is fit on the store's train split (same
    ``min_cpgs`` and seed as the checkpoint's training) and scores the same reads:
    metrics["logreg"] and the logreg_* columns; metrics["notes"] says plainly when the model's
    balanced accuracy is not above it.
    """
    loaded = Checkpoint.of(checkpoint)
    state, name = loaded.state, loaded.name
    store = store if isinstance(store, Store) else Store.open(store)
    tissues = loaded.tissues
    config = loaded.config
    scored = score_split(state, store, split, name=name, max_reads_per_sample=max_reads_per_sample, seed=seed,
                         batch_size=batch_size, device=device, precision=precision)
    logits, temperature, bias = calibrated(state, scored.logits)
    scored = ScoredSplit(scored.reads, logits)
    res = split_metrics(scored, tissues, temperature=temperature, ece_bins=config.eval.ece_bins)
    cls = res["classification"]
    samples = per_sample_calls(scored, tissues, class_prior(state), temperature)
    rival = _logreg_metrics(store, scored, tissues, config) if logreg else None
    oracle = _oracle_metrics(store, scored, tissues, truth_dir, config.eval.ece_bins)
    metrics = {
        "checkpoint": name, "store": str(store.root), "split": split, "n_reads": int(scored.reads.n_reads),
        "n_samples": len(samples), "temperature": temperature,
        "class_bias": None if bias is None else {t: float(b) for t, b in zip(tissues, bias)},
        "accuracy": cls["accuracy"], "balanced_accuracy": cls["balanced_accuracy"], "macro_f1": cls["macro_f1"],
        "ece": res["ece"], "nll": res["nll"],
        "sample_accuracy": float(np.mean([s["correct"] for s in samples])) if samples else float("nan"),
        "per_tissue": {t: {"precision": float(cls["precision"][i]), "recall": float(cls["recall"][i]),
                           "f1": float(cls["f1"][i]), "support": int(cls["support"][i])}
                       for i, t in enumerate(tissues)},
        "per_sample": samples,
    }
    summary = ("accuracy", "balanced_accuracy", "macro_f1", "ece", "nll")
    notes = []
    if rival is not None:
        metrics["logreg"] = {**{k: rival[k] for k in summary}, "fit": rival["fit"]}
        if not metrics["balanced_accuracy"] > rival["balanced_accuracy"]:
            notes.append(f"The transformer adds nothing over logreg on this data: its balanced accuracy "
                         f"{metrics['balanced_accuracy']:.4f} is not above logreg's {rival['balanced_accuracy']:.4f}.")
    if oracle is not None:
        metrics["oracle"] = {k: oracle[k] for k in summary}
    metrics["notes"] = notes
    with atomic_dir(out, force=force) as tmp:
        (tmp / OUT.METRICS).write_text(to_json(metrics))
        dump_config(config, tmp / OUT.CONFIG)  # the checkpoint's resolved config, beside its results
        (tmp / OUT.PER_TISSUE).write_text(_per_tissue_tsv(cls, tissues, {LOGREG.METHOD: rival, "oracle": oracle}))
        (tmp / OUT.CONFUSION_TSV).write_text(_confusion_tsv(cls["confusion"], tissues))
        (tmp / OUT.PER_SAMPLE).write_text(_per_sample_tsv(samples))
        write_confusion(np.asarray(cls["confusion"]), tissues, tmp / OUT.CONFUSION_PNG, None,
                        title=f"{split}: accuracy {cls['accuracy']:.3f}, macro F1 {cls['macro_f1']:.3f} (rows normalised)")
        plot_reliability(res["bins"], tmp / OUT.RELIABILITY_PNG, res["ece"])
    log.info("%s: accuracy %.4f, balanced %.4f, macro F1 %.4f, ECE %.4f over %d reads", split, metrics["accuracy"],
             metrics["balanced_accuracy"], metrics["macro_f1"], metrics["ece"], metrics["n_reads"])
    for note in notes:
        log.warning("%s", note)
    return metrics


def _logreg_metrics(store: Store, scored: ScoredSplit, tissues: list[str], config) -> dict | None:
    """The simple rival fit on the store's train split, on the same reads as the model."""
    from tissuebert.inference.logreg import fit_logreg

    try:
        fit = fit_logreg(store, min_cpgs=config.data.min_cpgs, seed=config.train.seed)
    except StoreError as exc:  # e.g. an evaluation-only store without a train split
        log.warning("logreg skipped: %s", exc)
        return None
    logits = fit.logits(store.panel, scored.reads.window_idx, scored.reads.calls)
    res = split_metrics(ScoredSplit(scored.reads, logits), tissues, temperature=1.0, ece_bins=config.eval.ece_bins)
    cls = res["classification"]
    log.info("logreg on the same reads: accuracy %.4f, balanced %.4f, macro F1 %.4f", cls["accuracy"],
             cls["balanced_accuracy"], cls["macro_f1"])
    fit_info = {k: fit.settings[k] for k in ("n_reads", "lr", "seconds", "split")}
    return {**{k: cls[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "precision", "recall", "f1")},
            "ece": res["ece"], "nll": res["nll"], "fit": fit_info}


def _oracle_metrics(store: Store, scored: ScoredSplit, tissues: list[str], truth_dir: str | Path | None,
                    ece_bins: int) -> dict | None:
    truth_dir = truth_dir if truth_dir is not None else cohort_of_store(store)
    if truth_dir is None:
        return None
    loglik = oracle_loglik_for_reads(truth_dir, store, scored.reads.window_idx, scored.reads.calls)
    res = split_metrics(ScoredSplit(scored.reads, loglik), tissues, temperature=1.0, ece_bins=ece_bins)
    cls = res["classification"]
    log.info("oracle on the same reads: accuracy %.4f, macro F1 %.4f", cls["accuracy"], cls["macro_f1"])
    return {**{k: cls[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "precision", "recall", "f1")},
            "ece": res["ece"], "nll": res["nll"]}


def to_json(data: Any) -> str:
    """Strict JSON (NaN -> null, numpy -> Python) so any JSON reader accepts the file."""
    return json.dumps(_clean(data), indent=2, allow_nan=False, default=_json_default) + "\n"


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")

"""`tissuebert calibrate`: fit temperature scaling on the validation split and store it in a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tissuebert.atomic import check_output
from tissuebert.constants import CKPT
from tissuebert.evaluate.calibration import expected_calibration_error, fit_bias_corrected, fit_temperature, nll, softmax_probs
from tissuebert.evaluate.evaluate import score_split
from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.progress import get_logger
from tissuebert.store.store import Store

log = get_logger("calibrate")


def calibrated_path(checkpoint: str | Path) -> Path:
    """Default output: ``best_acc.pt`` -> ``best_acc.calibrated.pt`` beside it."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.calibrated{path.suffix}")


def calibration_report(logits: np.ndarray, targets: np.ndarray, temperature: float, *, bins: int,
                       split: str = "val") -> dict[str, Any]:
    """NLL and ECE before and after the fitted ``temperature``, and warnings: a temperature that
    does not lower the NLL is replaced by 1 (kept only if it helps); a worse ECE is reported."""
    nll_before, nll_fitted = nll(logits, targets, 1.0), nll(logits, targets, temperature)
    warnings = []
    if not nll_fitted < nll_before:
        # the fit is on these same reads, so this only happens when T = 1 is already the optimum
        # (or the optimiser failed): keep the raw logits rather than a temperature that does not help
        warnings.append(f"temperature {temperature:.4f} does not lower the {split} NLL ({nll_before:.4f} -> "
                        f"{nll_fitted:.4f}): kept T = 1")
        temperature = 1.0
    report = {
        "split": split, "temperature": temperature,
        "nll_before": nll_before, "nll_after": nll(logits, targets, temperature),
        "ece_before": expected_calibration_error(softmax_probs(logits, 1.0), targets, bins),
        "ece_after": expected_calibration_error(softmax_probs(logits, temperature), targets, bins),
    }
    if report["ece_after"] > report["ece_before"]:
        warnings.append(f"calibration makes the {split} ECE worse ({report['ece_before']:.4f} -> "
                        f"{report['ece_after']:.4f}) while lowering the NLL: the temperature is kept for its "
                        "likelihoods (what deconvolution uses); read the reliability diagram of `evaluate`")
    report["warnings"] = warnings
    for text in warnings:
        log.warning("%s", text)
    return report


def calibrate_checkpoint(checkpoint: str | Path, store: str | Path | Store, *, split: str = "val",
                         out: str | Path | None = None, force: bool = False,
                         max_reads_per_sample: int | None = None, seed: int = 0, device: str | None = None,
                         batch_size: int | None = None, precision: str = "auto") -> dict[str, Any]:
    """Fit T on ``split`` and write the checkpoint with ``CKPT.TEMPERATURE`` set (to ``out``,
    default ``<name>.calibrated.pt``; overwriting needs ``force``). Returns NLL/ECE before and after.

    The fit starts from the raw logits (T = 1), whatever temperature the input checkpoint holds.
    """
    out = calibrated_path(checkpoint) if out is None else Path(out)
    check_output(out, force=force)
    loaded = Checkpoint.load(checkpoint)
    state = loaded.state
    store = store if isinstance(store, Store) else Store.open(store)
    config = loaded.config
    scored = score_split(state, store, split, name=str(checkpoint), max_reads_per_sample=max_reads_per_sample,
                         seed=seed, batch_size=batch_size, device=device, precision=precision)
    logits, targets = scored.logits, scored.reads.labels
    temperature = fit_temperature(logits, targets)
    # for deconvolution: temperature and a per-tissue bias fitted together (calibration.fit_bias_corrected)
    bc_temperature, class_bias = fit_bias_corrected(logits, targets, len(state[CKPT.TISSUES]))
    bins = config.eval.ece_bins
    report = calibration_report(logits, targets, temperature, bins=bins, split=split)
    report["n_reads"] = int(scored.reads.n_reads)
    temperature = report["temperature"]
    state = dict(state)
    state[CKPT.TEMPERATURE] = temperature
    state[CKPT.CLASS_BIAS] = {"temperature": bc_temperature, "bias": [float(b) for b in class_bias]}
    report["bias_corrected"] = {"temperature": bc_temperature, "bias": [float(b) for b in class_bias]}
    state[CKPT.CALIBRATION] = report
    Checkpoint(state, str(out)).save(out)
    log.info("temperature %.4f on %d %s reads: NLL %.4f -> %.4f, ECE %.4f -> %.4f; wrote %s", temperature,
             report["n_reads"], split, report["nll_before"], report["nll_after"], report["ece_before"],
             report["ece_after"], out)
    return {**report, "checkpoint": str(out)}

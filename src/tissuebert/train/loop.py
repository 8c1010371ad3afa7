"""The training loop: setup -> fit (epochs of optimiser steps) -> validate -> checkpoint.

One optimiser step reads top to bottom: seed dropout -> accum_steps micro-batches of forward /
backward (``no_sync`` on all but the last under DDP) -> unscale -> clip (pre-clip norm kept) ->
non-finite check (agreed by all ranks) -> optimiser step or skip -> schedule -> log -> stop?
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tissuebert import progress as progress_lines
from tissuebert.config import Config, config_to_dict
from tissuebert.constants import (
    CKPT,
    CKPT_BEST_ACC,
    CKPT_BEST_LOSS,
    CKPT_EPOCH_FMT,
    CKPT_LAST,
    CKPT_MID_EPOCH,
    METH_M,
    METH_NONE,
    RUN,
)
from tissuebert.dist import all_gather_cat, all_reduce_sum, barrier, setup_distributed, teardown_distributed
from tissuebert.errors import TissueBertError
from tissuebert.inference.checkpoint import save_checkpoint
from tissuebert.inference.device import autocast_context
from tissuebert.inference.predict import predict_logits
from tissuebert.metrics import ConfusionAccumulator, metrics_from_confusion
from tissuebert.progress import duration_text, get_logger, make_progress
from tissuebert.train.batches import BatchStream
from tissuebert.train.logs import RunLogger, peak_cpu_mem_mb, peak_gpu_mem_mb
from tissuebert.train.runlock import RunLock
from tissuebert.train.setup import Run, setup_run
from tissuebert.train.signals import LAUNCHER_GONE, StopRequest, requeue_slurm_job, slurm_job_id
from tissuebert.train.state import Position, capture_rng, step_seed

log = get_logger("train")

# Fault injection for tests of the recovery paths (documented in docs/training.md):
# TISSUEBERT_FAULT_NAN_STEPS="3,4"  -> the loss of these global steps becomes NaN
# TISSUEBERT_FAULT_SPIKE_STEPS="3"  -> the loss of these global steps is multiplied by 1e6 (finite)
# TISSUEBERT_FAULT_SIGNAL="5:SIGUSR1" -> after global step 5, rank 0 sends itself that signal
# TISSUEBERT_FAULT_KILL="2:best_acc.pt.tmp" -> rank 0 SIGKILLs itself at that stage of epoch 2's end
#   (stages in EPOCH_END_STAGES order: "logged", then "<file>.tmp" and "<file>" for each checkpoint written)
ENV_FAULT_NAN = "TISSUEBERT_FAULT_NAN_STEPS"
ENV_FAULT_SPIKE = "TISSUEBERT_FAULT_SPIKE_STEPS"
ENV_FAULT_SIGNAL = "TISSUEBERT_FAULT_SIGNAL"
ENV_FAULT_KILL = "TISSUEBERT_FAULT_KILL"
GUARD_WARMUP = 10  # accepted steps before the spike test applies (the averages need a few values)
GUARD_EMA = 0.9


class NonFiniteError(TissueBertError):
    """Too many skipped steps, or a non-finite validation loss: the run stopped (exit 2)."""


def run_training(config: Config, store: str | Path, out: str | Path, *, resume: str | None = None,
                 force: bool = False, init_from: str | Path | None = None, overrides: Collection[str] = ()) -> dict:
    """Train (or resume) a model; returns the final validation metrics.

    ``overrides``: the ``section.key`` names given with --set (a resume takes its limits from them).

    If the run was stopped by a signal or a stop file, the metrics of the last finished epoch
    are returned with ``"stopped": <reason>`` and ``"requeued": bool`` added.
    """
    info = setup_distributed()
    # thread count and deterministic mode are process-wide: restore them for in-process callers
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    finished = False
    try:
        # rank 0 alone writes, so rank 0 alone holds the folder's lock, before anything is read
        with RunLock(out) if info.is_main else contextlib.nullcontext():
            run = setup_run(config, store, out, resume=resume, force=force, info=info, init_from=init_from,
                            overrides=overrides)
            result = fit(run)
            barrier(info)  # every rank is done with its collectives and rank 0 with its writes
        finished = True
        return result
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        teardown_distributed(info, clean=finished)


# --------------------------------------------------------------------------------------------
def fit(run: Run) -> dict:
    cfg, pos = run.config.train, run.position
    if pos.epoch >= cfg.epochs:
        log.info("run already finished (%d epochs); nothing to do", cfg.epochs)
        return dict(run.last_val_metrics)
    replay = run.resumed_from is not None or run.restarted  # drop log rows past the starting point
    logger = RunLogger(run.run_dir, run.store.tissues, enabled=run.info.is_main,
                       resume_epoch=pos.epoch if replay else None, resume_step=pos.global_step if replay else None)
    faults = _faults()
    run_start = time.time() - pos.epoch_sums.get("run_seconds", 0.0)
    try:
        with StopRequest(run.run_dir / RUN.STOP, watch_launcher=True) as stop:
            while pos.epoch < cfg.epochs:
                reason = train_epoch(run, logger, stop, faults)
                if reason is not None:
                    return _stop(run, reason)
                end_epoch(run, logger, run_start, faults)
    finally:
        logger.close()
    return dict(run.last_val_metrics)


def train_epoch(run: Run, logger: RunLogger, stop: StopRequest, faults: dict) -> str | None:
    """Optimiser steps from the current position to the epoch's end; returns a stop reason or None."""
    cfg, pos, info = run.config.train, run.position, run.info
    run.model.train()
    stream = BatchStream(run.sampler, epoch=pos.epoch, first_step=pos.step * cfg.accum_steps,
                         n_steps=(run.steps_per_epoch - pos.step) * cfg.accum_steps, batch_size=cfg.batch_size,
                         rank=info.rank, device=info.device)
    with stream, _progress(run) as advance:
        t_epoch = time.time()
        while pos.step < run.steps_per_epoch:
            loss, grad_norm, correct, seen, bad = optimizer_step(run, stream, faults)
            lr = run.optimizer.param_groups[0]["lr"]
            if run.scheduler.last_epoch < run.total_steps - 1:  # OneCycleLR refuses to step past its end
                run.scheduler.step()
            sums = pos.epoch_sums
            sums["loss"] += loss if not bad else 0.0
            sums["correct"] += correct
            sums["seen"] += seen
            sums["skipped"] += 1.0 if bad else 0.0
            pos.step += 1
            if pos.global_step % cfg.log_every == 0 or pos.step == run.steps_per_epoch:
                logger.step({"global_step": pos.global_step, "epoch": pos.epoch + 1, "loss": loss, "lr": lr,
                             "grad_norm": grad_norm, "skipped_steps": int(sums["skipped"])})
            advance(loss if not bad else None)
            _fire_signal_fault(faults, pos.global_step, info.is_main)
            too_many = _too_many_skipped(pos, cfg)
            if too_many:
                _save_mid_epoch(run, time.time() - t_epoch)
                raise NonFiniteError(
                    f"{too_many} at global step {pos.global_step}; stopped with a checkpoint",
                    path=run.ckpt_dir / CKPT_MID_EPOCH,
                    hint="in a new run lower train.max_lr or use train.precision=fp32 or bf16, or check the store "
                         "for corrupt reads; to accept more skips, resume with --resume auto and a larger "
                         "--set train.max_nonfinite=N / train.max_skipped_frac=F, or with --set "
                         "train.spike_factor=null if the warnings show finite spikes")
            reason = stop.requested
            if all_reduce_sum([1.0 if reason else 0.0], info)[0] > 0:
                _save_mid_epoch(run, time.time() - t_epoch)
                return reason or "stop requested on another rank"
        pos.epoch_sums["seconds"] += time.time() - t_epoch
    return None


def _too_many_skipped(pos: Position, cfg) -> str | None:
    """Why the run must stop for its skipped steps (counted across epochs and resumes), or None."""
    what = "skipped (non-finite or exploding loss or gradient)"
    if pos.skipped_in_a_row >= cfg.max_nonfinite:
        return f"{pos.skipped_in_a_row} steps in a row {what} (train.max_nonfinite = {cfg.max_nonfinite})"
    if pos.skipped_total > cfg.max_nonfinite and pos.skipped_total > cfg.max_skipped_frac * pos.global_step:
        return (f"{pos.skipped_total} of {pos.global_step} steps {what}: more than train.max_nonfinite = "
                f"{cfg.max_nonfinite} and than train.max_skipped_frac = {cfg.max_skipped_frac} of all steps")
    return None


def _step_verdict(run: Run, loss: float, grad_norm: float) -> bool:
    """True when a step whose reduced loss and gradient norm are finite must still be skipped (a spike).

    Every rank sees the same all-reduced loss and gradient norm, so every rank decides alike and
    keeps the same averages. Only accepted steps feed the averages: a spike cannot raise them. A
    loss below chance level (ln C) or a gradient norm below the clipping norm is never a spike, so
    a converged model's tiny averages cannot make ordinary steps look like explosions.
    """
    pos, cfg = run.position, run.config.train
    factor = cfg.spike_factor
    accepted = pos.global_step - pos.skipped_total
    grad_known = math.isfinite(grad_norm)  # an fp16 overflow (GradScaler's business) says nothing
    loss_limit = max(factor * pos.loss_avg, math.log(len(run.store.tissues))) if factor else math.inf
    grad_limit = max(factor * pos.grad_norm_avg, cfg.grad_clip) if factor else math.inf
    if accepted >= GUARD_WARMUP and (loss > loss_limit or (grad_known and grad_norm > grad_limit)):
        if run.info.is_main:
            log.warning("global step %d skipped: loss %.4g / gradient norm %.4g against running averages %.4g / "
                        "%.4g (train.spike_factor = %g)", pos.global_step, loss, grad_norm, pos.loss_avg,
                        pos.grad_norm_avg, factor)
        return True
    first = accepted == 0
    pos.loss_avg = loss if first else GUARD_EMA * pos.loss_avg + (1 - GUARD_EMA) * loss
    if grad_known:
        pos.grad_norm_avg = grad_norm if first else GUARD_EMA * pos.grad_norm_avg + (1 - GUARD_EMA) * grad_norm
    return False


def optimizer_step(run: Run, stream: "BatchStream", faults: dict) -> tuple[float, float, float, float, bool]:
    """One optimiser step over accum_steps micro-batches: (mean loss, pre-clip grad norm, correct, seen, skipped).

    A step is skipped (no update, counted) when its loss or gradients are non-finite on any rank,
    or when its loss or gradient norm explodes against the running averages (train.spike_factor).
    """
    cfg, info = run.config.train, run.info
    torch.manual_seed(step_seed(cfg.seed, run.position.global_step, info.rank))  # dropout: pure function of position
    loss_sum, correct, seen = 0.0, 0.0, 0.0
    for micro in range(cfg.accum_steps):
        dna, meth, labels, window = stream.next()
        if micro == 0 and run.position.step == 0 and info.enabled:
            _log_rank_streams(run, dna, meth)
        last = micro == cfg.accum_steps - 1
        # gradients are all-reduced once per optimiser step, on the last micro-batch only
        sync = contextlib.nullcontext() if (last or not info.enabled) else run.model.no_sync()
        with sync:
            loss, logits = _forward_loss(run, dna, meth, window, labels)
            if cfg.count_source == "stream":
                _observe(run, meth, window, labels)
            if run.position.global_step in faults["nan_steps"]:
                loss = loss * float("nan")
            if run.position.global_step in faults["spike_steps"]:
                loss = loss * 1e6
            run.scaler.scale(loss / cfg.accum_steps).backward()
        loss_sum += float(loss.detach())
        correct += float((logits.detach().argmax(dim=1) == labels).sum())
        seen += labels.shape[0]
    run.scaler.unscale_(run.optimizer)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(run.raw_model.parameters(), cfg.grad_clip))
    mean_loss = loss_sum / cfg.accum_steps
    # every rank must take the same decision; gradients are already averaged, losses are not
    bad_local = not math.isfinite(mean_loss) or (not math.isfinite(grad_norm) and not run.scaler.is_enabled())
    loss_total, bad_ranks = all_reduce_sum([mean_loss if not bad_local else 0.0, float(bad_local)], info)
    nonfinite = bad_ranks > 0
    mean_loss = float("nan") if nonfinite else loss_total / info.world_size
    bad = nonfinite or _step_verdict(run, mean_loss, grad_norm)
    pos = run.position
    pos.skipped_total += int(bad)
    pos.skipped_in_a_row = pos.skipped_in_a_row + 1 if bad else 0
    if bad:
        run.scaler.update()  # a scaler (fp16) also lowers its scale on this step
    else:
        run.scaler.step(run.optimizer)  # skips internally when fp16 gradients overflowed
        run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return mean_loss, grad_norm, correct, seen, bad


def _forward_loss(run: Run, dna: torch.Tensor, meth: torch.Tensor, window: torch.Tensor,
                  labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The micro-batch's loss and class logits (B, C).

    With a call head (model.call_head) the masked-call objective applies: during the first
    train.pretrain_steps steps the loss is the masked-call loss alone (masked-methylation
    pre-training), afterwards the classification loss plus train.mask_weight times it. The
    classifier then sees the masked reads; with mask_weight 0 it sees whole reads, and the call
    head's output still enters the loss times 0 (under DDP every parameter must take part).
    """
    cfg = run.config.train
    leave_out = labels if cfg.count_source == "split" and getattr(run.raw_model, "counts", None) is not None else None
    if getattr(run.raw_model, "call_head", None) is None:
        with autocast_context(run.info.device, cfg.precision):
            logits = run.model(dna, meth, window, leave_out=leave_out)  # (B, C)
        return run.loss_fn(logits.float(), labels), logits
    pretraining = run.position.global_step < cfg.pretrain_steps
    weight = 1.0 if pretraining else cfg.mask_weight
    target = None
    if weight > 0:
        meth, target = mask_calls(meth, cfg.mask_prob)
    with autocast_context(run.info.device, cfg.precision):
        logits, call_logits = run.model(dna, meth, window, with_calls=True, leave_out=leave_out)  # (B, C), (B, L, 2)
    class_loss = run.loss_fn(logits.float(), labels)
    hidden = target >= 0 if target is not None else None
    if hidden is None or not bool(hidden.any()):
        call_loss = call_logits.float().sum() * 0.0
    else:
        call_loss = F.cross_entropy(call_logits[hidden].float(), target[hidden])
    if pretraining:
        return call_loss + class_loss * 0.0, logits
    return class_loss + weight * call_loss, logits


def mask_calls(meth: torch.Tensor, prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide each methylation call with probability ``prob`` (drawn from torch's global generator,
    seeded per step, so a resume replays the same masks): (masked tokens, target) with target the
    hidden call (METH_U / METH_M) and -1 at every other token."""
    hide = (meth <= METH_M) & (torch.rand(meth.shape, device=meth.device) < prob)
    target = torch.where(hide, meth, torch.full_like(meth, -1))
    return torch.where(hide, torch.full_like(meth, METH_NONE), meth), target


def _observe(run: Run, meth: torch.Tensor, window: torch.Tensor, labels: torch.Tensor) -> None:
    """Count the micro-batch into the model's count route (model.cpg_counts), after its forward
    pass; under DDP every rank counts every rank's reads, so the tallies stay identical."""
    if getattr(run.raw_model, "counts", None) is None:
        return
    meth, window, labels = all_gather_cat([meth, window, labels.to(meth.device)], run.info)
    run.raw_model.observe(meth, window, labels)


# --------------------------------------------------------------------------------------------
@torch.no_grad()
def validate(run: Run) -> dict[str, Any]:
    """Metrics on the fixed validation set; each rank scores every world_size-th read, then reduce."""
    info, val = run.info, run.val
    rows = np.arange(info.rank, val.n_reads, info.world_size)
    logits = predict_logits(run.raw_model, run.sampler.tables, val.window_idx[rows], val.calls[rows],
                            batch_size=run.config.eval.batch_size, device=info.device,
                            precision=run.config.train.precision)  # (r, C)
    labels = val.labels[rows]
    loss_sum = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), reduction="sum"))
    confusion = ConfusionAccumulator(len(run.store.tissues))
    confusion.update(logits, labels)
    matrix = confusion.compute()  # (C, C), summed over ranks
    loss_sum, count = all_reduce_sum([loss_sum, float(rows.size)], info)
    metrics = metrics_from_confusion(matrix)
    metrics["loss"] = loss_sum / max(count, 1.0)
    return metrics


def end_epoch(run: Run, logger: RunLogger, run_start: float, faults: dict) -> None:
    """Validate, log, write the epoch's checkpoint set, move the position to the next epoch."""
    cfg, pos = run.config.train, run.position
    metrics = validate(run)
    # step losses and skip decisions are already agreed across ranks; read counts are per rank
    correct, seen = all_reduce_sum([pos.epoch_sums["correct"], pos.epoch_sums["seen"]], run.info)
    loss_sum, skipped = pos.epoch_sums["loss"], pos.epoch_sums["skipped"]
    good_steps = max(run.steps_per_epoch - skipped, 1)
    epoch_s = pos.epoch_sums["seconds"]
    elapsed = time.time() - run_start
    epochs_done = pos.epoch + 1
    row = {"epoch": epochs_done, "global_step": pos.global_step,
           "train_loss": loss_sum / good_steps, "train_acc": correct / max(seen, 1.0),
           "val_loss": metrics["loss"], "val_acc": metrics["accuracy"], "val_balanced_acc": metrics["balanced_accuracy"],
           "val_macro_f1": metrics["macro_f1"], "lr": run.optimizer.param_groups[0]["lr"], "epoch_s": epoch_s,
           "elapsed_s": elapsed, "eta_s": elapsed / epochs_done * (cfg.epochs - epochs_done),
           "samples_per_s": seen / max(epoch_s, 1e-9), "peak_gpu_mem_mb": peak_gpu_mem_mb(run.info.device),
           "peak_cpu_mem_mb": peak_cpu_mem_mb(), "skipped_steps": int(skipped)}
    logger.epoch(row, metrics)
    if not math.isfinite(metrics["loss"]):
        # a broken model: no checkpoint of this epoch, no best file chosen from it, a non-zero exit
        raise NonFiniteError(
            f"validation loss is {metrics['loss']} after epoch {epochs_done}: the model is broken; no checkpoint "
            f"was written for this epoch (best_*.pt keep their earlier epochs)", path=run.ckpt_dir,
            hint="start a new run with a lower train.max_lr or train.precision=fp32, or from an earlier "
                 "checkpoint's weights with --init-from")
    log.info("epoch %d/%d  train loss %.4f acc %.3f | val loss %.4f acc %.3f macro-F1 %.3f | lr %.2e | %.1f s, ETA %.0f s",
             epochs_done, cfg.epochs, row["train_loss"], row["train_acc"], row["val_loss"], row["val_acc"],
             row["val_macro_f1"], row["lr"], epoch_s, row["eta_s"])
    run.last_val_metrics = metrics
    improved_loss = metrics["loss"] < run.best_val_loss
    improved_acc = metrics["accuracy"] > run.best_val_acc
    run.best_val_loss = min(run.best_val_loss, metrics["loss"])
    run.best_val_acc = max(run.best_val_acc, metrics["accuracy"])
    pos.epoch, pos.step = pos.epoch + 1, 0
    pos.epoch_sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0, "skipped": 0.0, "seconds": 0.0, "run_seconds": elapsed}
    if run.info.is_main:
        logger.sync()
        _fault_kill(faults, epochs_done, "logged")
        due = [(CKPT_BEST_LOSS, improved_loss), (CKPT_BEST_ACC, improved_acc),
               (CKPT_EPOCH_FMT.format(epochs_done), epochs_done % cfg.checkpoint_every == 0), (CKPT_LAST, True)]
        write_epoch_set(run, [name for name, wanted in due if wanted], faults, epochs_done)


def write_epoch_set(run: Run, names: list[str], faults: dict, epochs_done: int) -> None:
    """Write one state under every name, last.pt last: last.pt is the commit point of the epoch.

    A resume continues from last.pt (or a newer mid-epoch checkpoint). Killed before last.pt is
    renamed into place, the run replays the epoch from the previous last.pt and rewrites the
    same files with the same contents; killed after, nothing of the epoch is missing. The logs
    were written and synced before any of these.
    """
    state = checkpoint_state(run, mid_epoch=False)
    state[CKPT.EPOCH_SET] = names  # lets a resume that finds last.pt lost complete the set
    for name in names:
        save_checkpoint(run.ckpt_dir / name, state,
                        before_rename=lambda stage=f"{name}.tmp": _fault_kill(faults, epochs_done, stage))
        _fault_kill(faults, epochs_done, name)
    (run.ckpt_dir / CKPT_MID_EPOCH).unlink(missing_ok=True)  # superseded by last.pt


# --------------------------------------------------------------------------------------------
def checkpoint_state(run: Run, *, mid_epoch: bool) -> dict[str, Any]:
    pos = run.position
    return {
        CKPT.EPOCH: pos.epoch, CKPT.GLOBAL_STEP: pos.global_step, CKPT.MID_EPOCH: mid_epoch,
        CKPT.MODEL: run.raw_model.state_dict(), CKPT.OPTIMIZER: run.optimizer.state_dict(),
        CKPT.SCHEDULER: run.scheduler.state_dict(), CKPT.SCALER: run.scaler.state_dict(),
        CKPT.SAMPLER: pos.to_dict(), CKPT.RNG: capture_rng(),
        CKPT.BEST_LOSS: run.best_val_loss, CKPT.BEST_ACC: run.best_val_acc, CKPT.RESUME_COUNT: run.resume_count,
        CKPT.CONFIG: config_to_dict(run.config), CKPT.VAL_METRICS: run.last_val_metrics,
        CKPT.TISSUES: list(run.store.tissues), CKPT.PANEL_HASH: run.store.panel_hash,
        CKPT.PANEL_WINDOWS: run.store.panel.coordinates(), CKPT.CLASS_PRIOR: run.sampler.class_prior,
        CKPT.TEMPERATURE: 1.0, CKPT.NONFINITE: pos.skipped_total,
        CKPT.INIT_FROM: None if run.init_from is None else str(run.init_from),
    }


def _save_mid_epoch(run: Run, epoch_seconds: float) -> None:
    """Called on every rank (a collective): the checkpoint holds the read counts of all ranks."""
    sums = run.position.epoch_sums
    sums["seconds"] += epoch_seconds
    own = sums["correct"], sums["seen"]
    sums["correct"], sums["seen"] = all_reduce_sum(list(own), run.info)
    if run.info.is_main:
        save_checkpoint(run.ckpt_dir / CKPT_MID_EPOCH, checkpoint_state(run, mid_epoch=True))
        log.info("wrote %s at epoch %d, step %d", run.ckpt_dir / CKPT_MID_EPOCH, run.position.epoch + 1,
                 run.position.step)
    sums["correct"], sums["seen"] = own


def _stop(run: Run, reason: str) -> dict:
    """After a mid-epoch checkpoint: requeue under SLURM.

    A graceful stop comes after at least one step, so the next resume starts further on and the
    resume cap (resumes in a row without progress) never refuses it.
    """
    result = dict(run.last_val_metrics)
    result["stopped"] = reason
    result["requeued"] = False
    job = slurm_job_id()
    if run.info.is_main:
        (run.run_dir / RUN.STOP).unlink(missing_ok=True)
        if reason.startswith(LAUNCHER_GONE):  # torchrun was killed (scancel, kill): not a time limit
            log.warning("torchrun is gone: this worker stopped with a checkpoint and the job is not requeued")
        elif job:
            result["requeued"] = requeue_slurm_job(job)
        log.info("stopped (%s) at epoch %d, step %d; continue with --resume auto", reason,
                 run.position.epoch + 1, run.position.step)
    return result


def _log_rank_streams(run: Run, dna: torch.Tensor, meth: torch.Tensor) -> None:
    """Rank 0 logs a digest of every rank's first batch of the epoch: they must all differ."""
    digest = hashlib.sha1(dna.cpu().numpy().tobytes() + meth.cpu().numpy().tobytes()).hexdigest()[:12]
    digests = [None] * run.info.world_size
    torch.distributed.all_gather_object(digests, digest)
    log.info("epoch %d first-batch digest per rank: %s", run.position.epoch + 1, " ".join(digests))


def _faults() -> dict:
    def steps(env: str) -> set[int]:
        return {int(s) for s in os.environ.get(env, "").split(",") if s.strip()}

    sig_step, sig_name = None, None
    if os.environ.get(ENV_FAULT_SIGNAL):
        step_text, sig_name = os.environ[ENV_FAULT_SIGNAL].split(":")
        sig_step = int(step_text)
    kill = None
    if os.environ.get(ENV_FAULT_KILL):
        epoch_text, stage = os.environ[ENV_FAULT_KILL].split(":", 1)
        kill = (int(epoch_text), stage)
    return {"nan_steps": steps(ENV_FAULT_NAN), "spike_steps": steps(ENV_FAULT_SPIKE), "signal_step": sig_step,
            "signal": sig_name, "kill": kill}


def _fault_kill(faults: dict, epochs_done: int, stage: str) -> None:
    if faults["kill"] == (epochs_done, stage):
        os.kill(os.getpid(), signal.SIGKILL)


def _fire_signal_fault(faults: dict, global_step: int, is_main: bool) -> None:
    if is_main and faults["signal_step"] == global_step:
        os.kill(os.getpid(), getattr(signal, faults["signal"]))


@contextlib.contextmanager
def _progress(run: Run):
    """A progress bar with ETA on a terminal (rank 0); without one (SLURM logs, nohup), a
    :class:`_Heartbeat` line every ``progress.HEARTBEAT_S`` seconds."""
    with make_progress() as progress:
        enabled = run.info.is_main and not progress.disable
        task = progress.add_task(f"epoch {run.position.epoch + 1}/{run.config.train.epochs}",
                                 total=run.steps_per_epoch, completed=run.position.step) if enabled else None
        if enabled:
            yield lambda loss=None: progress.advance(task)
        elif run.info.is_main:
            yield _Heartbeat(run)
        else:
            yield lambda loss=None: None


RATE_PROBE_STEPS = 20  # once per process, the measured step rate and the run's length after this many steps


class _Heartbeat:
    """Progress as log lines: running loss beside the chance level (ln T, the loss of a uniform
    guess), step rate and the run's ETA; after the first RATE_PROBE_STEPS steps of a process, one
    line with the measured time per step and what it makes of the whole run (on a CPU the
    ``paper`` preset's run is days: better to know in a minute)."""

    probed = False  # once per process, not per epoch

    def __init__(self, run: Run) -> None:
        self.run = run
        self.start = self.last = time.time()
        self.steps = 0
        self.losses: list[float] = []
        self.chance = math.log(len(run.store.tissues))

    def __call__(self, loss: float | None = None) -> None:
        self.steps += 1
        if loss is not None:
            self.losses.append(float(loss))
        now = time.time()
        pos, run = self.run.position, self.run
        per_step = (now - self.start) / self.steps
        left = run.total_steps - pos.global_step
        if not _Heartbeat.probed and self.steps == RATE_PROBE_STEPS:
            _Heartbeat.probed = True
            log.info("measured %.2f s per optimiser step over %d steps: the remaining %d steps take ~%s at this rate",
                     per_step, self.steps, left, duration_text(per_step * left))
        if now - self.last >= progress_lines.HEARTBEAT_S:
            running = sum(self.losses) / len(self.losses) if self.losses else float("nan")
            log.info("epoch %d/%d step %d/%d | loss %.4f (chance ln T = %.4f) | %.2f steps/s | run ETA %s",
                     pos.epoch + 1, run.config.train.epochs, pos.step, run.steps_per_epoch, running, self.chance,
                     1.0 / per_step, duration_text(per_step * left))
            self.last, self.losses = now, []

"""Fit the simple rival (model/logreg.py) on a store split, with the transformer's own sampler.

It lives beside inference, not in ``train/``: evaluate, deconvolve and the benchmark fit it on
demand to score the same reads as the model, and none of them may import the training code.

Micro-batch k is drawn exactly as the training loop draws micro-batch k of a run with batch
``batch_size``, accumulation 1 and one process (epoch ``k // steps_per_epoch``, step
``k % steps_per_epoch`` of :class:`~tissuebert.data.sampler.TrainSampler`, no CpG dropout), so
"logreg vs the model at equal training reads" compares fits on the same reads. The loss is plain
cross-entropy (no label smoothing: deconvolution needs its probabilities) and the optimiser is
torch's Adam, with L2 through its ``weight_decay``.

Defaults, measured with benchmarks/bench_logreg.py (one thread; test split, every read; balanced
accuracy; oracle on the same reads: demo 0.202, ``small`` 0.1025):

- lr: the best constant lr depends on the reads per window. Demo store (104 windows), 96,000 reads:
  1e-4 0.196, 1e-3 0.194-0.195, 1e-2 0.188-0.192, 0.1 0.171; 480,000 reads: 1e-4 / 3e-4 0.198,
  1e-3 0.194-0.196, 1e-2 0.191. ``small`` (1,717 windows), 192,000 reads: 3e-4 0.072, 1e-3 0.074,
  1e-2 0.075-0.076, 3e-2 0.076; 1 M reads: 3e-3 0.088, 1e-2 0.088, 3e-2 0.086. A first rule,
  2 x windows / reads, gave demo 96,000: 2.2e-3 -> 0.195-0.198; small 192,000: 0.018 -> 0.075,
  but far too small an lr on 12-window test stores, where every window is in every batch
  (under-fit: right ranking, flat likelihoods, EM pushed to the extremes). ``lr=None`` ->
  :func:`auto_lr` = 2 / (steps in which a window is drawn): the same 0.018 on small, 1.3x the
  first rule on the demo store (2.9e-3 at 96,000 reads, not re-measured), 5x on 12 windows.
- Temperature: fit on 16,384 fresh sampler reads after training and folded into the weights.
- L2 (Adam's weight_decay) 1e-5, 1e-4, 1e-3 at lr 3e-4 / 1e-3, demo 480,000 reads: within 0.002 of
  none, so none.
- Linear decay of the lr to 0: at equal lr, +0.001-0.003 on the demo store at 480,000 reads.
- Budget ``n_reads=None``: 3 passes over the eligible reads, at most 768,000 (demo: 482,304 reads,
  0.198-0.200 = 98-99% of the oracle; small: 768,000).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tissuebert.constants import LOGREG
from tissuebert.data.features import cpg_call_features
from tissuebert.data.sampler import TrainSampler, batch_rng
from tissuebert.errors import CheckpointError
from tissuebert.model.logreg import ReadLogReg
from tissuebert.progress import get_logger
from tissuebert.store.panel import Panel
from tissuebert.store.store import Store

log = get_logger("logreg")

LR_SCALE = 2.0  # lr=None: lr = LR_SCALE / (steps a window is drawn in) (see auto_lr) ...
LR_RANGE = (1e-4, 0.1)  # ... clipped to this range
DEFAULT_WEIGHT_DECAY = 0.0
DEFAULT_PASSES = 3  # n_reads=None: this many passes over the split's eligible reads ...
DEFAULT_MAX_READS = 768_000  # ... capped here (12,000 steps of 64: ~15-25 s on one loaded core, small store)
_SCORE_CHUNK = 1 << 16  # reads per scoring chunk
CALIBRATION_READS = 16_384  # fresh sampler reads the temperature is fit on ...
CALIBRATION_EPOCH = 1 << 20  # ... drawn from an epoch no fit reaches


@dataclass
class LogRegFit:
    """A fitted ReadLogReg and what it is bound to: the panel (by hash) and the tissue list."""

    module: ReadLogReg
    panel_hash: str
    tissues: list[str]
    class_prior: np.ndarray  # (T,) the sampler's class distribution the fit was trained under
    settings: dict[str, Any] = field(default_factory=dict)  # n_reads, lr, seconds, ... of the fit

    def logits(self, panel: Panel, window_idx: np.ndarray, packed_calls: np.ndarray) -> np.ndarray:
        """(R,) windows + (R, B) packed calls of ``panel`` -> (R, T) float32 logits."""
        if panel.panel_hash() != self.panel_hash:
            raise CheckpointError(f"the logistic regression was fit on panel {self.panel_hash}, the reads are on "
                                  f"panel {panel.panel_hash()}", hint="fit it on a store with the reads' panel")
        window_idx = np.asarray(window_idx, dtype=np.int64)
        out = np.empty((window_idx.shape[0], len(self.tissues)), dtype=np.float32)
        self.module.eval()
        with torch.no_grad():
            for start in range(0, window_idx.shape[0], _SCORE_CHUNK):
                stop = start + _SCORE_CHUNK
                feats, valid = cpg_call_features(panel, window_idx[start:stop], np.asarray(packed_calls[start:stop]))
                out[start:stop] = self.module(torch.from_numpy(feats), torch.from_numpy(valid)).numpy()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {LOGREG.MODULE: self.module.state_dict(), LOGREG.N_CPGS: self.module.n_cpgs,
                LOGREG.TISSUES: list(self.tissues), LOGREG.PANEL_HASH: self.panel_hash,
                LOGREG.CLASS_PRIOR: np.asarray(self.class_prior, dtype=np.float64).tolist(),
                LOGREG.SETTINGS: dict(self.settings)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "LogRegFit":
        missing = [k for k in (LOGREG.MODULE, LOGREG.N_CPGS, LOGREG.TISSUES, LOGREG.PANEL_HASH, LOGREG.CLASS_PRIOR)
                   if k not in state]
        if missing:
            raise CheckpointError(f"logistic regression state lacks {', '.join(missing)}")
        module = ReadLogReg(n_cpgs=int(state[LOGREG.N_CPGS]), n_tissues=len(state[LOGREG.TISSUES]))
        module.load_state_dict(state[LOGREG.MODULE])
        return cls(module.eval(), str(state[LOGREG.PANEL_HASH]), list(state[LOGREG.TISSUES]),
                   np.asarray(state[LOGREG.CLASS_PRIOR], dtype=np.float64), dict(state.get(LOGREG.SETTINGS, {})))


def default_reads(n_eligible: int) -> int:
    """The budget of ``n_reads=None``: DEFAULT_PASSES passes over the eligible reads, capped."""
    return int(min(DEFAULT_MAX_READS, DEFAULT_PASSES * n_eligible))


def auto_lr(n_windows: int, n_reads: int, batch_size: int = 64) -> float:
    """The default learning rate: inversely proportional to the updates each window's weights get.

    Adam moves a weight by at most about lr in a step where its feature is in the batch, so under
    the linear decay the weights of a window can travel ~ lr x (steps whose batch holds one of its
    reads) / 2 = lr x steps x (1 - (1 - 1/W)^B) / 2. Measured on the demo (104 windows) and
    ``small`` (1,717) stores, the best constant gave that product ~1.5-2 on both, hence LR_SCALE.
    """
    steps = max(1, -(-n_reads // batch_size))
    in_batch = 1.0 - (1.0 - 1.0 / max(n_windows, 1)) ** batch_size  # share of steps a window is drawn in
    low, high = LR_RANGE
    return float(min(high, max(low, LR_SCALE / (steps * in_batch))))


def _fit_temperature(model: ReadLogReg, feats: torch.Tensor, valid: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature minimising the NLL of held-back sampler reads (1-D, bounded)."""
    from scipy.optimize import minimize_scalar

    with torch.no_grad():
        logits = model(feats, valid).double()  # (N, T)

    def nll(log_t: float) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(logits / np.exp(log_t), labels))

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def fit_logreg(store: Store, *, n_reads: int | None = None, batch_size: int = 64, lr: float | None = None,
               weight_decay: float = DEFAULT_WEIGHT_DECAY, seed: int = 0, min_cpgs: int = 1,
               split: str = "train", lr_decay: bool = True) -> LogRegFit:
    """Fit a ReadLogReg on ``split`` of ``store`` from ceil(n_reads / batch_size) tissue-balanced micro-batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n_reads is not None and n_reads < 1:
        raise ValueError(f"n_reads must be >= 1, got {n_reads}")
    started = time.perf_counter()
    sampler = TrainSampler(store, split=split, min_cpgs=min_cpgs, seed=seed, cpg_dropout=0.0)
    panel = store.panel
    n_reads = default_reads(sampler.n_reads) if n_reads is None else int(n_reads)
    n_steps = math.ceil(n_reads / batch_size)
    lr = auto_lr(panel.n_windows, n_steps * batch_size, batch_size) if lr is None else float(lr)
    per_epoch = sampler.steps_per_epoch(batch_size, 1, 1)  # the training loop's micro-batches per epoch
    model = ReadLogReg(n_cpgs=int(panel.cpg_ptr[-1]), n_tissues=len(store.tissues))
    # fused: the same Adam in one kernel; on the CPU it is ~9x faster than the per-tensor loop on the
    # dense (2 x CpGs, T) weight, which otherwise costs more than everything else in a step
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    # linear decay to 0: large early steps, then averaging out the sampling noise of the late ones
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 - k / n_steps if lr_decay else 1.0)
    model.train()
    for k in range(n_steps):
        rng = batch_rng(sampler.seed, k // per_epoch, k % per_epoch, 0)
        file_pos, window_idx, row = sampler.draw_indices(rng, batch_size)
        feats, valid = cpg_call_features(panel, window_idx, sampler.gather_calls(file_pos, row))
        labels = torch.from_numpy(sampler.file_tissue[file_pos])  # (B,)
        loss = F.cross_entropy(model(torch.from_numpy(feats), torch.from_numpy(valid)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    # Temperature on fresh sampler reads (an epoch the fit never drew), folded into the weights: an
    # under-fit logreg has the right ranking but too-flat likelihoods, and EM over too-flat
    # likelihoods pushes the proportions towards the extremes
    n_cal = max(1, CALIBRATION_READS // batch_size)
    draws = [sampler.draw_indices(batch_rng(sampler.seed, CALIBRATION_EPOCH, step, 0), batch_size) for step in range(n_cal)]
    file_pos = np.concatenate([d[0] for d in draws])
    feats, valid = cpg_call_features(panel, np.concatenate([d[1] for d in draws]),
                                     sampler.gather_calls(file_pos, np.concatenate([d[2] for d in draws])))
    temperature = _fit_temperature(model, torch.from_numpy(feats), torch.from_numpy(valid),
                                   torch.from_numpy(sampler.file_tissue[file_pos]))
    with torch.no_grad():
        model.weight.weight.div_(temperature)
        model.bias.div_(temperature)
    seconds = time.perf_counter() - started
    log.info("logreg: %d %s reads (%d steps of %d) in %.1f s", n_steps * batch_size, split, n_steps, batch_size, seconds)
    settings = {"n_reads": n_steps * batch_size, "batch_size": batch_size, "steps": n_steps, "lr": lr,
                "weight_decay": weight_decay, "lr_decay": lr_decay, "seed": seed, "min_cpgs": min_cpgs, "split": split,
                "eligible_reads": sampler.n_reads, "temperature": temperature, "seconds": seconds}
    return LogRegFit(model.eval(), store.panel_hash, list(store.tissues), np.asarray(sampler.class_prior), settings)

"""Loss, AdamW groups and the one-cycle schedule against the design's numbers."""

from __future__ import annotations

import warnings

import pytest
import torch

from tissuebert.config import load_config
from tissuebert.model.tissuebert import build_model
from tissuebert.train.optim import build_loss, build_optimizer, build_scheduler, decay_groups


def lr_trace(cfg, total_steps):
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, total_steps)
    out = []
    for _ in range(total_steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched.last_epoch < total_steps - 1:
            sched.step()
    return out


def lr_at(sched, step: int) -> float:
    """The scheduler's LR at an arbitrary step (OneCycleLR computes it from last_epoch alone)."""
    sched.last_epoch = step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # get_lr() outside step() warns; the value is what step() would set
        return sched.get_lr()[0]


def test_paper_schedule_endpoints():
    cfg = load_config("paper").train
    total = cfg.epochs * 5000  # 50 epochs of the capped 5000 steps
    sched = build_scheduler(build_optimizer(torch.nn.Linear(2, 2), cfg), cfg, total)
    warmup_end = int(cfg.warmup_frac * total) - 1
    assert lr_at(sched, 0) == pytest.approx(1.6e-5, rel=0.01)
    assert lr_at(sched, warmup_end) == pytest.approx(4e-4, rel=0.01)
    assert lr_at(sched, total - 1) == pytest.approx(4e-8, rel=0.01)
    # cosine on both legs: half-way up at half the warm-up, half-way down at half the decay
    assert lr_at(sched, warmup_end // 2) == pytest.approx((1.6e-5 + 4e-4) / 2, rel=0.01)
    assert lr_at(sched, (warmup_end + total - 1) // 2) == pytest.approx((4e-4 + 4e-8) / 2, rel=0.01)


def test_tiny_run_warms_up_over_at_least_two_steps():
    cfg = load_config("tiny", overrides=["train.warmup_frac=0.01"]).train
    lrs = lr_trace(cfg, 10)  # 1% of 10 steps would be no warm-up at all
    assert lrs[0] < lrs[1] and lrs[1] == pytest.approx(cfg.max_lr)
    assert lrs[-1] == pytest.approx(cfg.max_lr / cfg.div_factor / cfg.final_div_factor, rel=0.01)


def test_no_decay_on_biases_norms_embeddings():
    cfg = load_config("tiny")
    panel = {"cpg_first": torch.zeros(2, dtype=torch.int64), "cpg_offsets": torch.zeros((2, 3), dtype=torch.int64),
             "n_cpgs": 5}
    model = build_model(cfg.model, 3, panel)
    decay, plain = decay_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in plain["params"]}
    assert decay["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    assert decayed | undecayed == set(names.values()) and not decayed & undecayed
    assert all(n.endswith(".weight") and "norm" not in n and "emb" not in n for n in decayed)
    assert {"dna_emb.weight", "meth_emb.weight", "pos_emb.weight", "norm.weight", "layers.0.qkv.bias",
            "cpg_emb.weight", "cpg_logit.weight"} <= undecayed
    assert "layers.0.fc1.weight" in decayed and "head.0.weight" in decayed


def test_adamw_settings_and_label_smoothing():
    cfg = load_config("paper").train
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg)
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    loss = build_loss(cfg)
    logits = torch.tensor([[10.0, -10.0]])
    # smoothing 0.1 over 2 classes: target (0.95, 0.05); a confident right answer still costs ~1 nat
    expected = -(0.95 * torch.log_softmax(logits, 1)[0, 0] + 0.05 * torch.log_softmax(logits, 1)[0, 1])
    assert float(loss(logits, torch.tensor([0]))) == pytest.approx(float(expected), rel=1e-6)
    assert float(expected) == pytest.approx(1.0, abs=0.01)

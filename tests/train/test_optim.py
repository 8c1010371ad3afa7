"""Loss, AdamW groups and the one-cycle schedule against the design's numbers."""

from __future__ import annotations

import warnings

import pytest
import torch

from tissuebert.config import load_config
from tissuebert.model.tissuebert import build_model
from tissuebert.train.optim import build_loss, build_optimizer, build_scheduler, decay_groups
from tissuebert.train.setup import freeze_states


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


TABLES = ["model.cpg_embedding_dim=64", "model.cpg_logits=true"]  # the optional per-CpG tables


def test_no_decay_on_biases_norms_embeddings():
    cfg = load_config("tiny", overrides=TABLES)
    panel = {"cpg_first": torch.zeros(2, dtype=torch.int64), "cpg_offsets": torch.zeros((2, 3), dtype=torch.int64),
             "n_cpgs": 5}
    model = build_model(cfg.model, 3, panel)
    decay, plain, tables = decay_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in plain["params"]}
    panel = {names[id(p)] for p in tables["params"]}
    assert decay["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0 and tables["weight_decay"] == 0.0
    assert decayed | undecayed | panel == set(names.values()) and not decayed & undecayed
    assert all(n.endswith(".weight") and "norm" not in n and "emb" not in n for n in decayed)
    assert {"dna_emb.weight", "meth_emb.weight", "pos_emb.weight", "norm.weight", "layers.0.qkv.bias"} <= undecayed
    assert panel == {"cpg_emb.weight", "cpg_logit.weight", "states.emission.weight", "states.prior.weight"}
    # train.state_source = split (the tiny preset's): the fitted state tables are in no group at all
    freeze_states(model, "split")
    kept = {names[id(p)] for group in decay_groups(model, 0.01) for p in group["params"]}
    assert kept == set(names.values()) - {"states.emission.weight", "states.prior.weight"}
    assert "states.token.weight" in kept  # the encoder's correction to them still trains
    assert "layers.0.fc1.weight" in decayed and "head.0.weight" in decayed
    assert "counts.log_scale" in undecayed  # the count route's scale: a plain parameter, no decay


def test_panel_tables_get_their_own_peak_lr():
    """2 x windows / reads unless that is below max_lr; an explicit train.panel_lr wins."""
    from tissuebert.train.optim import panel_max_lr

    cfg = load_config("tiny").train  # max_lr 2e-3
    assert panel_max_lr(cfg, 1717, 192_000) == pytest.approx(2 * 1717 / 192_000)
    assert panel_max_lr(cfg, 104, 1_000_000) == pytest.approx(2e-3)
    assert panel_max_lr(load_config("tiny", overrides=["train.panel_lr=0.05"]).train, 104, 96_000) == 0.05
    panel = {"cpg_first": torch.zeros(2, dtype=torch.int64), "cpg_offsets": torch.zeros((2, 3), dtype=torch.int64),
             "n_cpgs": 5}
    model = build_model(load_config("tiny", overrides=TABLES).model, 3, panel)
    opt = build_optimizer(model, cfg, panel_lr=0.03)
    sched = build_scheduler(opt, cfg, 100)
    peaks = [0.0, 0.0, 0.0]
    for _ in range(99):
        peaks = [max(p, g["lr"]) for p, g in zip(peaks, opt.param_groups)]
        opt.step()
        sched.step()
    assert peaks[0] == pytest.approx(2e-3, rel=1e-3) and peaks[1] == pytest.approx(2e-3, rel=1e-3)
    assert peaks[2] == pytest.approx(0.03, rel=1e-3)
    assert opt.param_groups[2]["lr"] == pytest.approx(0.03 / cfg.div_factor / cfg.final_div_factor, rel=0.05)


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

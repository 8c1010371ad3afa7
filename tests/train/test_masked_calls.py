"""The masked-call objective (model.call_head, train.mask_weight, train.pretrain_steps).

Masked-methylation pre-training hides a share of each read's calls and predicts them from the
rest of the read; these tests check the masking, which loss each phase trains, and that on reads
whose calls all agree the encoder learns to read the unmasked calls (the loss falls far below the
ln 2 of a guess).
"""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from tests.support.trainhelpers import FAST, sets
from tissuebert.cli.app import main
from tissuebert.config import load_config
from tissuebert.constants import METH_M, METH_NONE, RUN
from tissuebert.errors import ConfigError
from tissuebert.model.tissuebert import TissueBERT
from tissuebert.train.loop import _forward_loss, mask_calls
from tissuebert.train.state import Position


def test_masking_hides_only_calls_at_the_asked_rate():
    gen = torch.Generator().manual_seed(0)
    meth = torch.randint(0, 4, (400, 150), generator=gen)  # U, M, none and pad tokens
    torch.manual_seed(1)
    masked, target = mask_calls(meth, 0.2)
    called = meth <= METH_M
    hidden = target >= 0
    assert not (hidden & ~called).any()  # never a no-call or pad token
    assert torch.equal(target[hidden], meth[hidden])  # the target is the hidden call
    assert (masked[hidden] == METH_NONE).all()
    assert torch.equal(masked[~hidden], meth[~hidden])  # everything else untouched
    rate = hidden.sum().item() / called.sum().item()  # ~30,000 calls: sd of the rate ~0.0023
    assert abs(rate - 0.2) < 0.01


def test_masking_needs_the_call_head():
    with pytest.raises(ConfigError, match="model.call_head"):
        load_config("tiny", overrides=["train.pretrain_steps=10"])
    with pytest.raises(ConfigError, match="model.call_head"):
        load_config("tiny", overrides=["train.mask_weight=0.5"])
    assert load_config("tiny", overrides=["train.mask_weight=0.5", "model.call_head=true"]).train.mask_weight == 0.5


def _run(*, step: int, pretrain: int, weight: float) -> SimpleNamespace:
    torch.manual_seed(0)
    model = TissueBERT(n_tissues=3, n_layers=1, hidden=16, n_heads=2, ffn=32, head_hidden=16, dropout=0.0,
                       call_head=True)
    cfg = SimpleNamespace(pretrain_steps=pretrain, mask_weight=weight, mask_prob=0.3, precision="fp32",
                          count_source="stream")
    return SimpleNamespace(config=SimpleNamespace(train=cfg), model=model, raw_model=model,
                           info=SimpleNamespace(device=torch.device("cpu")),
                           position=Position(step=step, steps_per_epoch=100), loss_fn=torch.nn.CrossEntropyLoss())


def _batch():
    gen = torch.Generator().manual_seed(5)
    dna = torch.randint(2, 60, (8, 20), generator=gen)
    meth = torch.full((8, 20), METH_NONE)
    meth[:, ::3] = torch.randint(0, 2, (8, 7), generator=gen)
    return dna, meth, None, torch.randint(0, 3, (8,), generator=gen)


def _grads(run) -> dict[str, float]:
    return {name: float(p.grad.abs().sum()) if p.grad is not None else 0.0
            for name, p in run.model.named_parameters()}


def test_pretraining_trains_the_call_head_only_and_not_the_classifier():
    run = _run(step=3, pretrain=10, weight=0.0)
    dna, meth, window, labels = _batch()
    torch.manual_seed(7)
    loss, _ = _forward_loss(run, dna, meth, window, labels)
    loss.backward()
    grads = _grads(run)
    assert grads["call_head.weight"] > 0
    assert all(g == 0 for name, g in grads.items() if name.startswith("head."))
    # the loss is the masked-call cross-entropy over the hidden calls, recomputed here
    torch.manual_seed(7)
    masked, target = mask_calls(meth, 0.3)
    _, call_logits = run.model(dna, masked, window, with_calls=True)
    hidden = target >= 0
    expected = F.cross_entropy(call_logits[hidden], target[hidden])
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-6)


def test_after_pretraining_weight_zero_is_plain_classification_on_whole_reads():
    run = _run(step=10, pretrain=10, weight=0.0)
    dna, meth, window, labels = _batch()
    loss, logits = _forward_loss(run, dna, meth, window, labels)
    assert torch.equal(logits, run.model(dna, meth, window))  # no call was hidden
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)
    loss.backward()
    grads = _grads(run)
    assert grads["call_head.weight"] == 0 and run.model.call_head.weight.grad is not None  # in the graph (DDP)
    assert grads["head.3.weight"] > 0


def test_multitask_loss_is_class_plus_weighted_call_loss_on_masked_reads():
    run = _run(step=20, pretrain=0, weight=0.5)
    dna, meth, window, labels = _batch()
    torch.manual_seed(11)
    loss, logits = _forward_loss(run, dna, meth, window, labels)
    torch.manual_seed(11)
    masked, target = mask_calls(meth, 0.3)
    class_logits, call_logits = run.model(dna, masked, window, with_calls=True)
    hidden = target >= 0
    expected = F.cross_entropy(class_logits, labels) + 0.5 * F.cross_entropy(call_logits[hidden], target[hidden])
    assert torch.equal(logits, class_logits)
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.slow
def test_pretraining_learns_to_read_the_unmasked_calls(marker_store, tmp_path):
    """In the marker store a read's calls all agree (all M or all U, half the reads each): a hidden
    call is a coin flip from its position alone and certain from the read's other calls."""
    run = tmp_path / "run"
    steps = 120
    args = sets(*FAST, "model.call_head=true", f"train.pretrain_steps={steps}", "train.mask_prob=0.3", "train.epochs=1",
                f"train.steps_per_epoch={steps}", "train.log_every=1", "train.max_lr=3e-3", "data.cpg_dropout=0.0")
    assert main(["train", "--store", str(marker_store), "--out", str(run), "--preset", "tiny", *args]) == 0
    with open(run / RUN.LOGS / "steps.csv") as fh:
        losses = [float(row["loss"]) for row in csv.DictReader(fh)]
    assert len(losses) == steps
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    assert first > 0.9 * math.log(2)  # the start: a guess
    assert last < 0.6 * math.log(2)  # the end: the other calls give it away

"""Metrics from a hand-computed example; the confusion CSV and PNG."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from tissuebert.metrics import ConfusionAccumulator, classification_metrics, per_class_rows, write_confusion

# 3 classes; class 2 never occurs in the targets but is predicted once
TARGETS = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
PREDS = [0, 0, 0, 1, 1, 1, 1, 1, 0, 2]


def test_hand_computed_values():
    m = classification_metrics(PREDS, TARGETS, 3)
    assert m["confusion"] == [[3, 1, 0], [1, 4, 1], [0, 0, 0]]
    assert m["accuracy"] == pytest.approx(7 / 10)
    # recall 3/4 and 4/6; precision 3/4 and 4/5; class 2: precision 0 (1 wrong prediction), no support
    assert m["recall"] == pytest.approx([0.75, 4 / 6, 0.0])
    assert m["precision"] == pytest.approx([0.75, 0.8, 0.0])
    f1_1 = 2 * 0.8 * (4 / 6) / (0.8 + 4 / 6)
    assert m["f1"] == pytest.approx([0.75, f1_1, 0.0])
    assert m["support"] == [4, 6, 0]
    # averages run over the classes present in the targets
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 4 / 6) / 2)
    assert m["macro_f1"] == pytest.approx((0.75 + f1_1) / 2)


def test_logits_and_batches_give_the_same_numbers():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4))
    targets = rng.integers(0, 4, 50)
    whole = classification_metrics(torch.from_numpy(logits), targets, 4)
    assert whole == classification_metrics(logits.argmax(1), targets, 4)
    acc = ConfusionAccumulator(4)
    for start in range(0, 50, 16):
        acc.update(logits[start:start + 16], targets[start:start + 16])
    assert acc.compute().tolist() == whole["confusion"]


def test_per_class_rows_and_confusion_files(tmp_path):
    m = classification_metrics(PREDS, TARGETS, 3)
    rows = per_class_rows(m, ["blood", "liver", "lung"])
    assert rows[1] == {"tissue": "liver", "accuracy": pytest.approx(4 / 6), "precision": pytest.approx(0.8),
                       "recall": pytest.approx(4 / 6), "f1": pytest.approx(m["f1"][1]), "support": 6}
    write_confusion(np.array(m["confusion"]), ["blood", "liver", "lung"], tmp_path / "c.png", tmp_path / "c.csv")
    with open(tmp_path / "c.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table == [["true\\predicted", "blood", "liver", "lung"], ["blood", "3", "1", "0"],
                     ["liver", "1", "4", "1"], ["lung", "0", "0", "0"]]
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

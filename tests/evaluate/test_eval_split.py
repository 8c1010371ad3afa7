"""`tissuebert evaluate` on the tiny store: values checked against an independent computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.support import tinystore
from tissuebert.cli.app import main
from tissuebert.constants import CKPT, OUT
from tissuebert.data.eval_set import build_eval_reads
from tissuebert.data.tokens import TokenTables
from tissuebert.evaluate import evaluate_split
from tissuebert.inference.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from tissuebert.store.sample import unpack_calls


def _read_tsv(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return header, [line.split("\t") for line in lines[1:]]


def test_evaluate_split_matches_independent_scoring(tiny, tmp_path):
    out = tmp_path / "eval"
    metrics = evaluate_split(tiny.checkpoint, tiny.store, "test", out, precision="fp32")

    # the same reads, read from the store and scored by the model's own forward (not through
    # build_eval_reads / predict_logits, which evaluate uses): accuracy and recall must agree
    windows = np.concatenate([tiny.store.reads(rec).window_idx for rec in tiny.store.samples("test")])
    packed = np.concatenate([np.asarray(tiny.store.reads(rec).calls) for rec in tiny.store.samples("test")])
    labels = np.concatenate([np.full(tiny.store.reads(rec).n_reads, rec.tissue_id) for rec in tiny.store.samples("test")])
    model = model_from_checkpoint(load_checkpoint(tiny.checkpoint))
    dna, meth = TokenTables(tiny.store.panel).batch(windows.astype(np.int64), packed)
    with torch.no_grad():
        logits = model(torch.from_numpy(dna).long(), torch.from_numpy(meth).long(),
                       torch.from_numpy(windows.astype(np.int64)))
    preds = logits.argmax(dim=1).numpy()
    assert metrics["n_reads"] == labels.size == 3 * 600
    assert metrics["accuracy"] == pytest.approx(np.mean(preds == labels), abs=1e-12)
    reads = build_eval_reads(tiny.store, "test", max_reads_per_sample=None, seed=0)  # for the oracle below
    np.testing.assert_array_equal(reads.labels, labels)
    # a balanced split: balanced accuracy equals accuracy
    assert abs(metrics["balanced_accuracy"] - metrics["accuracy"]) < 1e-12

    # the model learned the markers: far above chance (1/3) and close to the Bayes-optimal
    # classifier on the same reads (each window tells its target tissue from the other two only)
    oracle = tinystore.oracle_loglik(reads.window_idx, unpack_calls(reads.calls, 6)).argmax(axis=1)
    oracle_acc = np.mean(oracle == reads.labels)
    assert metrics["accuracy"] > 0.5
    assert abs(metrics["accuracy"] - oracle_acc) < 0.05
    # every pure test sample is called right from its summed read likelihoods
    assert metrics["sample_accuracy"] == 1.0
    assert [s["call"] for s in metrics["per_sample"]] == tinystore.TISSUES

    on_disk = json.loads((out / OUT.METRICS).read_text())  # strict JSON (no NaN)
    assert on_disk["macro_f1"] == metrics["macro_f1"]
    header, rows = _read_tsv(out / OUT.PER_TISSUE)
    assert header == ["tissue", "precision", "recall", "f1", "support", "logreg_precision", "logreg_recall", "logreg_f1"]
    assert [r[0] for r in rows] == tinystore.TISSUES and all(r[4] == "600" for r in rows)
    recall = np.array([float(r[2]) for r in rows])
    np.testing.assert_allclose(recall, [np.mean(preds[labels == t] == t) for t in range(3)], atol=1e-6)
    _, conf = _read_tsv(out / OUT.CONFUSION_TSV)
    conf = np.array([[float(v) for v in r[1:]] for r in conf])
    np.testing.assert_allclose(conf.sum(axis=1), 1.0, atol=1e-5)  # rows normalised
    np.testing.assert_allclose(np.diag(conf), recall, atol=1e-6)
    assert "n_layers: 1" in (out / OUT.CONFIG).read_text()  # the checkpoint's resolved config
    for name in (OUT.CONFUSION_PNG, OUT.RELIABILITY_PNG):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, samples = _read_tsv(out / OUT.PER_SAMPLE)
    assert [r[4] for r in samples] == tinystore.TISSUES


def test_evaluate_cli_outputs_overwrite_and_mismatch(tiny, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--out", str(out),
            "--max-reads-per-sample", "100"]
    assert main(args) == 0
    assert json.loads((out / OUT.METRICS).read_text())["n_reads"] == 300
    assert "accuracy" in capsys.readouterr().out
    assert main(args) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0

    # a checkpoint trained on other tissues is refused with one line naming the difference
    state = load_checkpoint(tiny.random_checkpoint)
    state[CKPT.TISSUES] = ["Blood", "Liver", "Kidney"]
    bad = tmp_path / "other.pt"
    save_checkpoint(bad, state)
    assert main(["evaluate", "--checkpoint", str(bad), "--store", str(tiny.store.root), "--out",
                 str(tmp_path / "e2")]) == 2
    err = capsys.readouterr().err
    assert "Kidney" in err and "Traceback" not in err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--store", str(tiny.store.root),
                 "--out", str(tmp_path / "e3")]) == 2


def test_untrained_model_scores_at_chance(tiny, tmp_path):
    torch.manual_seed(0)
    metrics = evaluate_split(tiny.random_checkpoint, tiny.store, "test", tmp_path / "e", max_reads_per_sample=200)
    assert metrics["accuracy"] < 0.45  # chance is 1/3; the trained model reaches ~0.59
    # logreg reaches ~0.59 on the same reads: the report says plainly that this model adds nothing
    assert metrics["logreg"]["balanced_accuracy"] > 0.5
    assert metrics["notes"] and metrics["notes"][0].startswith("The transformer adds nothing over logreg")


def test_evaluate_logreg_block_matches_an_independent_fit(tiny, tmp_path, capsys):
    from tissuebert.inference.checkpoint import checkpoint_config
    from tissuebert.inference.logreg import fit_logreg

    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / OUT.METRICS).read_text())
    block = metrics["logreg"]

    # the same fit by hand (train split, the checkpoint's min_cpgs and seed), scored with numpy
    config = checkpoint_config(load_checkpoint(tiny.checkpoint))
    fit = fit_logreg(tiny.store, min_cpgs=config.data.min_cpgs, seed=config.train.seed)
    reads = build_eval_reads(tiny.store, "test", max_reads_per_sample=None, seed=0)
    pred = fit.logits(tiny.store.panel, reads.window_idx, reads.calls).argmax(axis=1)
    recall = np.array([np.mean(pred[reads.labels == t] == t) for t in range(3)])
    precision = np.array([np.mean(reads.labels[pred == t] == t) for t in range(3)])
    f1 = 2 * precision * recall / (precision + recall)
    assert block["fit"]["n_reads"] == fit.settings["n_reads"] == 64 * -(-3 * 3600 // 64)
    assert block["accuracy"] == pytest.approx(np.mean(pred == reads.labels), abs=1e-12)
    assert block["balanced_accuracy"] == pytest.approx(recall.mean(), abs=1e-12)
    assert block["macro_f1"] == pytest.approx(f1.mean(), abs=1e-9)
    _, rows = _read_tsv(out / OUT.PER_TISSUE)
    np.testing.assert_allclose([float(r[6]) for r in rows], recall, atol=1e-6)
    np.testing.assert_allclose([float(r[7]) for r in rows], f1, atol=1e-6)
    # logreg reaches the Bayes ceiling on these reads (~0.59; chance 1/3)
    oracle = tinystore.oracle_loglik(reads.window_idx, unpack_calls(reads.calls, 6)).argmax(axis=1)
    assert abs(block["balanced_accuracy"] - np.mean(oracle == reads.labels)) < 0.03
    assert f"balanced accuracy {block['balanced_accuracy']:.4f}" in printed
    # the verdict sentence appears exactly when the model is not above logreg
    plain = "The transformer adds nothing over logreg on this data"
    assert (plain in printed) == (not metrics["balanced_accuracy"] > block["balanced_accuracy"])
    assert (len(metrics["notes"]) == 1) == (plain in printed)

    # --no-logreg: no block, no columns
    assert main(["evaluate", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--out",
                 str(tmp_path / "e2"), "--no-logreg"]) == 0
    assert "logreg" not in json.loads((tmp_path / "e2" / OUT.METRICS).read_text())
    assert _read_tsv(tmp_path / "e2" / OUT.PER_TISSUE)[0] == ["tissue", "precision", "recall", "f1", "support"]


def test_evaluate_decides_with_the_bias_corrected_calibration(tiny, tmp_path):
    """A checkpoint with calibrate's per-tissue bias: every decision is argmax(z / T' + b).

    The bias here is large enough to move many reads; the expected predictions are recomputed
    from the model's own forward pass plus the bias, not through evaluate's code."""
    state = load_checkpoint(tiny.checkpoint)
    reads = build_eval_reads(tiny.store, "test", max_reads_per_sample=None, seed=0)
    model = model_from_checkpoint(state)
    dna, meth = TokenTables(tiny.store.panel).batch(reads.window_idx, reads.calls)
    with torch.no_grad():
        logits = model(torch.from_numpy(dna).long(), torch.from_numpy(meth).long(),
                       torch.from_numpy(reads.window_idx.astype(np.int64))).numpy().astype(np.float64)
    temp, bias = 2.0, np.array([1.5, -0.5, -1.0])
    state[CKPT.CLASS_BIAS] = {"temperature": temp, "bias": bias.tolist()}
    biased = tmp_path / "biased.pt"
    save_checkpoint(biased, state)
    metrics = evaluate_split(biased, tiny.store, "test", tmp_path / "eval", precision="fp32", logreg=False)
    preds = (logits / temp + bias).argmax(axis=1)
    assert np.mean(preds != logits.argmax(axis=1)) > 0.05  # the bias changes decisions
    assert metrics["accuracy"] == pytest.approx(np.mean(preds == reads.labels), abs=1e-12)
    for t, name in enumerate(tinystore.TISSUES):
        assert metrics["per_tissue"][name]["recall"] == pytest.approx(np.mean(preds[reads.labels == t] == t), abs=1e-12)
    assert metrics["temperature"] == temp
    assert metrics["class_bias"] == dict(zip(tinystore.TISSUES, bias.tolist()))

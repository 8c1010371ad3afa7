"""Learning curves of model variants against the oracle and the logistic-regression rival.

Each variant is a real `tissuebert train` run (the package's loop, sampler, optimiser and
schedule) with config overrides; the curve is its validation balanced accuracy after every
epoch (``--points`` epochs of ``steps / points`` steps), next to the oracle's balanced accuracy
on the same validation reads. At the end the final checkpoint is scored on the test split
(``--test-reads`` reads per sample) beside the oracle on those reads.

    python benchmarks/bench_learning.py --store STORE --steps 1500 --points 6 \\
        --variant design:model.pooling=mean --variant cpg:model.pooling=cpg --out runs/learning

Prints one table and writes ``OUT/learning.json`` (curves, final numbers, seconds).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tissuebert.config import load_config
from tissuebert.constants import CKPT_LAST, RUN
from tissuebert.data.eval_set import build_eval_reads
from tissuebert.data.tokens import TokenTables
from tissuebert.evaluate.oracle import cohort_of_store, oracle_loglik_for_reads
from tissuebert.inference.checkpoint import load_checkpoint, model_from_checkpoint
from tissuebert.inference.predict import predict_logits
from tissuebert.metrics import classification_metrics
from tissuebert.store.store import Store
from tissuebert.train import run_training


def balanced_accuracy(pred: np.ndarray, labels: np.ndarray, n_tissues: int) -> float:
    return float(classification_metrics(pred, labels, n_tissues)["balanced_accuracy"])


def oracle_balanced(store: Store, reads) -> float | None:
    cohort = cohort_of_store(store)
    if cohort is None:
        return None
    loglik = oracle_loglik_for_reads(cohort, store, reads.window_idx, reads.calls)
    return balanced_accuracy(loglik.argmax(1), reads.labels, len(store.tissues))


def train_curve(store: Store, out: Path, args, overrides: list[str] = ()) -> tuple[object, list[dict], float]:
    """A real `tissuebert train` run of ``args.steps`` steps in ``args.points`` epochs:
    (resolved config, epochs.csv rows, seconds). Shared with bench_sample_efficiency.py."""
    sets = [f"train.epochs={args.points}", f"train.steps_per_epoch={max(1, args.steps // args.points)}",
            f"train.threads={args.threads}", *args.set, *overrides]
    config = load_config(args.preset, overrides=sets)
    t0 = time.perf_counter()
    run_training(config, store.root, out, force=True)
    seconds = time.perf_counter() - t0
    with open(out / RUN.LOGS / RUN.EPOCHS_CSV) as fh:
        return config, list(csv.DictReader(fh)), seconds


def run_variant(name: str, overrides: list[str], args, store: Store, test_reads) -> dict:
    out = Path(args.out) / name
    config, rows, seconds = train_curve(store, out, args, overrides)
    curve = [(int(r["global_step"]), float(r["val_balanced_acc"]), float(r["train_loss"])) for r in rows]
    model = model_from_checkpoint(load_checkpoint(out / RUN.CHECKPOINTS / CKPT_LAST))
    logits = predict_logits(model, TokenTables(store.panel), test_reads.window_idx, test_reads.calls,
                            batch_size=512, device="cpu", precision="fp32")
    test_bal = balanced_accuracy(logits.argmax(1), test_reads.labels, len(store.tissues))
    return {"name": name, "overrides": overrides, "curve": curve, "test_balanced_acc": test_bal,
            "seconds": seconds, "reads": args.steps * config.train.batch_size * config.train.accum_steps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--points", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--test-reads", type=int, default=1000, help="test reads per sample")
    ap.add_argument("--set", action="append", default=[], help="override applied to every variant")
    ap.add_argument("--variant", action="append", required=True,
                    help="NAME[:section.key=value[,section.key=value...]]")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    store = Store.open(args.store)
    config = load_config(args.preset)
    val = build_eval_reads(store, "val", max_reads_per_sample=config.data.val_reads_per_sample,
                           seed=config.train.seed, min_cpgs=config.data.min_cpgs)
    test = build_eval_reads(store, "test", max_reads_per_sample=args.test_reads, seed=0,
                            min_cpgs=config.data.min_cpgs)
    oracle_val, oracle_test = oracle_balanced(store, val), oracle_balanced(store, test)
    chance = 1.0 / len(store.tissues)
    print(f"store {args.store}: {len(store.tissues)} tissues, {store.panel.n_windows} windows; chance {chance:.4f}; "
          f"oracle balanced acc val {oracle_val}, test {oracle_test}", flush=True)
    results = []
    for spec in args.variant:
        name, _, rest = spec.partition(":")
        overrides = [o for o in rest.split(",") if o]
        res = run_variant(name, overrides, args, store, test)
        results.append(res)
        curve = " ".join(f"{s}:{b:.4f}" for s, b, _ in res["curve"])
        rel = res["test_balanced_acc"] / oracle_test if oracle_test else float("nan")
        print(f"{name:>24} test bal {res['test_balanced_acc']:.4f} ({rel:.1%} of oracle) "
              f"{res['seconds']:.0f}s | val curve {curve}", flush=True)
    summary = {"store": str(args.store), "chance": chance, "oracle_val": oracle_val, "oracle_test": oracle_test,
               "steps": args.steps, "variants": results}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "learning.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The simple rival on a prepared store: logreg test accuracy vs training reads, lr and L2, and wall time.

Fits ``tissuebert.inference.logreg.fit_logreg`` on the store's train split for every combination of
--reads x --lr x --weight-decay and scores the test split (all reads, the evaluate rule for
which reads count); on a simulated store also the oracle on the same reads. One thread.

    PYTHONPATH=src python benchmarks/bench_logreg.py --store demo/store --reads 96000 default
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--reads", nargs="+", default=["96000", "default"], help="training reads, or 'default'")
    parser.add_argument("--lr", nargs="+", type=float, default=None, help="default: the fit's own (auto_lr)")
    parser.add_argument("--weight-decay", nargs="+", type=float, default=None)
    parser.add_argument("--decay", nargs="+", choices=["linear", "constant"], default=["linear"])
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tissuebert.data.eval_set import build_eval_reads
    from tissuebert.evaluate.oracle import cohort_of_store, oracle_loglik_for_reads
    from tissuebert.inference import logreg
    from tissuebert.metrics import classification_metrics
    from tissuebert.store.store import Store

    store = Store.open(args.store)
    reads = build_eval_reads(store, "test", max_reads_per_sample=None, seed=0)
    n_t = len(store.tissues)

    def scores(logits: np.ndarray) -> tuple[float, float]:
        cls = classification_metrics(logits.argmax(axis=1), reads.labels, n_t)
        return cls["accuracy"], cls["balanced_accuracy"]

    print(f"store {args.store}: {n_t} tissues, {store.panel.n_windows} windows, {reads.n_reads} test reads")
    cohort = cohort_of_store(store)
    if cohort is not None:
        acc, bal = scores(oracle_loglik_for_reads(cohort, store, reads.window_idx, reads.calls))
        print(f"oracle: accuracy {acc:.4f}  balanced accuracy {bal:.4f}")
    print("reads\tlr\tdecay\tweight_decay\tseed\taccuracy\tbalanced_accuracy\tfit_s")
    for n_reads in args.reads:
        for lr in args.lr or [None]:
            for wd in args.weight_decay or [logreg.DEFAULT_WEIGHT_DECAY]:
                for seed, decay in ((s, d) for s in args.seed for d in args.decay):
                    t0 = time.perf_counter()
                    fit = logreg.fit_logreg(store, n_reads=None if n_reads == "default" else int(n_reads), lr=lr,
                                            weight_decay=wd, seed=seed,
                                            lr_decay=decay == "linear")
                    seconds = time.perf_counter() - t0
                    acc, bal = scores(fit.logits(store.panel, reads.window_idx, reads.calls))
                    print(f"{fit.settings['n_reads']}\t{fit.settings['lr']:.2g}\t{decay}\t{wd:g}\t{seed}\t{acc:.4f}\t{bal:.4f}\t{seconds:.1f}",
                          flush=True)


if __name__ == "__main__":
    main()

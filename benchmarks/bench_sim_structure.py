"""Does a simulated cohort hold signal that only a whole-read model can use?

Per preset: simulate (seed --seed, no BAMs), prepare the store, then on the test split's reads
(as the store holds them: clipped to a window) print the per-read balanced accuracy of

  oracle    : the exact Bayes classifier (simulate/oracle.py, latent subtype/allele included)
  marginal  : the Bayes classifier that treats blocks as independent (the tissue profiles pi
              only, latent structure ignored): the best a per-block model can do
  additive  : a multinomial logistic regression with one weight per (panel CpG, call) and
              tissue, trained with Adam on tissue-balanced batches of the train split's reads
              (what an additive per-CpG model reaches; not the package's logreg method)

and the additive model's share of the oracle. Chance is 1/T.

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_sim_structure.py \
        [--presets structured demo] [--seed 1] [--workdir /tmp/simstruct/bench] [--steps 6000] [--lr 0.002]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from tissuebert.cli.app import main as cli
from tissuebert.data.eval_set import build_eval_reads
from tissuebert.evaluate.oracle import oracle_loglik_for_reads, read_cpg_index
from tissuebert.simulate import load_truth, oracle_loglik, simulate_cohort
from tissuebert.store.sample import unpack_calls
from tissuebert.store.store import Store


def cohort_and_store(preset: str, seed: int, workdir: Path) -> tuple[Path, Store]:
    cohort, store_dir = workdir / f"{preset}_s{seed}" / "cohort", workdir / f"{preset}_s{seed}" / "store"
    if not (cohort / "simulate.json").is_file():
        simulate_cohort(cohort, preset=preset, seed=seed, write_bam=False, force=True)
    if not (store_dir / "manifest.json").is_file():
        code = cli(["prepare", "--samples", str(cohort / "samples.tsv"), "--reference", str(cohort / "genome.fa"),
                    "--regions", str(cohort / "regions.bed"), "--cpg-index", str(cohort / "CpG.bed.gz"),
                    "--out", str(store_dir), "--force"])
        assert code == 0, f"prepare failed ({code})"
    return cohort, Store.open(store_dir)


def balanced_accuracy(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    return float(np.mean([np.mean(pred[labels == t] == t) for t in range(n_classes) if np.any(labels == t)]))


def argmax_random_ties(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """Argmax with ties broken at random (many reads carry no information at all)."""
    jitter = np.random.default_rng(seed).random(scores.shape) * 1e-9
    return (scores - scores.max(axis=1, keepdims=True) + jitter).argmax(axis=1)


def features(store: Store, window_idx: np.ndarray, packed: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Called CpGs of each read -> EmbeddingBag inputs: ids 2 * panel CpG slot + call, offsets."""
    width = max(store.panel.max_cpgs, 1)
    calls = unpack_calls(packed, width)  # (R, width) 0 U / 1 M / 2 none
    slot = store.panel.cpg_ptr[window_idx][:, None] + np.arange(width)[None, :]
    called = (calls < 2) & (np.arange(width)[None, :] < store.panel.n_cpgs[window_idx][:, None])
    ids = (2 * slot + calls)[called]  # row-major: grouped by read
    offsets = np.concatenate([[0], np.cumsum(called.sum(axis=1))[:-1]])
    return torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(offsets.astype(np.int64))


def fit_additive(store: Store, train, n_tissues: int, *, steps: int, batch: int, lr: float, seed: int):
    """One weight per (panel CpG, call, tissue) + a bias: EmbeddingBag(sum) -> logits."""
    torch.manual_seed(seed)
    n_feat = 2 * int(store.panel.cpg_ptr[-1])
    model = torch.nn.EmbeddingBag(n_feat, n_tissues, mode="sum")
    torch.nn.init.zeros_(model.weight)
    bias = torch.zeros(n_tissues, requires_grad=True)
    opt = torch.optim.Adam([model.weight, bias], lr=lr)
    rng = np.random.default_rng(seed)
    by_tissue = [np.flatnonzero(train.labels == t) for t in range(n_tissues)]
    for _ in range(steps):
        # tissue-balanced: the same number of reads from every tissue in each batch
        rows = np.concatenate([rng.choice(r, size=batch // n_tissues) for r in by_tissue if r.size])
        ids, offsets = features(store, train.window_idx[rows], train.calls[rows])
        loss = torch.nn.functional.cross_entropy(model(ids, offsets) + bias, torch.from_numpy(train.labels[rows]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, bias


def predict_additive(model, bias, store: Store, reads, chunk: int = 200_000) -> np.ndarray:
    out = []
    with torch.no_grad():
        for lo in range(0, reads.n_reads, chunk):
            ids, offsets = features(store, reads.window_idx[lo:lo + chunk], reads.calls[lo:lo + chunk])
            out.append((model(ids, offsets) + bias).numpy())
    return np.concatenate(out)


def marginal_loglik(cohort: Path, store: Store, reads) -> np.ndarray:
    """The oracle of the same truth with the latent classes dropped (blocks independent)."""
    truth = load_truth(cohort)
    flat = dataclasses.replace(truth, subtype_weight=None, latent_pi=None, region_asm=None)
    order = [flat.tissues.index(t) for t in store.tissues]
    width = max(store.panel.max_cpgs, 1)
    ll = oracle_loglik(flat, read_cpg_index(store.panel, reads.window_idx, width), unpack_calls(reads.calls, width))
    return ll[:, order]


def run_preset(preset: str, args) -> dict:
    t0 = time.perf_counter()
    cohort, store = cohort_and_store(preset, args.seed, args.workdir)
    n_tissues = len(store.tissues)
    train = build_eval_reads(store, "train", max_reads_per_sample=None, seed=0)
    test = build_eval_reads(store, "test", max_reads_per_sample=args.max_test_reads, seed=0)
    oracle = balanced_accuracy(argmax_random_ties(oracle_loglik_for_reads(cohort, store, test.window_idx, test.calls)),
                               test.labels, n_tissues)
    marginal = balanced_accuracy(argmax_random_ties(marginal_loglik(cohort, store, test)), test.labels, n_tissues)
    model, bias = fit_additive(store, train, n_tissues, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed)
    additive = balanced_accuracy(argmax_random_ties(predict_additive(model, bias, store, test)), test.labels, n_tissues)
    return dict(preset=preset, tissues=n_tissues, windows=store.panel.n_windows, train_reads=train.n_reads,
                test_reads=test.n_reads, oracle=oracle, marginal=marginal, additive=additive,
                seconds=time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["structured", "demo"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/simstruct/bench"))
    parser.add_argument("--steps", type=int, default=6000, help="Adam steps of the additive model")
    parser.add_argument("--batch", type=int, default=1024, help="reads per step (split evenly over tissues)")
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--max-test-reads", type=int, default=None, help="per test sample (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [run_preset(p, args) for p in args.presets]
    print(f"{'preset':<12}{'tissues':>8}{'windows':>8}{'train':>10}{'test':>9}{'chance':>8}{'oracle':>8}"
          f"{'marginal':>9}{'additive':>9}{'add/orc':>8}{'s':>6}")
    for r in rows:
        print(f"{r['preset']:<12}{r['tissues']:>8}{r['windows']:>8}{r['train_reads']:>10}{r['test_reads']:>9}"
              f"{1 / r['tissues']:>8.3f}{r['oracle']:>8.3f}{r['marginal']:>9.3f}{r['additive']:>9.3f}"
              f"{r['additive'] / r['oracle']:>8.2f}{r['seconds']:>6.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

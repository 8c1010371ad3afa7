"""A rival the model must beat: a fragment-state atlas fitted by EM on the whole training split.

Each read of window w from tissue t is taken to come from one of K fragment states (K = 3: mostly
unmethylated, mixed, mostly methylated: UXM's U / X / M); state k methylates panel CpG g with
probability theta[g, k] (shared by the tissues) and the tissue sets the state's share pi[w, t, k].
EM over every eligible training read (no gradient, no encoder) fits theta and pi; the read's
likelihood under tissue t is then sum_k pi[w, t, k] prod_j p(call_j | g_j, k), the form of the
simulator's oracle with one state per window instead of one per methylation block.

The fit is written as a checkpoint of the model's fragment-state head (model.fragment_states = K:
its emission and prior tables hold log theta and log pi; every other route to the logits is
zeroed), so `calibrate` and `benchmark` score it exactly as they score the model:

    python benchmarks/state_atlas_rival.py --store STORE --template RUN/checkpoints/last.pt --out atlas3.pt
    tissuebert calibrate --checkpoint atlas3.pt --store STORE --out atlas3.cal.pt
    tissuebert benchmark --checkpoint atlas3.cal.pt --store STORE --truth COHORT --method em --out bench_atlas3

``--template`` is any checkpoint trained on STORE with the count route (its metadata, panel and
config are reused). Measured results: benchmarks/RESULTS.md ("Mixture benchmark on the `small` cohort").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tissuebert.config import config_from_dict, config_to_dict
from tissuebert.constants import CKPT
from tissuebert.data.features import cpg_call_features
from tissuebert.inference.checkpoint import load_checkpoint, save_checkpoint
from tissuebert.model.tissuebert import build_model
from tissuebert.store.store import Store


def training_reads(store: Store) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cell = window x T + tissue, CpG of each slot, methylated?, called?) of every training read with a call."""
    n_tissues, panel = len(store.tissues), store.panel
    cells, cpgs, meths, valids = [], [], [], []
    for rec in store.samples("train"):
        reads = store.reads(rec, mmap=True)
        window = np.asarray(reads.window_idx)
        feature, valid = cpg_call_features(panel, window, np.asarray(reads.calls))
        keep = valid.any(axis=1)
        cells.append(window[keep].astype(np.int64) * n_tissues + rec.tissue_id)
        cpgs.append((feature[keep] // 2).astype(np.int32))
        meths.append((feature[keep] % 2).astype(bool))
        valids.append(valid[keep])
    return np.concatenate(cells), np.concatenate(cpgs), np.concatenate(meths), np.concatenate(valids)


def fit_states(store: Store, n_states: int, iterations: int, prior: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """EM: (theta (C, K) P(M | CpG, state), pi (W x T, K) state shares per window and tissue)."""
    cell, cpg, meth, valid = training_reads(store)
    n_cpgs = int(store.panel.cpg_ptr[-1])
    n_cells = store.panel.n_windows * len(store.tissues)
    theta = np.tile(np.linspace(0.05, 0.95, n_states), (n_cpgs, 1))
    pi = np.full((n_cells, n_states), 1.0 / n_states)
    read_of, slot = np.nonzero(valid)
    g, m = cpg[read_of, slot], meth[read_of, slot]
    print(f"{cell.shape[0]} training reads, {n_cpgs} CpGs, {n_cells} (window, tissue) cells")
    for it in range(iterations):
        started = time.perf_counter()
        log_m, log_u = np.log(theta), np.log1p(-theta)
        loglik = np.stack([(np.where(meth, log_m[cpg, k], log_u[cpg, k]) * valid).sum(axis=1)
                           for k in range(n_states)], axis=1)  # (N, K)
        joint = np.log(pi[cell]) + loglik
        top = joint.max(axis=1, keepdims=True)
        total = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))
        resp = np.exp(joint - total[:, None])  # (N, K)
        shares = np.stack([np.bincount(cell, weights=resp[:, k], minlength=n_cells) for k in range(n_states)], axis=1)
        pi = (shares + prior) / (shares + prior).sum(axis=1, keepdims=True)
        called = np.stack([np.bincount(g, weights=resp[read_of, k], minlength=n_cpgs) for k in range(n_states)], axis=1)
        methylated = np.stack([np.bincount(g, weights=resp[read_of, k] * m, minlength=n_cpgs)
                               for k in range(n_states)], axis=1)
        theta = np.clip((methylated + 0.5) / (called + 1.0), 1e-4, 1 - 1e-4)
        print(f"iteration {it + 1}: mean log-likelihood per read {total.mean():.5f} ({time.perf_counter() - started:.1f} s)")
    return theta, pi


def state_checkpoint(template: dict, store: Store, theta: np.ndarray, pi: np.ndarray) -> dict:
    """The template's checkpoint with a fragment-state head holding the fit and every other route zeroed."""
    n_states, n_tissues = theta.shape[1], len(store.tissues)
    data = template[CKPT.CONFIG]
    data["model"]["fragment_states"] = n_states
    config = config_from_dict(data)
    model = build_model(config.model, n_tissues, store.panel)
    state = model.state_dict()
    emission = np.zeros((2 * theta.shape[0] + 1, n_states))
    emission[0:-1:2] = np.log1p(-theta)  # feature 2g: U
    emission[1:-1:2] = np.log(theta)  # feature 2g + 1: M
    state["states.emission.weight"] = torch.tensor(emission, dtype=torch.float32)
    state["states.prior.weight"] = torch.tensor(np.log(pi).reshape(store.panel.n_windows, n_tissues * n_states),
                                                dtype=torch.float32)
    for key in state:
        if key.startswith("count_weight") or key == f"head.{len(model.head) - 1}.weight" or \
                key == f"head.{len(model.head) - 1}.bias":
            state[key] = torch.zeros_like(state[key])
    if "counts.log_scale" in state:
        state["counts.log_scale"] = torch.tensor(-30.0)  # exp(-30): the count route off
    out = dict(template)
    out[CKPT.MODEL] = state
    out[CKPT.CONFIG] = config_to_dict(config)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--template", required=True, help="a checkpoint trained on --store (metadata and config)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--states", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    store = Store.open(args.store)
    theta, pi = fit_states(store, args.states, args.iterations)
    save_checkpoint(args.out, state_checkpoint(load_checkpoint(args.template), store, theta, pi))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

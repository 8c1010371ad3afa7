"""A rival the model must beat: a fragment-state atlas fitted by EM on the whole training split.

Each read of window w from tissue t is taken to come from one of K fragment states (K = 3: mostly
unmethylated, mixed, mostly methylated: UXM's U / X / M); state k methylates panel CpG g with
probability theta[g, k] (shared by the tissues) and the tissue sets the state's share pi[w, t, k].
EM over every eligible training read (no gradient, no encoder; tissuebert/data/state_atlas.py, which
`train.state_source=split` also uses) fits theta and pi; the read's
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

import numpy as np
import torch

from tissuebert.config import config_from_dict, config_to_dict
from tissuebert.constants import CKPT
from tissuebert.data.sampler import TrainSampler
from tissuebert.data.state_atlas import fit_state_atlas, tissue_tables
from tissuebert.inference.checkpoint import load_checkpoint, save_checkpoint
from tissuebert.model.tissuebert import build_model
from tissuebert.store.store import Store
from tissuebert.train.atlas_choice import choose_state_atlas


def state_checkpoint(template: dict, store: Store, theta: np.ndarray, pi: np.ndarray) -> dict:
    """The template's checkpoint with a fragment-state head holding the fit and every other route zeroed."""
    n_states, n_tissues = theta.shape[-1], len(store.tissues)
    data = template[CKPT.CONFIG]
    data["model"]["fragment_states"] = n_states
    data["model"]["state_emissions"] = "tissue" if theta.ndim == 3 else "shared"
    config = config_from_dict(data)
    model = build_model(config.model, n_tissues, store.panel)
    model.set_states(theta, pi)
    state = model.state_dict()
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
    parser.add_argument("--tissue-prior", default=None,
                        help="per-tissue emissions shrunk by this many pseudo-calls, or 'auto' (chosen on the "
                             "validation reads, as train.state_tissue_prior); default: shared emissions")
    args = parser.parse_args()
    store = Store.open(args.store)
    train = TrainSampler(store, split="train")
    if args.tissue_prior is None:
        theta, pi = fit_state_atlas(train, args.states, iterations=args.iterations)
    elif args.tissue_prior == "auto":
        theta, pi, chosen, scores = choose_state_atlas(train, TrainSampler(store, split="val"), args.states,
                                                       iterations=args.iterations)
        print("held-out mixture error, log-likelihood per read:",
              {k: (round(e, 5), round(ll, 4)) for k, (e, ll) in scores.items()}, "-> kept", chosen)
        theta = tissue_tables(theta, len(store.tissues))
    else:
        theta, pi = fit_state_atlas(train, args.states, iterations=args.iterations,
                                    tissue_prior=float(args.tissue_prior))
    save_checkpoint(args.out, state_checkpoint(load_checkpoint(args.template), store, theta, pi))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

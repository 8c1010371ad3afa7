"""Per-tissue fragment-state probabilities of every region: U-markers of one tissue or of a
lineage group, M-markers, uninformative background; and per-CpG methylation given the state.

A region's value for a tissue is P(fragment in U state), P(X: intermediate), P(M). Related
tissues are made closer in two ways a real atlas shows: group markers they share, and a
hierarchical perturbation (one shared draw per lineage node) of every marker's level.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from tissuebert.simulate.params import SimConfig
from tissuebert.simulate.tissues import groups_of, lineage_of, siblings

MARKER_TYPES = ("tissue_u", "group_u", "shared_u", "tissue_m", "group_m", "background")
LOW_U = (0.005, 0.06)  # U-state share where a marker region is methylated
NODE_SD = 0.3  # logit-scale perturbation per lineage node: related tissues drift together


def _types(cfg: SimConfig, rng: np.random.Generator, n_regions: int, has_groups: bool) -> np.ndarray:
    mix = dict(cfg.marker_mix)
    if not has_groups:  # no two tissues share a lineage: group markers become tissue markers
        mix["tissue_u"] = mix.get("tissue_u", 0) + mix.pop("group_u", 0)
        mix["tissue_m"] = mix.get("tissue_m", 0) + mix.pop("group_m", 0)
    names = [t for t in MARKER_TYPES if mix.get(t, 0) > 0]
    shares = np.array([mix[t] for t in names]) / sum(mix[t] for t in names)
    counts = np.floor(shares * n_regions).astype(int)
    counts[np.argsort(-(shares * n_regions - counts))[: n_regions - counts.sum()]] += 1
    types = np.repeat(np.array(names), counts)
    return types[rng.permutation(n_regions)]


def _round_robin(rng: np.random.Generator, n_items: int, n: int) -> np.ndarray:
    """n targets cycling through n_items in a shuffled order, so targets get equal counts."""
    reps = -(-n // n_items) if n_items else 0
    return np.concatenate([rng.permutation(n_items) for _ in range(reps)])[:n] if n else np.zeros(0, int)


def assign_states(cfg: SimConfig, rng: np.random.Generator, tissues: list[str], n_regions: int
                  ) -> tuple[np.ndarray, list[str], list[str]]:
    """Returns pi (R, T, 3), region types and region targets."""
    n_tissues = len(tissues)
    groups = groups_of(tissues)
    sibs = siblings(tissues)
    types = _types(cfg, rng, n_regions, bool(groups))
    u_share = np.zeros((n_regions, n_tissues))
    targets = [""] * n_regions
    for kind in ("tissue_u", "tissue_m", "group_u", "group_m", "shared_u"):
        regs = np.flatnonzero(types == kind)
        n_targets = n_tissues if kind.startswith(("tissue", "shared")) else len(groups)
        picks = _round_robin(rng, n_targets, regs.size)
        for r, pick in zip(regs, picks):
            if kind == "shared_u":
                # hypomethylated in a random set of tissues across lineages, as many real DMRs are;
                # a read there splits the tissues in two, whatever its own tissue
                size = int(rng.integers(2, max(2, n_tissues // 2) + 1))
                others = rng.permutation([t for t in range(n_tissues) if t != pick])[: size - 1]
                chosen = {int(pick), *others.tolist()}
                # siblings mostly follow (the lineage still shows in these regions)
                chosen |= {s for m in list(chosen) for s in sibs[m] if rng.random() < 0.7}
                members = sorted(chosen)
                targets[r], close = "+".join(tissues[m] for m in members), []
            elif kind.startswith("tissue"):
                members, targets[r] = [int(pick)], tissues[pick]
                close = sibs[pick]
            else:
                members, targets[r] = list(groups[pick].members), groups[pick].name
                close = []
            if kind.endswith("_u"):
                u_share[r] = rng.uniform(*LOW_U, size=n_tissues)
                # a tissue with close siblings is told apart by weaker markers the siblings half share
                hi_range = (0.45, 0.85) if close else (0.6, 0.95)
                u_share[r, members] = rng.uniform(*hi_range, size=len(members))
                u_share[r, close] = rng.uniform(0.1, 0.3, size=len(close))
            else:
                u_share[r] = rng.uniform(0.6, 0.95, size=n_tissues)
                u_share[r, members] = rng.uniform(*LOW_U, size=len(members))
    _perturb_by_lineage(rng, tissues, u_share, np.flatnonzero(types != "background"))
    bg = np.flatnonzero(types == "background")
    # uninformative regions span the whole range real ones do: mostly methylated, some islands
    kind = rng.choice(3, size=bg.size, p=[0.4, 0.3, 0.3])
    level = np.where(kind == 0, rng.uniform(0.0, 0.1, bg.size),
                     np.where(kind == 1, rng.uniform(0.85, 1.0, bg.size), rng.uniform(0.1, 0.85, bg.size)))
    u_share[bg] = level[:, None]
    p_x = rng.uniform(*cfg.intermediate, size=n_regions)[:, None]
    pi = np.stack([(1 - p_x) * u_share, np.broadcast_to(p_x, u_share.shape), (1 - p_x) * (1 - u_share)], axis=-1)
    return pi, [str(t) for t in types], targets


def _perturb_by_lineage(rng: np.random.Generator, tissues: list[str], u_share: np.ndarray, regs: np.ndarray) -> None:
    """Shift the logit of each marker's level by one draw per lineage node (and one per tissue)."""
    if regs.size == 0:
        return
    nodes: dict[tuple[str, ...], np.ndarray] = {}
    shift = np.zeros((regs.size, len(tissues)))
    for tissue_id, name in enumerate(tissues):
        path = lineage_of(name)
        for depth in range(1, len(path) + 1):
            key = path[:depth]
            if key not in nodes:
                nodes[key] = rng.normal(0.0, NODE_SD, size=regs.size)
            shift[:, tissue_id] += nodes[key]
        shift[:, tissue_id] += rng.normal(0.0, NODE_SD, size=regs.size)
    clipped = np.clip(u_share[regs], 1e-3, 1 - 1e-3)
    u_share[regs] = expit(logit(clipped) + shift)


def cpg_meth_probs(rng: np.random.Generator, cpg_region: np.ndarray) -> np.ndarray:
    """(C, 3) P(methylated | state U, X, M) per CpG.

    In-region CpGs: U-state fragments are mostly unmethylated, M-state mostly methylated, with
    per-CpG noise so CpGs of a read agree without being identical. Background CpGs are ~75%
    methylated (as the human genome outside islands) and ignore the state.
    """
    n = cpg_region.shape[0]
    q = np.empty((n, 3))
    q[:, 0] = rng.uniform(0.01, 0.08, n)
    q[:, 1] = rng.uniform(0.4, 0.6, n)
    q[:, 2] = rng.uniform(0.85, 0.98, n)
    bg = cpg_region < 0
    q[bg] = rng.beta(6.0, 2.0, size=int(bg.sum()))[:, None]
    return q

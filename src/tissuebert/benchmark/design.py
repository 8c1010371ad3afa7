"""In-silico mixture designs (spike-in series, sparse Dirichlet mixtures, depth sweep) and the
draw of each mixture's reads from the pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tissuebert.errors import TissueBertError

SPIKE_LEVELS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
DEPTHS = (10.0, 30.0, 100.0)


@dataclass
class Mixture:
    mixture_id: int
    kind: str  # "spike" or "dirichlet"
    depth: float  # reads per panel window
    truth: np.ndarray  # (T,) true proportions
    spike_tissue: int = -1  # spike-in series: the tissue spiked into the background
    level: float = float("nan")  # spike-in fraction
    replicate: int = 0


def background_weights(tissues: list[str], names: list[str] | None) -> np.ndarray:
    """(T,) background composition: the named tissues, or by default every tissue called Blood*,
    weighted by their share of blood cells when known (granulocytes and T cells dominate)."""
    from tissuebert.simulate.tissues import BLOOD_SHARES

    if names:
        unknown = [n for n in names if n not in tissues]
        if unknown:
            raise TissueBertError(f"--background tissue(s) {unknown} not in the checkpoint's tissues",
                                  hint=f"choose from {', '.join(tissues)}")
        chosen = list(names)
    else:
        chosen = [t for t in tissues if t.lower().startswith("blood")]
        if not chosen:
            raise TissueBertError("no tissue named Blood*: cannot pick the spike-in background",
                                  hint="pass --background TISSUE (repeatable)")
    weights = np.zeros(len(tissues))
    for name in chosen:
        weights[tissues.index(name)] = BLOOD_SHARES.get(name, 1.0)
    return weights / weights.sum()


def design_mixtures(n_tissues: int, background: np.ndarray, available: np.ndarray, *, spike_levels=SPIKE_LEVELS,
                    replicates: int = 10, n_dirichlet: int = 100, depths=DEPTHS, spike_depth: float = 30.0,
                    max_components: int = 5, seed: int = 0) -> list[Mixture]:
    """Spike-in series of every available non-background tissue at ``spike_depth`` (level 0 =
    blanks), and ``n_dirichlet`` random sparse mixtures at each depth of the sweep.

    ``available`` (T,) bool marks tissues with held-out reads; only they enter mixtures.
    """
    rng = np.random.default_rng(seed)
    mixtures: list[Mixture] = []
    spiked = [t for t in range(n_tissues) if available[t] and background[t] == 0]
    for tissue in spiked:
        for level in spike_levels:
            truth = (1.0 - level) * background
            truth[tissue] += level
            for rep in range(replicates):
                mixtures.append(Mixture(len(mixtures), "spike", spike_depth, truth.copy(), tissue, float(level), rep))
    pool = np.flatnonzero(available)
    for depth in depths:
        for rep in range(n_dirichlet):
            k = int(rng.integers(2, min(max_components, pool.size) + 1))
            chosen = rng.choice(pool, size=k, replace=False)
            truth = np.zeros(n_tissues)
            truth[chosen] = rng.dirichlet(np.ones(k))
            mixtures.append(Mixture(len(mixtures), "dirichlet", float(depth), truth, replicate=rep))
    return mixtures


def draw_reads(mixture: Mixture, rows_of_tissue: list[np.ndarray], n_reads: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The mixture's reads as (pool rows, multiplicities): tissue counts are multinomial in the
    true proportions; each tissue's reads are drawn uniformly, with replacement, from its pool."""
    per_tissue = rng.multinomial(n_reads, mixture.truth)
    picks = [rng.choice(rows_of_tissue[t], size=int(n)) for t, n in enumerate(per_tissue) if n > 0]
    rows, counts = np.unique(np.concatenate(picks), return_counts=True)
    return rows, counts.astype(np.float64)

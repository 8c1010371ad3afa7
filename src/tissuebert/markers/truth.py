"""How well a marker panel recovers a simulated cohort's true marker blocks.

The simulator's truth (simulate/truth.py) types every methylation block; the true markers of a
target are its ``tissue_u``/``group_u`` blocks (direction U) and ``tissue_m``/``group_m`` blocks
(direction M). Targets are compared by their set of classes, so a group named differently (or
two simulator groups with the same classes) still match.

- precision: share of selected rows whose block's CpGs lie mostly in a true marker block of the
  row's target and direction;
- recall: share of true marker blocks with >= ``min_cpgs`` CpGs (fewer can hold no informative
  fragment under UXM's rule) that some selected row of the same target and direction overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TYPE_DIRECTION = {"tissue_u": "U", "group_u": "U", "tissue_m": "M", "group_m": "M"}


@dataclass
class PanelScore:
    n_selected: int
    n_correct: int
    n_true: int
    n_found: int
    per_target: dict[str, tuple[int, int, int, int]]  # target -> (selected, correct, true, found)

    @property
    def precision(self) -> float:
        return self.n_correct / self.n_selected if self.n_selected else float("nan")

    @property
    def recall(self) -> float:
        return self.n_found / self.n_true if self.n_true else float("nan")


def _members(truth, target: str, blk_type: str) -> frozenset[str]:
    from tissuebert.simulate.tissues import groups_of

    if blk_type.startswith("tissue"):
        return frozenset([target])
    for group in groups_of(truth.tissues):
        if group.name == target:
            return frozenset(truth.tissues[m] for m in group.members)
    return frozenset()


def score_panel(rows: list[dict], truth, groups: dict[str, frozenset[str]], min_cpgs: int) -> PanelScore:
    """``rows``: the marker BED's rows; ``groups``: group target -> its classes."""
    chrom_of = {c: k for k, c in enumerate(truth.chroms)}
    blk_chrom = truth.reg_chrom[truth.blk_region]
    n_cpgs = np.bincount(truth.cpg_block[truth.cpg_block >= 0], minlength=truth.n_blocks)
    key = [None] * truth.n_blocks  # (members, direction) of each true marker block
    for b, kind in enumerate(truth.blk_type):
        if kind in TYPE_DIRECTION:
            key[b] = (_members(truth, truth.blk_target[b], kind), TYPE_DIRECTION[kind])
    cpg_gpos = truth.cpg_gpos()
    offsets = truth.chrom_offsets()
    found = np.zeros(truth.n_blocks, dtype=bool)
    per: dict[str, list[int]] = {}
    n_correct = 0
    for row in rows:
        members = groups.get(row["target"], frozenset([row["target"]]))
        want = (members, row["direction"])
        chrom = chrom_of[row["chrom"]]
        lo, hi = np.searchsorted(cpg_gpos, [offsets[chrom] + row["start"], offsets[chrom] + row["end"]])
        blocks = truth.cpg_block[lo:hi]
        blocks = blocks[blocks >= 0]
        stats = per.setdefault(row["target"], [0, 0, 0, 0])
        stats[0] += 1
        if blocks.size:
            main = int(np.bincount(blocks).argmax())
            if key[main] == want:
                n_correct += 1
                stats[1] += 1
        for b in np.unique(blocks).tolist():
            if key[b] == want and blk_chrom[b] == chrom:
                found[b] = True
    names = {frozenset([t]): t for t in truth.tissues}
    names.update({m: g for g, m in groups.items()})
    is_true = np.array([k is not None for k in key]) & (n_cpgs >= min_cpgs)
    for b in np.flatnonzero(is_true).tolist():
        name = names.get(key[b][0], "+".join(sorted(key[b][0])))
        stats = per.setdefault(name, [0, 0, 0, 0])
        stats[2] += 1
        stats[3] += int(found[b])
    return PanelScore(len(rows), n_correct, int(is_true.sum()), int((found & is_true).sum()),
                      {k: tuple(v) for k, v in per.items()})

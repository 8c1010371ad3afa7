"""Marker statistics and selection: one-vs-rest (a class) and group-vs-rest (a set of classes).

For a target and a direction, a sample's value in a block is its U-fragment fraction (hypo, "U")
or M-fragment fraction (hyper, "M"); with ``score="beta"`` it is 1 - mean methylation or the
mean methylation, NaN below the coverage floor. A block is
a marker of the target when

- every target class and at least ``min_bg_classes`` of the other classes are covered,
- ``delta`` = (lowest target class value) - (highest other class value) >= ``min_delta``
  (UXM's delta_maxmin at class level: the target beats its closest rival),
- a one-sided test of the target's samples against the others' gives p <= ``max_pval``:
  Mann-Whitney U (``scipy.stats.mannwhitneyu``, the default) or Welch's t-test
  (``scipy.stats.ttest_ind``); a target with a single sample is tested with ``ttest_1samp`` of
  the others against its value.

Class values pool the counts of the class's samples (as UXM's atlas does). A block passing for
several targets in one direction is kept for the one with the largest ``delta`` (a lineage group
marker whose one member is a little higher is still the group's).

Candidates are ranked by ``delta`` (then p) and the best ``per_target`` are kept per direction.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from tissuebert.markers.counts import CALLS, FRAG, METH, M, U

DIRECTIONS = ("U", "M")  # hypo- and hyper-methylated in the target
STAT_COLUMNS = ("delta", "tg_mean", "bg_mean", "bg_max", "pval", "tg_beta", "bg_beta", "tg_frags", "bg_frags")
SCORES = ("fragments", "beta")
TESTS = ("welch", "mannwhitney")


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "class" or "group"
    members: tuple[int, ...]  # class ids


@dataclass(frozen=True)
class SelectRule:
    score: str = "fragments"
    min_coverage: float = 5.0  # fragments (or calls, for score=beta) a sample needs in a block to count
    min_delta: float = 0.15
    max_pval: float = 0.01
    min_bg_classes: float = 0.8  # share of the other classes that must be covered
    per_target: int = 100  # markers kept per target and direction
    test: str = "mannwhitney"  # welch (scipy ttest_ind, unequal variances) or mannwhitney (scipy mannwhitneyu)
    pooled: bool = True  # class value from pooled counts (else the mean of its samples' values)


@dataclass
class Selected:
    """Passing candidates of one (target, direction): block ids (global) and their statistics."""

    block: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    stats: np.ndarray = field(default_factory=lambda: np.zeros((0, len(STAT_COLUMNS))))
    n_passing: int = 0

    def merge(self, block: np.ndarray, stat: np.ndarray, per_target: int) -> None:
        self.n_passing += int(block.size)
        self.block = np.concatenate([self.block, block])
        self.stats = np.concatenate([self.stats, stat])
        self.keep_best(per_target)

    def keep_best(self, per_target: int) -> None:
        order = np.lexsort((self.block, self.stats[:, STAT_COLUMNS.index("pval")],
                            -self.stats[:, STAT_COLUMNS.index("delta")]))[:per_target]
        self.block, self.stats = self.block[order], self.stats[order]


def _values(counts: np.ndarray, direction: str, rule: SelectRule) -> np.ndarray:
    """(S, b) per-sample value of the chunk's blocks; NaN below the coverage floor."""
    if rule.score == "beta":
        cov = counts[:, :, CALLS]
        beta = np.divide(counts[:, :, METH], cov, out=np.full(cov.shape, np.nan), where=cov > 0)
        val = 1.0 - beta if direction == "U" else beta
    else:
        cov = counts[:, :, FRAG]
        num = counts[:, :, U if direction == "U" else M]
        val = np.divide(num, cov, out=np.full(cov.shape, np.nan), where=cov > 0)
    return np.where(cov >= rule.min_coverage, val, np.nan)


def _pooled(counts: np.ndarray, onehot: np.ndarray, direction: str, rule: SelectRule) -> np.ndarray:
    """(C, b) a class's value from its covered samples' counts pooled (as UXM's atlas is): deep
    samples weigh more than shallow ones."""
    if rule.score == "beta":
        cov = counts[:, :, CALLS]
        num = counts[:, :, METH] if direction == "M" else cov - counts[:, :, METH]
    else:
        cov = counts[:, :, FRAG]
        num = counts[:, :, U if direction == "U" else M]
    ok = cov >= rule.min_coverage
    total, n = onehot @ np.where(ok, num, 0.0), onehot @ np.where(ok, cov, 0.0)
    return np.divide(total, n, out=np.full(total.shape, np.nan), where=n > 0)


def _class_means(values: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """(C, b) mean over each class's covered samples (NaN where none is covered)."""
    ok = ~np.isnan(values)
    total = onehot @ np.where(ok, values, 0.0)
    n = onehot @ ok.astype(np.float64)
    return np.divide(total, n, out=np.full(total.shape, np.nan), where=n > 0)


def _mannwhitney_p(tg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """One-sided Mann-Whitney per column, each column's method decided by that column alone.

    scipy's ``method="auto"`` decides exact vs asymptotic for the whole call (or per column only
    when NaNs force a loop), so a block's p-value depended on the other blocks of its chunk. Here
    a column is exact when it has no missing value, no tie and <= 8 samples on each side (scipy's
    own rule), asymptotic otherwise.
    """
    res = stats.mannwhitneyu(tg, bg, axis=0, alternative="greater", nan_policy="omit", method="asymptotic")
    p = np.asarray(res.pvalue, dtype=np.float64).copy()
    if tg.shape[0] <= 8 and bg.shape[0] <= 8:
        both = np.sort(np.concatenate([tg, bg]), axis=0)
        exact = ~np.isnan(both).any(axis=0) & ~(np.diff(both, axis=0) == 0).any(axis=0)
        if exact.any():
            p[exact] = stats.mannwhitneyu(tg[:, exact], bg[:, exact], axis=0, alternative="greater",
                                          method="exact").pvalue
    return p


def _pvalues(values: np.ndarray, in_target: np.ndarray, cand: np.ndarray, test: str) -> np.ndarray:
    """One-sided p (target higher) for the candidate blocks ``cand`` of the chunk."""
    if cand.size == 0:
        return np.zeros(0)
    tg = values[in_target][:, cand]  # (S_t, n)
    bg = values[~in_target][:, cand]  # (S_b, n)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical values: scipy's precision note
        if in_target.sum() == 1:
            p = stats.ttest_1samp(bg, popmean=tg[0], axis=0, alternative="less", nan_policy="omit").pvalue
        elif test == "mannwhitney":
            p = _mannwhitney_p(tg, bg)
        else:
            p = stats.ttest_ind(tg, bg, axis=0, equal_var=False, alternative="greater", nan_policy="omit").pvalue
        p = np.asarray(p, dtype=np.float64)
        # no spread on either side (all target samples alike, all others alike): the t statistic
        # is undefined; the candidates already beat every other class by min_delta, so they pass.
        # Any other undefined p (too few covered samples) fails.
        flat = (np.nanstd(tg, axis=0) == 0) & (np.nanstd(bg, axis=0) == 0)
    return np.where(np.isnan(p), np.where(flat, 0.0, 1.0), p)


def select_chunk(counts: np.ndarray, sample_class: np.ndarray, n_classes: int, targets: list[Target],
                 rule: SelectRule, block_offset: int, results: dict[tuple[str, str], Selected]) -> None:
    """Score one chunk of blocks (``counts``: (S, b, N_COUNTS)) for every target and direction."""
    onehot = np.zeros((n_classes, sample_class.size))
    onehot[sample_class, np.arange(sample_class.size)] = 1.0
    cov = counts[:, :, CALLS]
    beta = np.divide(counts[:, :, METH], cov, out=np.full(cov.shape, np.nan), where=cov > 0)
    class_beta = _class_means(beta, onehot)
    class_frags = onehot @ counts[:, :, FRAG]  # (C, b)
    for direction in DIRECTIONS:
        values = _values(counts, direction, rule)
        class_val = _pooled(counts, onehot, direction, rule) if rule.pooled else _class_means(values, onehot)
        found = [_score_target(target, values, class_val, class_beta, class_frags, sample_class, n_classes, rule)
                 for target in targets]
        # a block is a marker of one target per direction: the level of the hierarchy where it
        # separates best (a group marker with one member a little higher is still the group's)
        best = np.full(counts.shape[1], -np.inf)
        for cand, stat in found:
            np.maximum.at(best, cand, stat[:, 0])
        for target, (cand, stat) in zip(targets, found):
            keep = stat[:, 0] >= best[cand]
            results.setdefault((target.name, direction), Selected()).merge(cand[keep] + block_offset, stat[keep],
                                                                          rule.per_target)


def _score_target(target: Target, values: np.ndarray, class_val: np.ndarray, class_beta: np.ndarray,
                  class_frags: np.ndarray, sample_class: np.ndarray, n_classes: int, rule: SelectRule
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Chunk-relative ids of the blocks passing for ``target`` and their ``STAT_COLUMNS``."""
    member = np.zeros(n_classes, dtype=bool)
    member[list(target.members)] = True
    tg_cls, bg_cls = class_val[member], class_val[~member]
    bg_covered = (~np.isnan(bg_cls)).sum(axis=0)
    with np.errstate(all="ignore"):
        tg_min = tg_cls.min(axis=0)  # NaN when a target class is uncovered
        bg_max = np.where(bg_covered > 0, np.max(np.where(np.isnan(bg_cls), -np.inf, bg_cls), axis=0), np.nan)
        delta = tg_min - bg_max
    ok = (bg_covered >= np.ceil(rule.min_bg_classes * (~member).sum())) & (delta >= rule.min_delta)
    cand = np.flatnonzero(ok)
    pval = _pvalues(values, member[sample_class], cand, rule.test)
    keep = pval <= rule.max_pval
    cand, pval = cand[keep], pval[keep]
    if cand.size == 0:
        return cand, np.zeros((0, len(STAT_COLUMNS)))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as they should
        stat = np.stack([
            delta[cand], tg_cls[:, cand].mean(axis=0), np.nanmean(bg_cls[:, cand], axis=0), bg_max[cand], pval,
            np.nanmean(class_beta[member][:, cand], axis=0), np.nanmean(class_beta[~member][:, cand], axis=0),
            class_frags[member][:, cand].sum(axis=0), class_frags[~member][:, cand].sum(axis=0),
        ], axis=1)
    return cand, stat

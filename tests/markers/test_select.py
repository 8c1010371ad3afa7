"""Selection on hand-made counts whose markers are known."""

from __future__ import annotations

import numpy as np

from tissuebert.markers import SelectRule, Target
from tissuebert.markers.counts import COUNT_COLUMNS, FRAG, M, U
from tissuebert.markers.select import STAT_COLUMNS, select_chunk

# 3 classes x 3 samples; 100 informative fragments per sample and block
SAMPLE_CLASS = np.repeat([0, 1, 2], 3)


def _counts(u_frac: np.ndarray, m_frac: np.ndarray) -> np.ndarray:
    """(S, B) U and M fractions -> (S, B, 5) counts."""
    out = np.zeros(u_frac.shape + (len(COUNT_COLUMNS),))
    out[:, :, FRAG] = 100
    out[:, :, U] = np.round(u_frac * 100)
    out[:, :, M] = np.round(m_frac * 100)
    return out


def _run(counts, rule, targets=None):
    targets = targets or [Target(n, "class", (k,)) for k, n in enumerate("ABC")]
    results = {}
    select_chunk(counts, SAMPLE_CLASS, 3, targets, rule, 10, results)
    return {key: (sel.block.tolist(), sel.stats) for key, sel in results.items()}


def test_one_vs_rest_and_group_markers_are_found_with_their_effect():
    jitter = np.array([0.0, 0.02, -0.02] * 3)[:, None]
    u = np.repeat((0.02 + 0.01 * np.arange(9))[:, None], 4, axis=1)  # distinct values: no ties
    m = np.full((9, 4), 0.1)
    u[SAMPLE_CLASS == 0, 0] = [0.80, 0.82, 0.78]  # block 0: U marker of A (class values 0.8, 0.06, 0.09)
    m[:, 1] = 0.05
    m[SAMPLE_CLASS == 1, 1] = 0.9  # block 1: M marker of B
    u[SAMPLE_CLASS != 2, 2] = 0.6 + jitter[SAMPLE_CLASS != 2, 0]  # block 2: U marker of the group {A, B}
    # block 3: A a little higher but below min_delta: nothing
    u[SAMPLE_CLASS == 0, 3] = 0.15
    targets = [Target("A", "class", (0,)), Target("B", "class", (1,)), Target("C", "class", (2,)),
               Target("AB", "group", (0, 1))]
    got = _run(_counts(u, m), SelectRule(min_delta=0.15, max_pval=0.05), targets)
    assert got[("A", "U")][0] == [10]  # block ids are offset by the chunk start (10)
    assert got[("B", "M")][0] == [11]
    assert got[("AB", "U")][0] == [12]
    assert all(not got[(t, d)][0] for t, d in [("C", "U"), ("C", "M"), ("A", "M"), ("B", "U"), ("AB", "M")])
    stats = dict(zip(STAT_COLUMNS, got[("A", "U")][1][0]))
    # pooled class values: A = 240/300; B = (5 + 6 + 7) / 300; C = (8 + 9 + 10) / 300
    assert np.isclose(stats["tg_mean"], 0.8)
    assert np.isclose(stats["bg_max"], 27 / 300)
    assert np.isclose(stats["bg_mean"], (18 + 27) / 600)
    assert np.isclose(stats["delta"], 0.8 - 27 / 300)
    assert stats["tg_frags"] == 300 and stats["bg_frags"] == 600
    # Mann-Whitney, exact: the 3 target samples above all 6 others -> p = 1 / C(9, 3)
    assert np.isclose(stats["pval"], 1 / 84)


def test_coverage_floor_and_per_target_cap():
    u = np.full((9, 5), 0.05)
    u[SAMPLE_CLASS == 0, :] = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    counts = _counts(u, np.zeros_like(u))
    got = _run(counts, SelectRule(min_delta=0.2, max_pval=0.05, per_target=2, test="welch"))
    assert got[("A", "U")][0] == [10, 11]  # the two largest effects, best first
    # below the coverage floor in every other sample, no block can be judged against the rest
    counts[SAMPLE_CLASS != 0, :, FRAG] = 3
    got = _run(counts, SelectRule(min_delta=0.2, max_pval=0.05, min_coverage=5))
    assert got[("A", "U")][0] == []


def test_a_blocks_p_value_does_not_depend_on_the_other_blocks_of_its_chunk():
    """scipy's method="auto" decides exact vs asymptotic once per call: a block scored beside a
    block with ties (or a missing sample) got another p than alone (seen as chunk-size dependent
    panels). Both small (exact) and large (asymptotic) sample counts."""
    from tissuebert.markers.select import _pvalues

    rng = np.random.default_rng(1)
    for n_samples in (6, 40):
        in_target = np.arange(n_samples) < n_samples // 3
        clean = rng.random((n_samples, 1)) + in_target[:, None] * 0.5  # no ties, nothing missing
        tied = np.round(rng.random((n_samples, 1)), 1)  # ties
        missing = rng.random((n_samples, 1))
        missing[0] = np.nan
        alone = _pvalues(clean, in_target, np.array([0]), "mannwhitney")[0]
        for other in (tied, missing):
            both = _pvalues(np.hstack([clean, other]), in_target, np.array([0, 1]), "mannwhitney")[0]
            assert both == alone, (n_samples, both, alone)

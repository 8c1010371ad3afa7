"""data/sampler.py cases the whole-module mutation run (issue 17) showed untested: files and windows
left with no eligible read, a file with one covered window, the RAM-or-map choice at and around its
threshold and the line it logs, and the documented defaults.

Mutants each test kills (src/tissuebert/data/sampler.py, lines as of this file's commit; each applied
by hand with the test failing):

- test_every_draw_is_an_eligible_read_of_its_window (both storage modes): 68, `concatenate([[0], ...])`
  -> `[[1], ...]` (the first window's reads shifted by one); 69, `counts > 0` -> `>= 0`, `> -1` (windows
  without an eligible read drawn: the row before them comes back); 109, `covered.size == 0` -> `< 0`,
  `== -1` (a file without eligible reads kept and drawn), `== 1` (a file with one covered window
  dropped); 111, `continue` -> `break` (the files after an empty one dropped).
- test_the_split_goes_to_ram_when_it_fits_in_half_the_free_memory: 31, `RAM_FRACTION = 0.5` -> `1.5`;
  94, `need <= RAM_FRACTION * free` -> `==`.
- test_the_ram_choice_is_logged_in_megabytes: 95, the 14 mutants of `need / 1e6` and `free / 1e6`
  (`+ - * // %`, 1e6 -> 999999.0 / 1000001.0, each side); 96, the choice's words negated.
- test_defaults_are_seed_0_rank_0_and_keyword_only: 82, `*,` -> `/,`; 83, `seed = 0` -> `1`, `-1`;
  231, `rank = 0` -> `1`.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tissuebert.data import sampler as sampler_module
from tissuebert.data.sampler import TrainSampler


def _chosen_rows(store):
    """Eligible rows per training file, chosen to hit the edge cases: file 0 keeps reads of windows 0
    and 3 only (window 0 first: its start is position 0), file 1 none, file 2 one read of one window,
    file 3 every second read."""
    files = store.samples("train")
    windows = [np.asarray(store.reads(rec).window_idx) for rec in files]
    chosen = [np.flatnonzero(np.isin(windows[0], [0, 3])), np.empty(0, np.int64),
              np.flatnonzero(windows[2] == 4)[:1], np.arange(0, windows[3].size, 2)]
    assert windows[0][0] == 0 and chosen[0].size > 10 and chosen[2].size == 1  # the premises
    return files, chosen


@pytest.mark.parametrize("in_memory", [True, False])
def test_every_draw_is_an_eligible_read_of_its_window(unbalanced, monkeypatch, in_memory):
    # The sampler's contract: draw only among the rows eligibility keeps, and keep every file that has
    # some. Eligibility itself is tested in test_eligibility; here it is replaced by chosen rows.
    files, chosen = _chosen_rows(unbalanced)
    by_id = {rec.sample_id: rows for rec, rows in zip(files, chosen)}
    in_file_order = iter(chosen)  # the sampler asks once per training file, in the store's order
    monkeypatch.setattr(sampler_module, "sample_eligible_rows", lambda *args: next(in_file_order))
    sampler = TrainSampler(unbalanced, seed=3, in_memory=in_memory, min_cpgs=2)
    assert [rec.sample_id for rec in sampler.samples] == [files[i].sample_id for i in (0, 2, 3)]
    assert sampler.n_reads == sum(rows.size for rows in chosen)
    batch = sampler.batch(0, 0, 6000)
    windows = [np.asarray(unbalanced.reads(rec).window_idx) for rec in sampler.samples]  # read once per file
    eligible = [set(by_id[rec.sample_id].tolist()) for rec in sampler.samples]
    drawn = {}
    for f, w, row in zip(batch.file_pos.tolist(), batch.window_idx.tolist(), batch.row.tolist()):
        rec = sampler.samples[f]
        assert row in eligible[f], (rec.sample_id, row)
        assert int(windows[f][row]) == w  # the row is a read of the window drawn
        drawn.setdefault(rec.sample_id, set()).add(row)
    # ~1500 draws per remaining file of tissue "a", spread over its windows: every eligible read comes up
    assert drawn[files[0].sample_id] == set(chosen[0].tolist())
    assert drawn[files[2].sample_id] == set(chosen[2].tolist())


def test_the_split_goes_to_ram_when_it_fits_in_half_the_free_memory(unbalanced, monkeypatch):
    # data.in_memory = null: in RAM when the split takes at most half the free RAM (docs/training.md)
    need = unbalanced.sample_bytes("train")
    for free, in_ram in [(2 * need, True), (2 * need - 2, False), (20 * need, True), (need, False)]:
        monkeypatch.setattr(sampler_module, "available_ram_bytes", lambda free=free: free)
        assert TrainSampler(unbalanced, seed=0).in_memory is in_ram, free / need


@pytest.mark.parametrize("need, free, shown", [
    (3_050_001, 7_049_999, "3.1 MB, 7.0 MB RAM free -> in RAM"),
    (3_049_999, 7_050_001, "3.0 MB, 7.1 MB RAM free -> in RAM"),
    (9_000_000, 7_000_000, "9.0 MB, 7.0 MB RAM free -> memory-mapped"),
])
def test_the_ram_choice_is_logged_in_megabytes(unbalanced, monkeypatch, caplog, need, free, shown):
    # each size sits a hair off a rounding edge of %.1f, so a divisor off by one part in a million shows
    monkeypatch.setattr(unbalanced, "sample_bytes", lambda split: need)
    monkeypatch.setattr(sampler_module, "available_ram_bytes", lambda: free)
    caplog.set_level(logging.INFO, logger="tissuebert")
    TrainSampler(unbalanced, seed=0)
    assert [r.getMessage() for r in caplog.records if "RAM free" in r.getMessage()] == \
        [f"sampler: train split is {shown}"]


def test_defaults_are_seed_0_rank_0_and_keyword_only(unbalanced):
    default = TrainSampler(unbalanced, in_memory=True)
    explicit = TrainSampler(unbalanced, seed=0, in_memory=True)
    a, b = default.batch(1, 2, 64), explicit.batch(1, 2, 64, rank=0)
    assert np.array_equal(a.row, b.row) and np.array_equal(a.meth, b.meth)
    with pytest.raises(TypeError):
        TrainSampler(unbalanced, "train")

"""The method table (deconvolve/methods.py) is the one place a method is added: a toy row,
monkeypatched in, is offered by `deconvolve`, bootstrapped like the others, and run by the
benchmark by default, with no other edit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tissuebert.cli.app import main
from tissuebert.constants import OUT
from tissuebert.deconvolve.bootstrap import bootstrap, index_draw, multinomial_draw
from tissuebert.deconvolve.methods import NEEDS, REGISTRY, Method, method_help, method_names


def _toy_fit(ev, weights, **_):
    """The mean posterior, written again: its outputs must then equal mean-posterior's exactly."""
    return (weights @ ev.post) / weights.sum()


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(REGISTRY, "toy", Method("toy", NEEDS.MODEL, _toy_fit, lambda ev, w, est: w @ ev.post))
    return "toy"


def _rows(path):
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_a_registered_method_is_listed_and_deconvolves(tiny, toy, tmp_path):
    assert toy in method_names() and toy in method_names(NEEDS.MODEL) and "toy" in method_help()
    out = tmp_path / "toy"
    assert main(["deconvolve", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root),
                 "--sample", "Liver_test0", "--method", "toy,mean-posterior", "--bootstrap", "10",
                 "--precision", "fp32", "--no-posteriors", "--out", str(out)]) == 0
    rows = _rows(out / OUT.PROPORTIONS)
    toy_rows = [r for r in rows if r["method"] == "toy"]
    ref_rows = [r for r in rows if r["method"] == "mean-posterior"]
    assert len(toy_rows) == len(ref_rows) == len(tiny.store.tissues)
    for a, b in zip(toy_rows, ref_rows):
        # same estimator, same seed, same read bootstrap: identical values, intervals included
        assert {k: v for k, v in a.items() if k != "method"} == {k: v for k, v in b.items() if k != "method"}
    assert any(float(r["ci_high"]) > float(r["ci_low"]) for r in toy_rows)  # a real interval was drawn
    assert json.loads((out / OUT.RUN_INFO).read_text())["methods"] == ["toy", "mean-posterior"]


def test_an_unknown_method_names_the_table(tiny, tmp_path, capsys):
    assert main(["deconvolve", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root),
                 "--sample", "Liver_test0", "--method", "toy", "--out", str(tmp_path / "x")]) == 2
    assert "unknown method 'toy'; choose from em, mean-posterior, argmax, logreg, uxm, nnls" in capsys.readouterr().err


def test_a_registered_method_runs_in_the_benchmark_by_default(tiny, toy, tmp_path):
    out = tmp_path / "bench"
    assert main(["benchmark", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--out", str(out),
                 "--replicates", "1", "--mixtures", "3", "--depth", "5", "--spike-depth", "5",
                 "--precision", "fp32"]) == 0
    result = json.loads((out / OUT.BENCHMARK_JSON).read_text())
    assert list(result["methods"]) == [*method_names()]  # the default list is the table's
    assert result["methods"]["toy"] == result["methods"]["mean-posterior"]


def test_one_bootstrap_for_reads_and_for_regions():
    # reads: resampling (row, multiplicity) pairs keeps N; regions: indices with replacement
    weights = np.array([5.0, 0.0, 3.0, 2.0])
    draws = [multinomial_draw(weights)(np.random.default_rng(s)) for s in range(20)]
    assert all(d.sum() == 10 and d[1] == 0 for d in draws)
    picks = index_draw(6)(np.random.default_rng(0))
    assert picks.shape == (6,) and picks.min() >= 0 and picks.max() < 6
    # the interval sits around the given estimate, and no replicate means NaN bounds
    low, high, reps = bootstrap(lambda w: w / w.sum(), multinomial_draw(weights), n_out=4, n_boot=50,
                                estimate=weights / weights.sum())
    assert reps.shape == (50, 4) and np.all(low <= weights / 10) and np.all(weights / 10 <= high)
    low, high, reps = bootstrap(lambda w: w, multinomial_draw(weights), n_out=4, n_boot=0)
    assert reps.shape == (0, 4) and np.isnan(low).all() and np.isnan(high).all()

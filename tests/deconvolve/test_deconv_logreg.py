"""Deconvolution by the simple rival: EM over logreg likelihoods, and `deconvolve --method logreg`."""

from __future__ import annotations

import numpy as np

from tissuebert.cli.app import main
from tissuebert.constants import OUT
from tissuebert.deconvolve import em_proportions
from tissuebert.deconvolve.output import read_proportions_tsv
from tissuebert.deconvolve.run import logreg_loglik, proportions_from_loglik
from tissuebert.store.sample import pack_calls
from tissuebert.train.logreg import fit_logreg

import tinystore


def test_logreg_em_recovers_a_known_mixture(tiny):
    # 6,000 fresh reads of a 30/70 Blood/Liver mixture (Lung absent), as for the model's EM test
    rng = np.random.default_rng(11)
    truth = np.array([0.3, 0.7, 0.0])
    window, calls = tinystore.draw_reads(rng, rng.choice(3, size=6000, p=truth))
    packed = pack_calls(calls, tiny.store.panel.call_bytes)
    fit = fit_logreg(tiny.store)
    res = proportions_from_loglik(logreg_loglik(fit, tiny.store.panel, window, packed), None, fit.tissues)
    oracle = em_proportions(tinystore.oracle_loglik(window, calls))
    # the oracle's own sampling error at 6,000 reads is ~0.02 per component; logreg is at the
    # Bayes ceiling on these reads (tests/train), so it must land close to the oracle's estimate
    assert np.abs(oracle - truth).max() < 0.06
    assert np.abs(res.proportions - oracle).max() < 0.04
    assert np.abs(res.proportions - truth).max() < 0.07


def test_deconvolve_cli_logreg_needs_a_store(tiny, tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["deconvolve", "--store", str(tiny.store.root), "--sample", "Liver_test0", "--method", "logreg,nnls",
                 "--bootstrap", "10", "--out", str(out)]) == 0
    props = read_proportions_tsv(out / OUT.PROPORTIONS)
    # a pure Liver sample of 600 reads: each read is ~59% right alone, EM over all of them is sure
    assert props["logreg"]["Liver"] > 0.9
    assert "logreg: Liver" in capsys.readouterr().out
    pat = tmp_path / "x.pat"
    pat.write_text("chr1\t1\tCC\t1\n")
    assert main(["deconvolve", "--input", str(pat), "--method", "logreg", "--out", str(tmp_path / "d2")]) == 2
    err = capsys.readouterr().err
    assert "logreg" in err and "--store" in err and "Traceback" not in err

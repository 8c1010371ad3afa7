"""Model-based deconvolution of reads (deconvolve_reads) and `tissuebert deconvolve` on store samples."""

from __future__ import annotations

import gzip

import numpy as np

from tests.support import tinystore
from tissuebert.cli.app import main
from tissuebert.constants import OUT
from tissuebert.deconvolve import deconvolve_reads, em_proportions
from tissuebert.deconvolve.output import read_proportions_tsv
from tissuebert.inference.checkpoint import load_checkpoint
from tissuebert.store.sample import pack_calls


def test_model_em_tracks_the_oracle_and_beats_mean_posterior(tiny):
    # 6,000 fresh reads of a 70/30 Liver/Blood mixture (Lung absent).
    rng = np.random.default_rng(11)
    truth = np.array([0.3, 0.7, 0.0])
    tissue = rng.choice(3, size=6000, p=truth)
    window, calls = tinystore.draw_reads(rng, tissue)
    packed = pack_calls(calls, tiny.store.panel.call_bytes)
    state = load_checkpoint(tiny.checkpoint)
    em = deconvolve_reads(state, window, packed, panel=tiny.store.panel, n_boot=100, seed=1)
    oracle = em_proportions(tinystore.oracle_loglik(window, calls))
    # the oracle's own sampling error at 6,000 reads is ~0.02 per component; the tiny model is
    # close to Bayes-optimal on these reads (test accuracy within 0.05 of the oracle's)
    assert np.abs(oracle - truth).max() < 0.06
    assert np.abs(em.proportions - oracle).max() < 0.08
    assert abs(em.proportions.sum() - 1) < 1e-9
    assert em.n_reads == 6000 and abs(em.reads_used.sum() - 6000) < 1e-6
    assert np.all(em.ci_low <= em.ci_high)
    assert np.all(em.ci_high - em.ci_low < 0.2)
    # each read's posterior is soft, so averaging posteriors shrinks towards uniform; EM does not
    mean_post = deconvolve_reads(state, window, packed, panel=tiny.store.panel, method="mean-posterior", n_boot=0)
    assert np.abs(mean_post.proportions - truth).sum() > np.abs(em.proportions - truth).sum() + 0.1
    assert np.all(np.isnan(mean_post.ci_low))


def test_collapsed_reads_give_the_same_estimate(tiny):
    rng = np.random.default_rng(12)
    window, calls = tinystore.draw_reads(rng, rng.choice(3, size=3000, p=[0.5, 0.2, 0.3]))
    packed = pack_calls(calls, tiny.store.panel.call_bytes)
    rows = np.concatenate([window[:, None].astype(np.uint8), packed], axis=1)  # 12 windows fit a byte
    uniq, first, counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
    assert len(first) < 1500  # many repeated patterns: scoring each once pays
    state = load_checkpoint(tiny.checkpoint)
    full = deconvolve_reads(state, window, packed, panel=tiny.store.panel, n_boot=0)
    collapsed = deconvolve_reads(state, window[first], packed[first], counts, panel=tiny.store.panel, n_boot=0)
    np.testing.assert_allclose(collapsed.proportions, full.proportions, atol=1e-6)


def test_deconvolve_cli_on_a_store_sample_all_methods(tiny, tmp_path, capsys):
    out = tmp_path / "d"
    args = ["deconvolve", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--sample",
            "Liver_test0", "--method", "em,mean-posterior,argmax", "--method", "uxm", "--method", "nnls",
            "--bootstrap", "30", "--out", str(out)]
    assert main(args) == 0
    assert "em: Liver" in capsys.readouterr().out
    props = read_proportions_tsv(out / OUT.PROPORTIONS)
    assert sorted(props) == ["argmax", "em", "mean-posterior", "nnls", "uxm"]
    for method, values in props.items():
        assert max(values, key=values.get) == "Liver", method
        assert abs(sum(values.values()) - 1) < 1e-5
    assert props["em"]["Liver"] > 0.85  # a pure Liver sample
    lines = (out / OUT.PROPORTIONS).read_text().splitlines()
    assert lines[0].split("\t") == ["method", "tissue", "proportion", "ci_low", "ci_high", "reads_used"]
    em_rows = [line.split("\t") for line in lines[1:] if line.startswith("em\t")]
    # the Liver interval is a real interval around its estimate (30 replicates of 600 reads: not a point)
    liver = next(r for r in em_rows if r[1] == "Liver")
    assert float(liver[3]) < float(liver[2]) <= float(liver[4]) or float(liver[3]) <= float(liver[2]) < float(liver[4])
    assert 0.005 < float(liver[4]) - float(liver[3]) < 0.2
    assert abs(sum(float(r[5]) for r in em_rows) - 600) < 0.5  # reads attributed add up to the sample
    with gzip.open(out / OUT.POSTERIORS, "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        body = fh.read().splitlines()
    assert header == ["window", "chrom", "start", "end", "cpg_start", "pattern", "count"] + tinystore.TISSUES + ["call"]
    assert sum(int(r.split("\t")[6]) for r in body) == 600
    assert (out / OUT.PROPORTIONS_PNG).read_bytes()[:4] == b"\x89PNG"
    # user errors: one line, exit code 2
    assert main(args) == 2
    assert main(["deconvolve", "--store", str(tiny.store.root), "--sample", "Liver_test0", "--out",
                 str(tmp_path / "x")]) == 2  # em needs a checkpoint
    assert main(["deconvolve", "--checkpoint", str(tiny.checkpoint), "--method", "bogus", "--store",
                 str(tiny.store.root), "--sample", "Liver_test0", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and "bogus" in err and "Traceback" not in err


def test_a_checkpoint_of_another_panel_is_refused(tiny, tmp_path, capsys):
    # Same tissues, same window coordinates, other DNA: the model's window embeddings mean nothing
    # on this panel. Mutation: dropping the panel check in score_reads lets both calls run.
    import pytest

    from tissuebert.errors import CheckpointError

    other = tinystore.build_store(tmp_path / "other", seed=7, reads_per_sample=50)
    assert other.panel_hash != tiny.store.panel_hash and other.tissues == tiny.store.tissues
    state = load_checkpoint(tiny.checkpoint)
    reads = other.reads(other.sample("Liver_test0"))
    with pytest.raises(CheckpointError, match="panel hash"):
        deconvolve_reads(state, reads.window_idx.astype(np.int64), np.asarray(reads.calls), panel=other.panel, n_boot=0)
    out = tmp_path / "d"
    assert main(["deconvolve", "--checkpoint", str(tiny.checkpoint), "--store", str(other.root), "--sample",
                 "Liver_test0", "--bootstrap", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tissuebert: error:")]
    assert len(lines) == 1 and "panel hash" in lines[0] and "Traceback" not in err
    assert not out.exists()

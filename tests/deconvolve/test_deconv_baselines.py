"""Reference baselines: real anchors (Moss atlas mixtures, UXM tutorial samples) and store references."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import tinystore
from tissuebert.cli.app import main
from tissuebert.constants import OUT
from tissuebert.deconvolve import build_references, marker_counts, nnls_mixture, nnls_proportions, uxm_proportions
from tissuebert.deconvolve.atlas_io import pat_marker_counts, read_beta_csv, read_pat, read_uxm_atlas
from tissuebert.deconvolve.output import read_proportions_tsv
from tissuebert.store.sample import pack_calls

# examples.csv column -> true proportions (its column names state them)
MOSS_MIXTURES = {
    "Monocytes90_Breast10": {"Monocytes_EPIC": 0.9, "Breast": 0.1},
    "Adipo60Kidney30Prost10": {"Adipocytes": 0.6, "Kidney": 0.3, "Prostate": 0.1},
    "Eryth50Lung25GI25": {"Erythrocyte_progenitors": 0.5, "Lung_cells": 0.25, "Upper_GI": 0.25},
}
UXM_TOP = {"Liver_STL011": "Liver-Hep", "Pancreas_STL002": "Pancreas-Acinar", "Pancreas_STL003": "Pancreas-Acinar",
           "Sigmoid_Colon_STL003": "Colon-Ep"}


@pytest.mark.shared_data
def test_nnls_recovers_the_moss_example_mixtures(shared_data):
    atlas = read_beta_csv(shared_data / "meth_atlas" / "reference_atlas.csv")
    examples = read_beta_csv(shared_data / "meth_atlas" / "examples.csv")
    assert len(atlas.ids) == 6105  # 7,890 rows, duplicates dropped
    ref = atlas.aligned(examples.ids)
    for col, name in enumerate(examples.columns):
        est = nnls_mixture(ref, examples.values[:, col])
        truth = np.array([MOSS_MIXTURES[name].get(t, 0.0) for t in atlas.columns])
        np.testing.assert_allclose(est, truth, atol=0.02, err_msg=name)


@pytest.mark.shared_data
def test_uxm_top_class_on_the_tutorial_samples(shared_data):
    atlas = read_uxm_atlas(shared_data / "UXM_deconv" / "supplemental" / "Atlas.U25.l4.hg19.tsv")
    assert atlas.u_fraction.shape == (900, len(atlas.tissues))
    for sample, expected in UXM_TOP.items():
        pat = read_pat(shared_data / "UXM_deconv" / "tutorial" / "data" / f"{sample}.pat.gz")
        counts = pat_marker_counts(pat, atlas)
        assert counts.informative.sum() > 10000  # the slices were cut around these markers
        est = nnls_mixture(atlas.u_fraction, counts.u_fraction, weights=counts.informative)
        assert atlas.tissues[int(est.argmax())] == expected, sample
        assert est.sum() == pytest.approx(1.0)


@pytest.mark.shared_data
def test_deconvolve_cli_uxm_with_a_published_atlas(shared_data, tmp_path):
    out = tmp_path / "liver"
    pat = shared_data / "UXM_deconv" / "tutorial" / "data" / "Liver_STL011.pat.gz"
    atlas = shared_data / "UXM_deconv" / "supplemental" / "Atlas.U25.l4.hg19.tsv"
    assert main(["deconvolve", "--method", "uxm", "--atlas", str(atlas), "--input", str(pat), "--bootstrap", "20",
                 "--out", str(out)]) == 0
    props = read_proportions_tsv(out / OUT.PROPORTIONS)["uxm"]
    assert max(props, key=props.get) == "Liver-Hep"
    assert (out / OUT.PROPORTIONS_PNG).is_file()


def test_pat_marker_counts_by_hand(tmp_path):
    # markers [10, 16) and [20, 25); reads (start, pattern, count):
    #   10 TTTTTT x2 -> marker A: 6 calls, 0 meth, U fragment (x2)
    #   14 CCCCCCCCCC x1 -> A gets CpGs 14,15 (2 calls: not informative); B gets 20..23 (4 calls, M fragment)
    #   21 T.TC x1 -> B: 3 calls, not informative
    path = tmp_path / "x.pat"
    path.write_text("chr1\t10\tTTTTTT\t2\nchr1\t14\tCCCCCCCCCC\t1\nchr1\t21\tT.TC\t1\n")
    atlas_path = tmp_path / "atlas.tsv"
    atlas_path.write_text("chr\tstart\tend\tstartCpG\tendCpG\ttarget\tname\tdirection\tX\tY\n"
                          "chr1\t100\t200\t10\t16\tX\tA\tU\t0.9\t0.1\n"
                          "chr1\t300\t400\t20\t25\tY\tB\tU\t0.1\t0.8\n")
    counts = pat_marker_counts(read_pat(path), read_uxm_atlas(atlas_path))
    np.testing.assert_array_equal(counts.total_calls, [12 + 2, 4 + 3])
    np.testing.assert_array_equal(counts.meth_calls, [2, 4 + 1])
    np.testing.assert_array_equal(counts.informative, [2, 1])
    np.testing.assert_array_equal(counts.u_fragments, [2, 0])


def test_store_references_and_mixture(tiny):
    ref = build_references(tiny.store)
    # marker w is unmethylated in tissue w % 3. Expected U-fraction there: 0.9 (U state) x ~0.9
    # (at most one of ~5 calls flipped) ~ 0.81, elsewhere ~0.09; bounds leave room for the ~0.03
    # sampling sd of ~200 fragments per marker and tissue.
    for w in range(tinystore.N_WINDOWS):
        target = w % 3
        assert ref.u_fraction[w, target] > 0.7 and np.all(np.delete(ref.u_fraction[w], target) < 0.2)
        assert ref.beta[w, target] < 0.25 and np.all(np.delete(ref.beta[w], target) > 0.75)
    # a 60/30/10 mixture of freshly drawn reads: both baselines recover it (20,000 reads: sampling
    # sd of each proportion is ~0.01, the atlas itself is estimated from 2 x 600 reads per tissue)
    rng = np.random.default_rng(7)
    truth = np.array([0.6, 0.3, 0.1])
    tissue = rng.choice(3, size=20000, p=truth)
    window, calls = tinystore.draw_reads(rng, tissue)
    packed = pack_calls(calls, tiny.store.panel.call_bytes)
    sample = marker_counts(tiny.store.panel, window, packed)
    np.testing.assert_allclose(nnls_proportions(ref, sample), truth, atol=0.05)
    np.testing.assert_allclose(uxm_proportions(ref, sample), truth, atol=0.05)

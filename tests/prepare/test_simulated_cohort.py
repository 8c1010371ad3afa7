"""The simulator's .pat and Bismark BAM sheets of one cohort must give identical stores."""

from __future__ import annotations

import pytest

from tissuebert.cli.app import main
from tissuebert.store.store import Store

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    simulate = pytest.importorskip("tissuebert.simulate")
    root = tmp_path_factory.mktemp("cohort") / "cohort"
    simulate.simulate_cohort(root, preset="demo", seed=3, tissues=3, regions=12, samples_per_tissue=1,
                             min_samples_per_tissue=1, depth_min=6, depth_max=10)
    return root


def test_pat_and_bam_sheets_give_identical_stores(cohort, tmp_path):
    stores = {}
    for sheet in ("samples.tsv", "samples_bam.tsv"):
        out = tmp_path / sheet.split(".")[0]
        assert main(["prepare", "--samples", str(cohort / sheet), "--reference", str(cohort / "genome.fa"),
                     "--regions", str(cohort / "regions.bed"), "--cpg-index", str(cohort / "CpG.bed.gz"),
                     "--out", str(out)]) == 0
        stores[sheet] = Store.open(out, verify_checksums=True)
    pat, bam = stores["samples.tsv"], stores["samples_bam.tsv"]
    assert pat.panel_hash == bam.panel_hash and pat.tissues == bam.tissues
    assert [s.format for s in pat.samples()] == ["pat"] * 3 and [s.format for s in bam.samples()] == ["bismark"] * 3
    for rec in pat.samples():
        other = bam.sample(rec.sample_id)
        assert rec.n_reads > 50
        assert (rec.n_reads, rec.tissue_id, rec.split) == (other.n_reads, other.tissue_id, other.split)
        assert rec.sha256 == other.sha256  # byte-identical sample files

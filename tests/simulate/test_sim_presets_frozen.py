"""The existing presets are frozen: the same seed gives byte-identical reads and truth.

Other work runs experiments on `demo`, `small` and `atlas` cohorts, so a change to the simulator
(e.g. the latent fragment structure, off by default) must not move a single read there. The
digests were computed with the code of commit 9d6902d (before the latent structure existed).
"""

from __future__ import annotations

import gzip
import hashlib

import pytest

from tissuebert.simulate import load_truth, simulate_cohort

pytestmark = pytest.mark.slow  # end to end: deselected by `make test-fast`

DEMO_PAT_SHA256 = "f1ce223866c40a63384727a02de9b9dbc5b809f970c98564fb54242e45e0048c"
DEMO_TRUTH_SHA256 = "db35871d6c9babd8fa776b3013f1aaf10d35a961589f59d24a30070da20df387"
SMALL_PAT_SHA256 = "e8dbd2ddadb8eaf78b7819fdc56a2116a0f4d6419a43e093e371d4bc71cdaa10"


def _pat_digest(cohort) -> str:
    """sha256 over every sample's decompressed .pat text (not the gzip bytes, which depend on
    the compressor's version), in file-name order."""
    digest = hashlib.sha256()
    for path in sorted((cohort / "pat").glob("*.pat.gz")):
        digest.update(path.name.encode())
        digest.update(gzip.open(path).read())
    return digest.hexdigest()


def test_demo_preset_is_byte_identical(tmp_path):
    cohort = simulate_cohort(tmp_path / "demo", preset="demo", seed=1, write_bam=False)
    assert _pat_digest(cohort) == DEMO_PAT_SHA256
    truth = load_truth(cohort)
    assert hashlib.sha256(truth.pi.tobytes() + truth.q.tobytes()).hexdigest() == DEMO_TRUTH_SHA256


def test_small_preset_is_byte_identical(tmp_path):
    """The `small` preset's code path (22 tissues, 50-bp blocks), shrunk to seconds."""
    cohort = simulate_cohort(tmp_path / "small", preset="small", seed=3, regions=40, samples_per_tissue=3,
                             depth_min=5, depth_max=10, write_bam=False)
    assert _pat_digest(cohort) == SMALL_PAT_SHA256

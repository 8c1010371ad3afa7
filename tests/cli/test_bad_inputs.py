"""Bad inputs through the real command line (issue 12, item 7).

Each case builds its inputs in a fresh folder, runs `python -m tissuebert ...` in a subprocess
and asserts the README's promise: exit code 2, exactly one `tissuebert: error:` line naming the
file (and line or key) and what disagrees, no traceback, and the folder exactly as it was
(nothing half-written, no temporary folder left behind). One case at least per item of the
issue: coordinates (1), the file system (2), corrupt stores and indexes (3), training refusals
(4) and messages that name the real cause (5).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pysam
import pytest

from tests.support.bam_builder import HEADER, bisulfite_read, make_read
from tests.support.tiny import CPG_C, write_tiny

TESTS = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SRC = TESTS.parent / "src"


def _prepare(files, out="store", *extra):
    return ["prepare", "--samples", str(files["sheet"]), "--reference", str(files["reference"]), "--regions",
            str(files["regions"]), "--cpg-index", str(files["cpg_index"]), "--out", str(files["sheet"].parent / out),
            *extra]


def _two_samples(files):
    (files["sheet"].parent / "s2.pat").write_text("chr1\t1004\tCT\t2\n")
    files["sheet"].write_text("sample_id\ttissue\tsplit\tpath\tformat\n"
                              "s1\tliver\ttrain\ts1.pat\tpat\ns2\tlung\tval\ts2.pat\tpat\n"
                              "s3\tliver\tval\ts2.pat\tpat\ns4\tlung\ttrain\ts1.pat\tpat\n")


def _bam(root: Path, name: str, starts: list[int], header: dict = HEADER) -> Path:
    meth = {c: 1 for c in CPG_C}

    def build(start, k):
        seq, xm = bisulfite_read(start, 60, meth, bottom=False)
        return lambda h: make_read(f"r{k}", start, seq, tags={"XM": xm, "XG": "CT", "XR": "CT"}, header=h)

    path = root / name
    hdr = pysam.AlignmentHeader.from_dict(header)
    unsorted = root / f"u_{name}"
    with pysam.AlignmentFile(str(unsorted), "wb", header=hdr) as out:
        for k, start in enumerate(starts):
            out.write(build(start, k)(hdr))
    pysam.sort("-o", str(path), str(unsorted))
    unsorted.unlink()
    pysam.index(str(path))
    return path


def _bam_sheet(files, *names):
    rows = "".join(f"s{k}\t{t}\t{split}\t{n}\tbismark\n"
                   for k, (n, t, split) in enumerate(zip(names, ("liver", "lung"), ("train", "val"))))
    files["sheet"].write_text("sample_id\ttissue\tsplit\tpath\tformat\n" + rows)


def _store_with_model(root: Path, *, legacy: bool = False):
    """The tiny .pat store (4 samples) and an untrained 1-layer model on it."""
    import torch

    from tests.support.tinystore import checkpoint_state, tiny_config
    from tissuebert.cli.app import main
    from tissuebert.constants import CKPT, COORDS
    from tissuebert.inference.checkpoint import save_checkpoint
    from tissuebert.model.tissuebert import build_model
    from tissuebert.store.store import Store

    files = write_tiny(root)
    _two_samples(files)
    assert main(_prepare(files)) == 0
    store = Store.open(root / "store")
    config = tiny_config()
    torch.manual_seed(0)
    state = checkpoint_state(build_model(config.model, len(store.tissues), store.panel).eval(), config, store, 0)
    if legacy:
        del state[CKPT.PANEL_WINDOWS][COORDS.CPG_INDEX]
    save_checkpoint(root / "model.pt", state)
    return files


# ---- item 1: coordinates ------------------------------------------------------------------------

def bam_of_another_build(root):
    files = write_tiny(root)
    _bam(root, "a.bam", [90, 240], {**HEADER, "SQ": [{"SN": "chr1", "LN": 650}, {"SN": "chr2", "LN": 300}]})
    _bam_sheet(files, "a.bam")
    return _prepare(files), ["a.bam:", "contig chr1 is 650 bp in the BAM header but 600 bp in genome.fa"]


def pat_index_past_the_end(root):
    files = write_tiny(root)
    files["pat"].write_text("chr1\t1001\tCTC\t2\nchr1\t1007\tCC\t3\n")
    return _prepare(files), ["s1.pat:2:", "past the end of chr1", "CpG indices 1,001-1,005"]


def predict_with_a_shifted_cpg_index(root):
    files = _store_with_model(root)
    files["cpg_index"].write_text("".join(f"chr1\t{c + 1}\t{1002 + k}\n" for k, c in enumerate(CPG_C)))
    return (["predict", "--checkpoint", str(root / "model.pt"), "--input", str(files["pat"]), "--cpg-index",
             str(files["cpg_index"]), "--reference", str(files["reference"]), "--out", str(root / "p.tsv.gz")],
            ["CpG.bed:", "numbers CpG chr1:101 as 1002", "trained with numbered it 1001"])


def deconvolve_pat_without_cpg_index(root):
    files = _store_with_model(root, legacy=True)
    return (["deconvolve", "--checkpoint", str(root / "model.pt"), "--input", str(files["pat"]), "--reference",
             str(files["reference"]), "--out", str(root / "deconv")], ["s1.pat:", "needs --cpg-index"])


# ---- item 2: the file system --------------------------------------------------------------------

def prepare_on_a_full_disk(root):
    files = write_tiny(root)
    files["pat"].write_text("\n".join(f"chr1\t1001\tCTC\t{k + 1}" for k in range(400)) + "\n")
    return _prepare(files), ["store", "cannot write:"]


# ---- item 3: corrupt stores and indexes -----------------------------------------------------------

def store_without_panel(root):
    _store_with_model(root)
    (root / "store" / "panel.h5").unlink()
    return ["validate", str(root / "store")], ["store/panel.h5:", "panel file missing"]


def truncated_sample_inspect(root):
    _store_with_model(root)
    sample = root / "store" / "samples" / "s2.h5"
    sample.write_bytes(sample.read_bytes()[:1000])
    return ["inspect", str(root / "store")], ["samples/s2.h5:", "cannot read sample 's2'", "truncated"]


def truncated_sample_evaluate(root):
    _store_with_model(root)
    sample = root / "store" / "samples" / "s1.h5"
    sample.write_bytes(sample.read_bytes()[:-700])
    return (["evaluate", "--checkpoint", str(root / "model.pt"), "--store", str(root / "store"), "--split", "val",
             "--out", str(root / "eval")], ["samples/s1.h5:", "cannot read sample 's1'"])


def bai_of_another_bam(root):
    files = write_tiny(root)
    _bam(root, "a.bam", [90] * 30 + [240] * 30)
    _bam(root, "b.bam", [380] * 2)
    shutil.copy(root / "b.bam.bai", root / "a.bam.bai")
    _bam_sheet(files, "a.bam", "b.bam")
    return _prepare(files), ["a.bam:", "the index a.bam.bai does not match the BAM", "samtools index a.bam"]


def atlas_sharing_no_marker(root):
    (root / "atlas.tsv").write_text("chr\tstart\tend\tstartCpG\tendCpG\ttarget\tname\tdirection\tLiver\tBlood\n"
                                    "chr1\t100\t200\t5001\t5006\tLiver\tm1\tU\t0.9\t0.1\n")
    (root / "s.pat").write_text("chr1\t1001\tCCCCT\t5\n")
    return (["deconvolve", "--method", "uxm", "--atlas", str(root / "atlas.tsv"), "--input", str(root / "s.pat"),
             "--bootstrap", "0", "--out", str(root / "deconv")], ["s.pat:", "no marker of the atlas atlas.tsv"])


# ---- item 4: training refusals --------------------------------------------------------------------

def tissue_without_validation_sample(root):
    files = write_tiny(root)
    (root / "s2.pat").write_text("chr1\t1004\tCT\t2\n")
    files["sheet"].write_text("sample_id\ttissue\tsplit\tpath\tformat\n"
                              "s1\tliver\ttrain\ts1.pat\tpat\ns2\tlung\ttrain\ts2.pat\tpat\ns3\tliver\tval\ts1.pat\tpat\n")
    from tissuebert.cli.app import main

    assert main(_prepare(files)) == 0
    return (["train", "--store", str(root / "store"), "--out", str(root / "run")],
            ["store/manifest.json:", "lung: no val sample", "--allow-missing-tissues"])


def schedule_too_short(root):
    _store_with_model(root)
    return (["train", "--store", str(root / "store"), "--out", str(root / "run"), "--set", "train.epochs=1",
             "--set", "train.steps_per_epoch=2"], ["train.epochs x steps per epoch = 2", "one-cycle"])


# ---- item 5: messages that name the real cause ----------------------------------------------------

def stale_fai(root):
    """The FASTA rewrapped at 50 bases a line after it was indexed at 60: same sequence, stale .fai."""
    files = write_tiny(root)
    pysam.faidx(str(files["reference"]))
    lines = files["reference"].read_text().splitlines()
    chr2 = lines.index(">chr2")
    seq = "".join(lines[1:chr2])
    files["reference"].write_text("\n".join([lines[0], *(seq[k:k + 50] for k in range(0, len(seq), 50)), *lines[chr2:]]) + "\n")
    return _prepare(files), ["genome.fa.fai:1:", "does not fit genome.fa at contig 'chr1'"]


def zero_threads(root):
    return _prepare(write_tiny(root), "store", "--threads", "0"), ["--threads must be >= 1, got 0"]


def negative_bootstrap(root):
    _store_with_model(root)
    return (["deconvolve", "--store", str(root / "store"), "--sample", "s1", "--method", "nnls", "--bootstrap", "-5",
             "--out", str(root / "d")], ["--bootstrap must be >= 0, got -5"])


def mixture_name_outside_out(root):
    return (["simulate-mixture", "--cohort", str(root), "--proportions", "A=1", "--name", "../x", "--out",
             str(root / "mix")], ["--name '../x' must be a plain file name"])


def unknown_set_key(root):
    _store_with_model(root)
    return (["train", "--store", str(root / "store"), "--out", str(root / "run"), "--set", "train.epochs=1",
             "--set", "train.epoks=2"], ["train.epoks"])


CASES: dict[str, Callable] = {f.__name__: f for f in (
    bam_of_another_build, pat_index_past_the_end, predict_with_a_shifted_cpg_index, deconvolve_pat_without_cpg_index,
    prepare_on_a_full_disk, store_without_panel, truncated_sample_inspect, truncated_sample_evaluate,
    bai_of_another_bam, atlas_sharing_no_marker, tissue_without_validation_sample, schedule_too_short, stale_fai,
    zero_threads, negative_bootstrap, mixture_name_outside_out, unknown_set_key)}


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (.fai files excluded: pysam may add one)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*")) if not p.name.endswith(".fai")}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_through_the_cli(case, tmp_path):
    root = tmp_path / "case"
    root.mkdir()
    argv, expected = CASES[case](root)
    before = _snapshot(root)

    def limits():
        if case == "prepare_on_a_full_disk":  # write(2) fails with EFBIG past 4 KiB, as a full disk fails with ENOSPC
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # no spinning thread pools on a busy CI core
    proc = subprocess.run([sys.executable, "-m", "tissuebert", *argv], capture_output=True, text=True, env=env,
                          preexec_fn=limits, timeout=600)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("tissuebert: error:")]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    assert _snapshot(root) == before  # nothing written, nothing half-written, no temporary folder

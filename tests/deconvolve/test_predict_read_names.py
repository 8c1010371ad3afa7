"""`predict --read-names` (issue 13 item 5): each row of a BAM's posteriors names the reads collapsed
into it. Checked on a real bwa-meth BAM against names recomputed here from pysam alone, on a
hand-built paired-end Bismark BAM (a pair's template name once), and refused for .pat input."""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path

import numpy as np
import pysam
import pytest
import torch

from tests.support.bam_builder import bisulfite_read, make_read, write_bam
from tests.support.tiny import write_tiny
from tests.support.tinystore import checkpoint_state, tiny_config
from tissuebert.cli.app import main
from tissuebert.constants import METH_M, METH_NONE, METH_U
from tissuebert.inference.checkpoint import save_checkpoint
from tissuebert.model.tissuebert import build_model
from tissuebert.prepare.encode import cpg_offsets, window_tokens
from tissuebert.store.builder import add_sample, assemble_manifest, ensure_panel
from tissuebert.store.manifest import SampleRecord
from tissuebert.store.panel import Panel
from tissuebert.store.sample import pack_calls
from tissuebert.store.store import Store

LOCUS = ("chr3", 119_527_800, 119_532_300)  # the wgbs_tools tutorial BAMs' NR1I2 reads (hg19)
MIN_CPGS = 1  # the tiny preset's data.min_cpgs


def _locus_cpgs(bam_path: Path) -> list[int]:
    """C positions of the locus's CpGs as the reads show them: r reads keep the C, f reads the G after it."""
    seen = {"f": defaultdict(int), "r": defaultdict(int)}
    with pysam.AlignmentFile(str(bam_path)) as bam:
        for read in bam.fetch(LOCUS[0]):
            seq = read.query_sequence
            for q, p in read.get_aligned_pairs(matches_only=True):
                if seq[q] == ("G" if read.get_tag("YD") == "f" else "C"):
                    seen[read.get_tag("YD")][p] += 1
    return sorted(p for p in seen["r"] if seen["r"][p] >= 2 and seen["f"].get(p + 1, 0) >= 2
                  and LOCUS[1] <= p < LOCUS[2] - 1)


def _store_and_checkpoint(root: Path, panel: Panel) -> tuple[Path, Path]:
    """A two-tissue store on ``panel`` (a few made-up reads) and an untrained tiny checkpoint of it."""
    store_root = root / "store"
    ensure_panel(store_root, panel)
    rng = np.random.default_rng(0)
    ids = []
    for tissue_id, tissue in enumerate(("A", "B")):
        window = np.flatnonzero(panel.n_cpgs > 0)[:4]
        calls = np.full((len(window), panel.max_cpgs), METH_NONE, np.uint8)
        for k, w in enumerate(window):
            calls[k, :panel.n_cpgs[w]] = rng.integers(METH_U, METH_M + 1, size=panel.n_cpgs[w])
        rec = SampleRecord(sample_id=tissue, tissue=tissue, tissue_id=tissue_id, split="train", file="", n_reads=0,
                           n_windows_covered=0, sha256="")
        add_sample(store_root, panel=panel, record=rec, window_idx=window, calls=pack_calls(calls, panel.call_bytes))
        ids.append(tissue)
    assemble_manifest(store_root, tissues=["A", "B"], sample_ids=ids, min_cpgs=MIN_CPGS)
    store = Store.open(store_root)
    config = tiny_config()
    torch.manual_seed(0)
    model = build_model(config.model, 2, store.panel).eval()
    ckpt = root / "model.pt"
    save_checkpoint(ckpt, checkpoint_state(model, config, store, 0))
    return store_root, ckpt


def _locus_panel(cpgs: list[int], chrom_length: int) -> Panel:
    """150 bp windows tiling the locus; bases A except the CpGs (the DNA matters not: the model is untrained)."""
    starts = np.arange(LOCUS[1], LOCUS[2] - 150 + 1, 150, dtype=np.int64)
    dna, offsets = [], []
    for start in starts:
        seq = ["A"] * 150
        for c in cpgs:
            if start <= c and c + 1 < start + 150:
                seq[c - start], seq[c + 1 - start] = "C", "G"
        text = "".join(seq)
        dna.append(window_tokens(text))
        offsets.append(cpg_offsets(text))
    n_cpgs = np.array([len(o) for o in offsets])
    ptr = np.concatenate([[0], np.cumsum(n_cpgs)]).astype(np.int64)
    positions = np.concatenate([start + np.asarray(o, np.int64) for start, o in zip(starts, offsets)])
    rank = {p: k for k, p in enumerate(sorted(set(positions.tolist())))}
    n_win = len(starts)
    return Panel(chroms=[LOCUS[0]], chrom_lengths=np.array([chrom_length]), win_chrom=np.zeros(n_win, np.int32),
                 win_start=starts, win_region=np.arange(n_win, dtype=np.int32), dna=np.stack(dna), cpg_ptr=ptr,
                 cpg_offset=np.concatenate(offsets).astype(np.uint8),
                 cpg_index=np.array([5_394_767 + rank[p] for p in positions.tolist()], np.int64),
                 reg_chrom=np.zeros(n_win, np.int32), reg_start=starts, reg_end=starts + 150,
                 reg_name=[f"w{k}" for k in range(n_win)])


def _expected_bwameth(bam_path: Path, panel: Panel) -> dict[tuple[int, str], list[str]]:
    """(window start, pattern) -> names of the reads with that pattern there, in file order, from
    pysam's alignment alone: an f read's base at the C (C/T), an r read's at the G (G/A)."""
    windows = [(int(s), [int(s) + int(o) for o in panel.cpg_offset[panel.cpg_ptr[w]:panel.cpg_ptr[w + 1]]])
               for w, s in enumerate(panel.win_start)]
    out: dict[tuple[int, str], list[str]] = defaultdict(list)
    with pysam.AlignmentFile(str(bam_path)) as bam:
        for read in bam.fetch():
            if (read.is_unmapped or read.mapping_quality < 10 or read.is_secondary or read.is_supplementary
                    or read.is_duplicate or read.is_qcfail):
                continue
            bottom = read.get_tag("YD") == "r"
            aligned = {ref: q for q, ref in read.get_aligned_pairs(matches_only=True)}
            letters = {"G": "C", "A": "T"} if bottom else {"C": "C", "T": "T"}
            for start, cpgs in windows:
                pattern = "".join(letters.get(read.query_sequence[aligned[c + bottom]], ".")
                                  if (c + bottom) in aligned else "." for c in cpgs)
                if sum(ch != "." for ch in pattern) >= MIN_CPGS:
                    out[(start, pattern)].append(read.query_name)
    return dict(out)


def _rows(path: Path) -> list[dict[str, str]]:
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


@pytest.mark.shared_data
def test_read_names_of_a_real_bwameth_bam_are_the_reads_pysam_finds(shared_data, tmp_path):
    bam_path = shared_data / "wgbs_tools" / "tutorial" / "bams" / "Lung_STL002.small.bam"
    with pysam.AlignmentFile(str(bam_path)) as bam:
        chrom_length = bam.get_reference_length(LOCUS[0])
    panel = _locus_panel(_locus_cpgs(bam_path), chrom_length)
    store, ckpt = _store_and_checkpoint(tmp_path, panel)
    out = tmp_path / "lung.posteriors.tsv.gz"
    assert main(["predict", "--checkpoint", str(ckpt), "--store", str(store), "--input", str(bam_path),
                 "--format", "bwameth", "--read-names", "--device", "cpu", "--threads", "1", "--out", str(out)]) == 0
    rows = _rows(out)
    assert list(rows[0])[-2:] == ["call", "read_names"]
    got = {(int(r["start"]), r["pattern"]): r["read_names"].split(",") for r in rows}
    for r in rows:
        assert int(r["count"]) == len(r["read_names"].split(","))
    expected = _expected_bwameth(bam_path, panel)
    assert got == expected  # every row, every name, in file order
    assert len(got) > 100 and sum(len(v) for v in got.values()) > 1000 and max(len(v) for v in got.values()) > 5
    # without the flag: the same rows, no names
    plain = tmp_path / "plain.tsv.gz"
    assert main(["predict", "--checkpoint", str(ckpt), "--store", str(store), "--input", str(bam_path),
                 "--format", "bwameth", "--device", "cpu", "--threads", "1", "--out", str(plain)]) == 0
    plain_rows = _rows(plain)
    assert "read_names" not in plain_rows[0]
    assert [{k: v for k, v in r.items() if k != "read_names"} for r in rows] == plain_rows


def test_a_pair_is_named_once_and_identical_reads_share_a_row(tmp_path, capsys):
    """Hand-built Bismark BAM over tests/support/tiny.py's chr1 (CpGs at 100, 110, 130 in window 0,
    which starts at 43), in file (coordinate) order::

        pairA  mate 1  [90, 120)   100 M, 110 M           } one fragment, merged CCT: named once
        s1             [95, 140)   100 M, 110 M, 130 U    CCT
        s2             [95, 140)   100 U, 110 U, 130 U    TTT
        s0             [95, 140)   100 M, 110 M, 130 U    CCT
        pairA  mate 2  [105, 145)  110 M, 130 U           }
    """
    files = write_tiny(tmp_path / "g")
    seq_a1, xm_a1 = bisulfite_read(90, 30, {100: 1, 110: 1}, bottom=False)
    seq_a2, xm_a2 = bisulfite_read(105, 40, {110: 1, 130: 0}, bottom=False)
    full, xm_full = bisulfite_read(95, 45, {100: 1, 110: 1, 130: 0}, bottom=False)
    none, xm_none = bisulfite_read(95, 45, {100: 0, 110: 0, 130: 0}, bottom=False)
    tags = {"XG": "CT", "XR": "CT"}

    def read(name, start, seq, xm, flag=0):
        return lambda h: make_read(name, start, seq, flag=flag, tags={**tags, "XM": xm}, header=h)

    bam = write_bam(tmp_path / "pairs.bam", [
        read("pairA", 90, seq_a1, xm_a1, flag=1 | 2 | 64), read("s1", 95, full, xm_full),
        read("s2", 95, none, xm_none), read("s0", 95, full, xm_full), read("pairA", 105, seq_a2, xm_a2, flag=1 | 2 | 128),
    ])
    (tmp_path / "g" / "s2.pat").write_bytes(files["pat"].read_bytes())  # a model needs two tissues
    files["sheet"].write_text("sample_id\ttissue\tsplit\tpath\tformat\ns1\tliver\ttrain\ts1.pat\tpat\n"
                              "s2\tlung\ttrain\ts2.pat\tpat\n")
    assert main(["prepare", "--samples", str(files["sheet"]), "--reference", str(files["reference"]), "--regions",
                 str(files["regions"]), "--cpg-index", str(files["cpg_index"]), "--out", str(tmp_path / "store")]) == 0
    store = Store.open(tmp_path / "store")
    config = tiny_config()
    torch.manual_seed(0)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, checkpoint_state(build_model(config.model, 2, store.panel).eval(), config, store, 0))
    out = tmp_path / "pairs.tsv.gz"
    assert main(["predict", "--checkpoint", str(ckpt), "--reference", str(files["reference"]), "--input", str(bam),
                 "--format", "bismark", "--read-names", "--device", "cpu", "--out", str(out)]) == 0
    rows = {r["pattern"]: (int(r["count"]), r["read_names"]) for r in _rows(out) if r["start"] == "43"}
    # file order of first alignments (sorted BAM): pairA@90, then s1, s2, s0 at 95 as written
    assert rows == {"CCT": (3, "pairA,s1,s0"), "TTT": (1, "s2")}
    # a .pat has no read names: one clear line, exit 2, nothing written
    capsys.readouterr()
    pat_out = tmp_path / "pat.tsv.gz"
    assert main(["predict", "--checkpoint", str(ckpt), "--reference", str(files["reference"]), "--cpg-index",
                 str(files["cpg_index"]), "--input", str(files["pat"]), "--read-names", "--out", str(pat_out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[tissuebert ")]
    assert len(err) == 1 and str(files["pat"]) in err[0] and ".pat file" in err[0] and "no read names" in err[0]
    assert not pat_out.exists()
    assert main(["predict", "--checkpoint", str(ckpt), "--store", str(tmp_path / "store"), "--sample", "s1",
                 "--read-names", "--out", str(pat_out)]) == 2
    assert "a store keeps reads without their names" in capsys.readouterr().err and not pat_out.exists()

"""Panel building on the hand-drawn genome of tiny.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.support.tiny import CPG_C, CPG_ORD, WIN_START, chr1_seq, write_tiny
from tissuebert.constants import DNA_KMER_OFFSET, KMERS
from tissuebert.prepare import build_panel, panel_from_coordinates, tile_region


def test_tile_region_centres_and_clips():
    assert tile_region(95, 140, 600) == [43]  # 45 bp centred: (150 - 45) // 2 = 52 before
    assert tile_region(240, 420, 600) == [180, 330]  # 180 bp -> 2 windows over a 300 bp block
    assert tile_region(0, 10, 600) == [0]  # clipped at the chromosome start
    assert tile_region(590, 600, 600) == [450]  # ... and end
    assert tile_region(100, 400, 600) == [100, 250]  # exactly 2 windows


def test_panel_windows_cpgs_and_index(tmp_path):
    files = write_tiny(tmp_path)
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    assert panel.chroms == ["chr1"]  # chr2 has no region
    assert panel.win_start.tolist() == list(WIN_START)
    assert panel.win_region.tolist() == [0, 1, 1]
    assert panel.cpg_ptr.tolist() == [0, 3, 4, 5]
    assert panel.cpg_offset.tolist() == [57, 67, 87, 70, 70]
    assert panel.cpg_index.tolist() == list(CPG_ORD)
    assert panel.reg_name == ["m1", "m2"]
    # token i is the 3-mer starting at window base i; the soft-masked FASTA is upper-cased
    seq = chr1_seq()
    expected = [KMERS.index(seq[43 + i:43 + i + 3]) + DNA_KMER_OFFSET for i in range(148)]
    assert panel.dna[0].tolist() == expected
    assert panel.dna[0, 57] == KMERS.index("CGA") + DNA_KMER_OFFSET


def test_ordinals_from_fasta_without_index(tmp_path):
    files = write_tiny(tmp_path)
    panel = build_panel(files["reference"], files["regions"])
    # every CG of chr1 in contig order, counted independently with a regex
    all_cpgs = [m.start() for m in re.finditer("(?=CG)", chr1_seq())]
    assert all_cpgs == list(CPG_C)
    assert panel.cpg_index.tolist() == [1, 2, 3, 4, 5]


def test_ordinals_from_fasta_count_earlier_contigs(tmp_path):
    (tmp_path / "g.fa").write_text(">a\nCGCGAAAA\n>b\n" + "AT" * 100 + "CG" + "AT" * 100 + "\n")
    (tmp_path / "r.bed").write_text("b\t190\t215\n")
    panel = build_panel(tmp_path / "g.fa", tmp_path / "r.bed")
    assert panel.cpg_index.tolist() == [3]  # two CpGs on contig a come first


def test_panel_from_coordinates_reproduces_hash(tmp_path):
    files = write_tiny(tmp_path)
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    rebuilt = panel_from_coordinates(files["reference"], panel.coordinates(), files["cpg_index"])
    assert rebuilt.panel_hash() == panel.panel_hash()
    assert np.array_equal(rebuilt.cpg_index, panel.cpg_index)
    assert np.array_equal(rebuilt.dna, panel.dna)


def test_overlapping_regions_share_a_window(tmp_path):
    files = write_tiny(tmp_path)
    files["regions"].write_text("chr1\t95\t140\ta\nchr1\t95\t140\tb\nchr1\t240\t420\tc\n")
    panel = build_panel(files["reference"], files["regions"], files["cpg_index"])
    assert panel.win_start.tolist() == list(WIN_START)
    assert panel.win_region.tolist() == [0, 2, 2]


@pytest.mark.parametrize("keep, extra, message", [
    (5, "chr1\t102\t1009\n", "CpG.bed:6: CpG index entry chr1:102 is 'GA' in the FASTA genome.fa, not 'CG'"),  # one base off
    (3, "", "the FASTA has a CpG at chr1:251 that the CpG index lacks"),  # entries 4, 5 missing
])
def test_cpg_index_not_matching_fasta(tmp_path, keep, extra, message):
    from tissuebert.errors import InputFormatError

    files = write_tiny(tmp_path)
    lines = files["cpg_index"].read_text().splitlines(keepends=True)
    files["cpg_index"].write_text("".join(lines[:keep]) + extra)
    with pytest.raises(InputFormatError, match=re.escape(message)):
        build_panel(files["reference"], files["regions"], files["cpg_index"])

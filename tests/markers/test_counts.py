"""Golden tests of the per-fragment counts on tiny hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tissuebert.errors import InputFormatError
from tissuebert.markers import Blocks, FragmentRule, count_beta, count_pat, read_blocks
from tissuebert.markers.counts import CALLS, FRAG, METH, M, U


def _blocks() -> Blocks:
    # block A = CpGs 1-4, block B = CpGs 5-7 (CpG index, endCpG exclusive)
    return Blocks(["chr1"], np.zeros(2, np.int32), np.array([100, 200]), np.array([150, 260]),
                  np.array([1, 5]), np.array([5, 8]))


def test_pat_counts_follow_uxm_fragment_rule(tmp_path):
    # CpG index:       1 2 3 4 | 5 6 7 | 8 9 10 11
    # read1 x2         C C C C | T T            A: 4 calls, all M -> M;   B: 2 calls, 0 M -> U
    # read2 x1           T . T | C              A: 2 calls, 0 M -> U;     B: 1 call -> not informative
    # read3 x1             C T                  A: 2 calls, half M -> informative, neither U nor M
    # read4 x1                               C C C   outside every block
    pat = tmp_path / "s.pat"
    pat.write_text("chr1\t1\tCCCCTT\t2\nchr1\t2\tT.TC\t1\nchr1\t3\tCT\t1\nchr1\t9\tCCC\t1\n")
    counts = count_pat(pat, _blocks(), FragmentRule(min_cpgs=2, u_max=0.25, m_min=0.75))
    a, b = counts
    assert a[[FRAG, U, M, METH, CALLS]].tolist() == [4, 1, 2, 2 * 4 + 0 + 1, 2 * 4 + 2 + 2]
    assert b[[FRAG, U, M, METH, CALLS]].tolist() == [2, 2, 0, 0 + 1, 2 * 2 + 1]
    # with UXM's default (>= 4 CpGs) only read1 counts in A, and nothing in B
    strict = count_pat(pat, _blocks(), FragmentRule())
    assert strict[:, FRAG].tolist() == [2, 0] and strict[:, M].tolist() == [2, 0]


def test_beta_sums_calls_per_block_and_refuses_another_genome(tmp_path):
    values = np.array([[1, 2], [0, 3], [2, 2], [0, 0], [5, 9], [1, 1], [0, 4], [7, 7]], dtype=np.uint8)
    beta = tmp_path / "s.beta"
    values.tofile(beta)
    counts = count_beta(beta, _blocks())
    assert counts[:, METH].tolist() == [1 + 0 + 2 + 0, 5 + 1 + 0]
    assert counts[:, CALLS].tolist() == [2 + 3 + 2 + 0, 9 + 1 + 4]
    assert counts[:, FRAG].sum() == 0  # a .beta holds no fragments
    with pytest.raises(InputFormatError, match="another genome"):
        count_beta(beta, _blocks(), n_genome_cpgs=28_217_448)
    short = tmp_path / "short.beta"
    values[:5].tofile(short)
    with pytest.raises(InputFormatError, match="blocks reach CpG 7"):
        count_beta(short, _blocks())


def _cpg_index(tmp_path):
    # chr1 Cs at 1-based 11 15 30 | 61 62 70 (indices 1-6); chr2 at 5 9 (indices 7-8)
    path = tmp_path / "CpG.bed"
    path.write_text("".join(f"{c}\t{loc}\t{k}\n" for k, (c, loc) in enumerate(
        [("chr1", 11), ("chr1", 15), ("chr1", 30), ("chr1", 61), ("chr1", 62), ("chr1", 70), ("chr2", 5), ("chr2", 9)],
        start=1)))
    return path


def test_tiled_blocks_span_their_cpgs(tmp_path):
    from tissuebert.markers import tile_blocks

    blocks = tile_blocks(_cpg_index(tmp_path), block_bp=50, min_cpgs=2)
    got = list(zip(blocks.chrom_names(), blocks.start.tolist(), blocks.end.tolist(), blocks.cpg_first.tolist(),
                   blocks.cpg_end.tolist()))
    # window 0-49 of chr1 holds Cs at 0-based 10, 14, 29: the block runs from the first C to the
    # last CpG's G; window 50-99 holds 60, 61, 69; chr2's window holds 4 and 8
    assert got == [("chr1", 10, 31, 1, 4), ("chr1", 60, 71, 4, 7), ("chr2", 4, 10, 7, 9)]
    assert tile_blocks(_cpg_index(tmp_path), block_bp=50, min_cpgs=3).n_blocks == 2


def test_blocks_without_cpg_columns_take_them_from_the_index(tmp_path):
    bed = tmp_path / "b.bed"
    bed.write_text("chr1\t0\t20\nchr1\t25\t65\nchr1\t80\t90\n")  # the last holds no CpG: dropped
    blocks = read_blocks(bed, _cpg_index(tmp_path))
    assert blocks.cpg_first.tolist() == [1, 3] and blocks.cpg_end.tolist() == [3, 6]
    with pytest.raises(InputFormatError, match="no startCpG/endCpG"):
        read_blocks(bed)


def test_count_file_rows_equal_the_saved_array(tmp_path):
    """The selection's plain-read access to a sample's count file returns exactly the saved rows."""
    from tissuebert.markers.run import _CountFile, auto_chunk_blocks

    arr = np.random.default_rng(0).random((1003, 5))
    np.save(tmp_path / "c.npy", arr)
    f = _CountFile(tmp_path / "c.npy")
    assert f.shape == (1003, 5)
    for lo, hi in [(0, 7), (500, 1003), (1000, 2000), (0, 1003)]:
        np.testing.assert_array_equal(f.rows(lo, hi), arr[lo:hi])
    # the automatic chunk keeps samples x chunk x 64 B near 0.5 GiB, within [1,000, all blocks]
    assert auto_chunk_blocks(455, 10**7) == 512 * 2**20 // (64 * 455)
    assert auto_chunk_blocks(10**6, 10**7) == 1_000 and auto_chunk_blocks(2, 500) == 500

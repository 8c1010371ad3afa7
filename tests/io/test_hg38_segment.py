"""Real hg38 sequence (chr22:32,000,001-32,300,000) with its real wgbs_tools CpG indices.

The segment FASTA's contig starts at genome position 32,000,001, so the test places it at its
true offset in a chr22 padded with N (the CpG index and the UXM markers use genome coordinates).
"""

from __future__ import annotations

import numpy as np
import pytest

from tissuebert.prepare import build_panel, read_sample_windows
from tissuebert.store.sample import unpack_calls

pytestmark = pytest.mark.shared_data
OFFSET = 32_000_000
# UXM hg38 U25 markers inside the segment (Atlas.U25.l4.hg38.tsv: start, end, startCpG, endCpG).
# The data README says 5, 7 and 9 CpGs; the atlas rows say 5, 9 and 7 (endCpG - startCpG), and so
# does the CpG index: the README swapped the last two.
MARKERS = [(32145256, 32145386, 27518430, 27518435), (32167100, 32167535, 27518663, 27518672),
           (32232883, 32233040, 27519702, 27519709)]


@pytest.fixture(scope="module")
def hg38(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("hg38")
    seq = "".join(ln.strip()
                  for ln in (shared_data / "kipoiseq" / "hg38_chr22_32000000_32300000.fa").read_text().splitlines()[1:])
    with open(root / "chr22.fa", "w") as fh:
        fh.write(">chr22\n")
        fh.write("N" * OFFSET)
        fh.write(seq + "\n")
    (root / "markers.bed").write_text("".join(f"chr22\t{s}\t{e}\tm{i}\n" for i, (s, e, _, _) in enumerate(MARKERS)))
    cpg = shared_data / "derived" / "hg38_chr22_32000001-32300000.CpG.bed"
    index = {int(loc): int(idx) for _, loc, idx in (ln.split("\t") for ln in cpg.read_text().splitlines())}
    return root, cpg, index


def test_markers_map_to_their_cpgs(hg38):
    root, cpg, index = hg38
    panel = build_panel(root / "chr22.fa", root / "markers.bed", cpg)
    for region, (start, end, first, stop) in enumerate(MARKERS):
        wins = np.flatnonzero(panel.win_region == region)
        locs = np.concatenate([panel.win_start[w] + panel.cpg_offset[panel.cpg_ptr[w]:panel.cpg_ptr[w + 1]] + 1 for w in wins])
        ords = np.concatenate([panel.cpg_index[panel.cpg_ptr[w]:panel.cpg_ptr[w + 1]] for w in wins])
        assert [index[int(loc)] for loc in locs] == ords.tolist()  # positions and indices agree with CpG.bed
        inside = ords[(ords >= first) & (ords < stop)]
        assert inside.tolist() == list(range(first, stop))  # 5, 9, 7 CpGs, each in exactly one window
    assert [stop - first for _, _, first, stop in MARKERS] == [5, 9, 7]


def test_pat_reads_land_on_the_listed_positions(hg38):
    root, cpg, index = hg38
    panel = build_panel(root / "chr22.fa", root / "markers.bed", cpg)
    # one read per marker covering exactly its CpGs, alternating C/T starting with C
    lines = [f"chr22\t{first}\t{''.join('CT'[k % 2] for k in range(stop - first))}\t1\n" for _, _, first, stop in MARKERS]
    (root / "s.pat").write_text("".join(lines))
    reads = read_sample_windows(root / "s.pat", "pat", panel, min_cpgs=1)
    codes = unpack_calls(reads.calls)
    loc_of = {v: k for k, v in index.items()}
    for region, (start, end, first, stop) in enumerate(MARKERS):
        got = {}
        for row in np.flatnonzero(np.isin(reads.window_idx, np.flatnonzero(panel.win_region == region))):
            w = reads.window_idx[row]
            for k, offset in enumerate(panel.cpg_offset[panel.cpg_ptr[w]:panel.cpg_ptr[w + 1]]):
                if codes[row, k] != 2:
                    got[int(panel.win_start[w] + offset + 1)] = int(codes[row, k])
        expected = {loc_of[o]: 1 - (o - first) % 2 for o in range(first, stop)}  # C -> 1, T -> 0
        assert got == expected
        assert min(got) == start and max(got) == end - 1  # marker ends are the first C and the last G


def test_prepare_cli_on_real_sequence(hg38, capsys):
    from tissuebert.cli.app import main
    from tissuebert.store.store import Store

    root, cpg, index = hg38
    lines = [f"chr22\t{first}\t{'C' * (stop - first)}\t3\n" for _, _, first, stop in MARKERS]
    (root / "all_m.pat").write_text("".join(lines))
    (root / "sheet.tsv").write_text("sample_id\ttissue\tsplit\tpath\tformat\nm\tBlood\ttrain\tall_m.pat\tpat\n")
    out = root / "store"
    assert main(["prepare", "--samples", str(root / "sheet.tsv"), "--reference", str(root / "chr22.fa"),
                 "--regions", str(root / "markers.bed"), "--cpg-index", str(cpg), "--out", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    store = Store.open(out)
    reads = store.reads("m")
    n_cpgs = store.panel.n_cpgs[reads.window_idx]
    codes = unpack_calls(reads.calls)
    # each of the 3 copies of a read calls M at every marker CpG of each window it touches
    assert int((codes == 1).sum()) == 3 * (5 + 9 + 7)
    assert all((codes[r, :n] != 0).all() for r, n in enumerate(n_cpgs))

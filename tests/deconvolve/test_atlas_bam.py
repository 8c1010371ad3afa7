"""UXM with --atlas on BAM input (issue 12, item 6): real BAMs, CpG index and atlas derived here.

No hg19 FASTA or CpG index is at hand, so each test derives what the atlas route needs from the
reads without tissuebert code (pysam pileups and pysam's own MD decoding), counts every marker's
calls and fragments directly, and compares the CLI's counts and proportions with that count.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pysam
import pytest

from tissuebert.cli.app import main
from tissuebert.constants import OUT
from tissuebert.deconvolve.atlas_bam import bam_to_pat
from tissuebert.deconvolve.atlas_io import pat_marker_counts, read_uxm_atlas
from tissuebert.deconvolve.baselines import UXM_MIN_CPGS, UXM_U_THRESHOLD, nnls_mixture
from tissuebert.deconvolve.output import read_proportions_tsv

pytestmark = pytest.mark.shared_data

NR1I2 = ("Lung_STL002", "Pancreas_STL002", "Sigmoid_Colon_STL003")
# the wgbs_tools tutorial's region: chr3:119,527,929-119,531,943 holds hg19 CpGs 5,394,767-5,394,867
TUTORIAL_START, TUTORIAL_END, FIRST_CPG, N_CPGS = 119_527_928, 119_531_943, 5_394_767, 101
SNP_CPG = 119_530_856  # hg19 CG where these donors read CA (see tests/io/test_bam_real.py)
HEADER = "chr\tstart\tend\tstartCpG\tendCpG\ttarget\tname\tdirection"


def _keep(read):
    return read.mapping_quality >= 10 and not (read.is_secondary or read.is_supplementary or read.is_duplicate
                                               or read.is_qcfail or read.is_unmapped)


def _nr1i2_cpgs(bams) -> list[int]:
    """hg19 CpGs of the tutorial region from the reads alone: f reads keep the G, r reads the C;
    where no r read covers the C, an f read showing a C there (methylated) pins it."""
    cpgs = set()
    for path in bams:
        seen = {"f": defaultdict(Counter), "r": defaultdict(Counter)}
        with pysam.AlignmentFile(str(path)) as bam:
            for read in bam.fetch("chr3"):
                if _keep(read):
                    seq, strand = read.query_sequence, seen[read.get_tag("YD")]
                    for q, p in read.get_aligned_pairs(matches_only=True):
                        strand[p][seq[q]] += 1
        f, r = seen["f"], seen["r"]
        cpgs |= {p for p in f if f.get(p + 1) and f[p + 1].most_common(1)[0][0] == "G"
                 and (r[p].most_common(1)[0][0] == "C" if p in r else f[p]["C"] > 0 and not f[p]["G"] + f[p]["A"])}
    return sorted(p for p in cpgs | {SNP_CPG} if TUTORIAL_START <= p and p + 2 <= TUTORIAL_END)


def _direct_calls(path, fmt: str, cpgs: list[int]) -> list[dict[int, int]]:
    """Per kept read, {C position: 1 methylated / 0 unmethylated}: the read base (bwa-meth) or XM
    character (Bismark) at the C (top strand) or the G (bottom strand)."""
    out = []
    wanted = set(cpgs)
    with pysam.AlignmentFile(str(path)) as bam:
        for read in bam.fetch():
            if not _keep(read):
                continue
            assert not read.is_paired  # single-end: a read is a fragment
            bottom = read.get_tag("YD") == "r" if fmt == "bwameth" else read.get_tag("XG") == "GA"
            chars = read.query_sequence if fmt == "bwameth" else read.get_tag("XM")
            code = ({"G": 1, "A": 0} if bottom else {"C": 1, "T": 0}) if fmt == "bwameth" else {"Z": 1, "z": 0}
            calls = {}
            for q, p in read.get_aligned_pairs(matches_only=True):
                c_pos = p - 1 if bottom else p
                if c_pos in wanted and chars[q] in code:
                    calls[c_pos] = code[chars[q]]
            if calls:
                out.append(calls)
    return out


def _direct_marker_counts(reads, markers):
    """(meth calls, calls, informative fragments, U fragments) per marker, by the UXM rule."""
    out = np.zeros((4, len(markers)))
    for calls in reads:
        for m, members in enumerate(markers):
            vals = [calls[p] for p in members if p in calls]
            n, k = len(vals), sum(vals)
            informative = n >= UXM_MIN_CPGS
            out[:, m] += (k, n, informative, informative and k < UXM_U_THRESHOLD * n)
    return out


def _write_index(path, chrom_cpgs: dict[str, list[int]], first: int = 1) -> dict[tuple[str, int], int]:
    index, ordinal = {}, first
    with open(path, "w") as fh:
        for chrom, cpgs in chrom_cpgs.items():
            for p in cpgs:
                fh.write(f"{chrom}\t{p + 1}\t{ordinal}\n")
                index[chrom, p] = ordinal
                ordinal += 1
    return index


def _write_atlas(path, chrom: str, markers, index, columns: dict[str, np.ndarray]) -> None:
    lines = [HEADER + "".join(f"\t{c}" for c in columns)]
    for m, members in enumerate(markers):
        lo, hi = index[chrom, members[0]], index[chrom, members[-1]] + 1
        values = "".join(f"\t{col[m]:.6f}" for col in columns.values())
        lines.append(f"{chrom}\t{members[0] + 1}\t{members[-1] + 2}\t{lo}\t{hi}\tX\tm{m}\tU{values}")
    path.write_text("\n".join(lines) + "\n")


def _cli_uxm(tmp_path, name, atlas, cpg_index, fmt, bam):
    out = tmp_path / name
    argv = ["deconvolve", "--method", "uxm", "--atlas", str(atlas), "--bootstrap", "0", "--out", str(out)]
    if fmt != "pat":
        argv += ["--cpg-index", str(cpg_index), "--format", fmt]
    assert main([*argv, str(bam)]) == 0
    return read_proportions_tsv(out / OUT.PROPORTIONS)["uxm"]


def test_bwameth_bam_on_the_atlas_route_equals_a_direct_count(shared_data, tmp_path):
    bams = [shared_data / "wgbs_tools" / "tutorial" / "bams" / f"{name}.small.bam" for name in NR1I2]
    cpgs = _nr1i2_cpgs(bams)
    assert len(cpgs) == N_CPGS  # as many as wgbs_tools numbers in this region
    index = _write_index(tmp_path / "CpG.bed", {"chr3": cpgs}, first=FIRST_CPG)
    assert index["chr3", cpgs[-1]] == FIRST_CPG + N_CPGS - 1
    # markers: runs of 5 consecutive CpGs within 60 bp (a ~100 bp read can call all of them)
    markers, k = [], 0
    while k + 5 <= len(cpgs):
        if cpgs[k + 4] - cpgs[k] <= 60:
            markers.append(cpgs[k:k + 5])
            k += 5
        else:
            k += 1
    reads = {path.name: _direct_calls(path, "bwameth", cpgs) for path in bams}
    direct = {name: _direct_marker_counts(r, markers) for name, r in reads.items()}
    assert len(markers) >= 4 and all(d[2].sum() >= 50 for d in direct.values())
    # the atlas: each sample's own U-fractions, so each BAM must come back as itself
    columns = {p.name.split(".")[0]: direct[p.name][3] / np.maximum(direct[p.name][2], 1) for p in bams}
    _write_atlas(tmp_path / "atlas.tsv", "chr3", markers, index, columns)
    atlas = read_uxm_atlas(tmp_path / "atlas.tsv")
    for path in bams:
        counts = pat_marker_counts(bam_to_pat(path, "bwameth", atlas, tmp_path / "atlas.tsv", tmp_path / "CpG.bed"),
                                   atlas)
        got = np.array([counts.meth_calls, counts.total_calls, counts.informative, counts.u_fragments])
        np.testing.assert_array_equal(got, direct[path.name], err_msg=path.name)
        props = _cli_uxm(tmp_path, path.name, tmp_path / "atlas.tsv", tmp_path / "CpG.bed", "bwameth", path)
        name = path.name.split(".")[0]
        expected = nnls_mixture(atlas.u_fraction, columns[name], weights=direct[path.name][2])
        assert [props[t] for t in atlas.tissues] == pytest.approx(expected.tolist(), abs=1e-6)
        assert props[name] > 0.99, (name, props)
    # the same reads as a .pat (written here from the direct calls) through the .pat route
    lung = bams[0]
    ordinal = {p: index["chr3", p] for p in cpgs}
    lines = []
    for calls in reads[lung.name]:
        first, last = ordinal[min(calls)], ordinal[max(calls)]
        row = ["."] * (last - first + 1)
        for p, c in calls.items():
            row[ordinal[p] - first] = "C" if c else "T"
        lines.append((first, "".join(row)))
    (tmp_path / "lung.pat").write_text("".join(f"chr3\t{s}\t{pat}\t1\n" for s, pat in sorted(lines)))
    from_pat = _cli_uxm(tmp_path, "lung_pat", tmp_path / "atlas.tsv", None, "pat", tmp_path / "lung.pat")
    from_bam = _cli_uxm(tmp_path, "lung_bam", tmp_path / "atlas.tsv", tmp_path / "CpG.bed", "bwameth", lung)
    assert from_bam == pytest.approx(from_pat, abs=1e-9)


def test_an_index_or_bam_of_another_build_is_refused(shared_data, tmp_path, capsys):
    bam = shared_data / "wgbs_tools" / "tutorial" / "bams" / "Lung_STL002.small.bam"
    cpgs = _nr1i2_cpgs([bam])
    markers = [cpgs[k:k + 5] for k in range(0, 50, 5)]
    u = {"A": np.full(len(markers), 0.2), "B": np.full(len(markers), 0.8)}

    def run(index_cpgs, atlas_cpgs, first):
        index = _write_index(tmp_path / "CpG.bed", {"chr3": index_cpgs}, first=first)
        _write_atlas(tmp_path / "atlas.tsv", "chr3", atlas_cpgs, index, u)
        code = main(["deconvolve", "--method", "uxm", "--atlas", str(tmp_path / "atlas.tsv"), "--cpg-index",
                     str(tmp_path / "CpG.bed"), "--format", "bwameth", "--out", str(tmp_path / "out"), str(bam)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and not (tmp_path / "out").exists()
        return err[0]

    # the atlas numbers the CpGs one higher than the index: its markers' first CpGs are elsewhere
    _write_index(tmp_path / "CpG.bed", {"chr3": cpgs}, first=FIRST_CPG)
    index = {("chr3", p): FIRST_CPG + 1 + k for k, p in enumerate(cpgs)}
    _write_atlas(tmp_path / "atlas.tsv", "chr3", markers, index, u)
    assert main(["deconvolve", "--method", "uxm", "--atlas", str(tmp_path / "atlas.tsv"), "--cpg-index",
                 str(tmp_path / "CpG.bed"), "--format", "bwameth", "--out", str(tmp_path / "out"), str(bam)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CpG.bed" in err[0] and "atlas.tsv" in err[0]
    # index and atlas agree, but both 7 bp off the BAM's genome: the reads show no CpG there
    shifted = [p + 7 for p in cpgs]
    line = run(shifted, [[p + 7 for p in m] for m in markers], FIRST_CPG)
    assert "Lung_STL002.small.bam" in line and "another genome build" in line
    # no --cpg-index: the atlas cannot be placed on a BAM
    assert main(["deconvolve", "--method", "uxm", "--atlas", str(tmp_path / "atlas.tsv"), "--format", "bwameth",
                 "--out", str(tmp_path / "out"), str(bam)]) == 2
    assert "--cpg-index" in capsys.readouterr().err


def test_a_bwameth_cohort_without_a_fasta_is_refused_not_rebuilt_from_md(shared_data, tmp_path, capsys):
    """docs/input_formats.md: the MD rebuild cannot stand in for --reference (it would make another panel)."""
    bam = shared_data / "wgbs_tools" / "tutorial" / "bams" / "Lung_STL002.small.bam"
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"sample_id\ttissue\tsplit\tpath\tformat\nlung\tlung\ttrain\t{bam}\tbwameth\n")
    (tmp_path / "regions.bed").write_text("chr3\t119527900\t119528300\n")
    assert main(["prepare", "--samples", str(sheet), "--regions", str(tmp_path / "regions.bed"),
                 "--out", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--reference" in err[0] and not (tmp_path / "store").exists()


@pytest.mark.slow
def test_bismark_bam_on_the_atlas_route_equals_its_pat(tmp_path):
    """No real Bismark BAM here has a CpG index of its genome (the methtuple BAM is hg19), so the
    simulator's cohort stands in: it writes every sample's fragments both as a Bismark BAM
    (paired, XM tags) and as a .pat. UXM against an atlas of 50 markers (6 CpGs each, in the
    index's coordinates) must give the same proportions from either file."""
    import gzip
    import json

    from tissuebert.simulate import simulate_cohort

    cohort = simulate_cohort(tmp_path / "c", preset="demo", seed=0, write_bam=True)
    tissues = json.loads((cohort / "simulate.json").read_text())["tissues"]
    cpgs = [line.split("\t") for line in gzip.open(cohort / "CpG.bed.gz", "rt").read().splitlines()]
    rng = np.random.default_rng(0)
    rows, markers = [], []
    for line in (cohort / "regions.bed").read_text().splitlines():
        chrom, start, end = line.split("\t")[0], int(line.split("\t")[1]), int(line.split("\t")[2])
        inside = [(int(pos), int(idx)) for c, pos, idx in cpgs if c == chrom and start < int(pos) <= end]
        if len(inside) >= 6:
            (pos0, idx0), (pos5, idx5) = inside[0], inside[5]
            values = "\t".join(f"{v:.3f}" for v in rng.random(len(tissues)))
            markers.append((chrom, idx0, idx5 + 1))
            rows.append(f"{chrom}\t{pos0}\t{pos5 + 2}\t{idx0}\t{idx5 + 1}\t{tissues[len(rows) % len(tissues)]}"
                        f"\tm{len(rows)}\tU\t{values}")
    atlas = tmp_path / "atlas.tsv"
    atlas.write_text(f"{HEADER}\t" + "\t".join(tissues) + "\n" + "\n".join(rows) + "\n")
    assert len(rows) >= 30
    sheet = [line.split("\t") for line in (cohort / "samples.tsv").read_text().splitlines()[1:]]
    for sample in [cols[0] for cols in sheet if cols[2] == "test"][:3]:
        got, used = {}, {}
        for name, extra in (("pat", [str(cohort / "pat" / f"{sample}.pat.gz")]),
                            ("bam", [str(cohort / "bam" / f"{sample}.bam"), "--format", "bismark"])):
            out = tmp_path / f"{sample}_{name}"
            assert main(["deconvolve", "--method", "uxm", "--atlas", str(atlas), *extra, "--cpg-index",
                         str(cohort / "CpG.bed.gz"), "--bootstrap", "0", "--out", str(out)]) == 0
            got[name] = read_proportions_tsv(out / OUT.PROPORTIONS)["uxm"]
            used[name] = sum(int(line.split("\t")[5]) for line in (out / OUT.PROPORTIONS).read_text().splitlines()[1:])
        # reads_used: whole fragments, the informative ones (>= UXM_MIN_CPGS calls in a marker), counted
        # here from the .pat lines; the same from the BAM (it once reported all its reads, ~2x fewer than the .pat's)
        assert used["pat"] == used["bam"] == _informative_fragments(cohort / "pat" / f"{sample}.pat.gz", markers)
        assert max(got["pat"].values()) > 0.3  # the atlas separates something: not a flat answer
        for tissue, value in got["pat"].items():
            assert abs(got["bam"][tissue] - value) < 1e-6, (sample, tissue, value, got["bam"][tissue])


def _informative_fragments(pat_path, markers) -> int:
    """Fragments (with their counts) holding >= UXM_MIN_CPGS calls inside a marker [first, end) of
    CpG indices, summed over the markers, straight from the .pat lines."""
    import gzip

    total = 0
    with gzip.open(pat_path, "rt") as fh:
        for line in fh:
            chrom, start, pattern, count = line.split("\t")[:4]
            start = int(start)
            for m_chrom, first, end in markers:
                if m_chrom == chrom:
                    inside = pattern[max(first - start, 0):max(end - start, 0)]
                    if sum(c in "CT" for c in inside) >= UXM_MIN_CPGS:
                        total += int(count)
    return total

"""The cohort's files are the real formats: FASTA, CpG index, .pat.gz, Bismark BAM, sheets."""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter

import pysam

from tests.support.simtools import expand_pat, read_pat
from tissuebert.constants import SHEET_COLUMNS, WINDOW_BP
from tissuebert.simulate import load_truth


def _cpg_index(cohort):
    with gzip.open(cohort / "CpG.bed.gz", "rt") as fh:
        return [(c, int(loc), int(idx)) for c, loc, idx in (line.split() for line in fh)]


def test_cpg_index_lists_every_cg_of_the_fasta_in_order(small_cohort):
    fasta = pysam.FastaFile(str(small_cohort / "genome.fa"))
    entries = _cpg_index(small_cohort)
    # every entry points at a C followed by a G (loc is the 1-based C)
    for chrom, loc, _ in entries:
        assert fasta.fetch(chrom, loc - 1, loc + 1).upper() == "CG"
    # indices are the genome-wide ordinals 1..N in FASTA contig order, and N is every CG there is
    assert [idx for _, _, idx in entries] == list(range(1, len(entries) + 1))
    assert [c for c, _, _ in entries] == sorted((c for c, _, _ in entries), key=list(fasta.references).index)
    n_cg = sum(len(re.findall("CG", fasta.fetch(c).upper())) for c in fasta.references)
    assert len(entries) == n_cg
    tbx = pysam.TabixFile(str(small_cohort / "CpG.bed.gz"))
    chrom, loc, idx = entries[len(entries) // 2]
    assert [line.split("\t") for line in tbx.fetch(chrom, loc - 1, loc)] == [[chrom, str(loc), str(idx)]]


def test_regions_are_whole_windows_with_cpg_island_density(small_cohort):
    fasta = pysam.FastaFile(str(small_cohort / "genome.fa"))
    with open(small_cohort / "regions.bed") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh]
    assert len(rows) == 40 and all(len(r) == 5 for r in rows)
    for chrom, start, end, _, label in rows:
        start, end = int(start), int(end)
        assert (end - start) % WINDOW_BP == 0
        kinds = {tag.split(":")[0] for tag in label.split("|")}
        assert kinds <= {"tissue_u", "group_u", "shared_u", "tissue_m", "group_m", "background"}
        for w in range(start, end, WINDOW_BP):
            seq = fasta.fetch(chrom, w, w + WINDOW_BP).upper()
            offsets = [m.start() for m in re.finditer("(?=CG)", seq) if m.start() < 148]
            assert 3 <= len(offsets) <= 15, (chrom, w, offsets)


def test_pat_files_are_sorted_bgzipped_and_tabix_indexed(small_cohort):
    truth = load_truth(small_cohort)
    for path in sorted((small_cohort / "pat").glob("*.pat.gz")):
        lines = read_pat(path)
        keys = [(truth.chroms.index(c), first, pat) for c, first, pat, _ in lines]
        assert keys == sorted(keys), path
        assert len(set(keys)) == len(keys), "identical reads must be collapsed into one line with a count"
        assert all(re.fullmatch(r"[CT]([CT.]*[CT])?", p) and n >= 1 for _, _, p, n in lines)
        assert (path.parent / (path.name + ".csi")).is_file()
        with pysam.TabixFile(str(path), index=str(path) + ".csi") as tbx:
            fetched = [tuple(row.split("\t")) for chrom in tbx.contigs for row in tbx.fetch(chrom)]
        assert fetched == [(c, str(f), p, str(n)) for c, f, p, n in lines]


def test_sample_sheets_point_at_the_files(small_cohort):
    for sheet, fmt, ext in (("samples.tsv", "pat", ".pat.gz"), ("samples_bam.tsv", "bismark", ".bam")):
        with open(small_cohort / sheet, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        assert tuple(rows[0])[:5] == SHEET_COLUMNS
        assert len(rows) == 15
        for row in rows:
            assert row["format"] == fmt and row["path"].endswith(ext)
            assert (small_cohort / row["path"]).is_file()
        # each tissue has one sample in each split
        assert Counter((r["tissue"], r["split"]) for r in rows) == Counter(
            {(t, s): 1 for t in {r["tissue"] for r in rows} for s in ("train", "val", "test")})


def _bam_reads_as_pat(bam_path, cpg_of):
    """(first CpG index, pattern) per BAM read, from its XM calls at CpGs (strands collapsed)."""
    out = []
    with pysam.AlignmentFile(str(bam_path)) as bam:
        assert bam.header.to_dict()["HD"]["SO"] == "coordinate"
        last = (-1, -1)
        for read in bam:
            assert (read.reference_id, read.reference_start) >= last
            last = (read.reference_id, read.reference_start)
            xm = read.get_tag("XM")
            reverse = read.is_reverse
            assert read.get_tag("XG") == ("GA" if reverse else "CT") and read.get_tag("XR") == "CT"
            calls = {}
            for offset, code in enumerate(xm):
                if code in "Zz":
                    # a call on the bottom strand sits on the G, one base after the CpG's C
                    c_pos = read.reference_start + offset - (1 if reverse else 0)
                    calls[cpg_of[(read.reference_name, c_pos + 1)]] = "C" if code == "Z" else "T"
                    assert read.query_sequence[offset] == ("GA" if reverse else "CT")[code == "z"]
            if calls:
                lo, hi = min(calls), max(calls)
                out.append((lo, "".join(calls.get(i, ".") for i in range(lo, hi + 1))))
    return out


def test_bam_calls_equal_pat_patterns_and_md_rebuilds_the_genome(small_cohort):
    fasta = pysam.FastaFile(str(small_cohort / "genome.fa"))
    cpg_of = {(c, loc): idx for c, loc, idx in _cpg_index(small_cohort)}
    for sample in ("Blood-T_01", "Neuron_02"):
        pat_reads = expand_pat(read_pat(small_cohort / "pat" / f"{sample}.pat.gz"))
        bam_path = small_cohort / "bam" / f"{sample}.bam"
        assert (bam_path.parent / (bam_path.name + ".bai")).is_file()
        assert Counter(_bam_reads_as_pat(bam_path, cpg_of)) == Counter(pat_reads)
        with pysam.AlignmentFile(str(bam_path)) as bam:
            for k, read in enumerate(bam):
                if k >= 300:
                    break
                # pysam rebuilds the reference under a read from its MD tag
                ref = fasta.fetch(read.reference_name, read.reference_start, read.reference_end).upper()
                assert read.get_reference_sequence().upper() == ref
                assert read.get_tag("NM") == sum(a != b for a, b in zip(read.query_sequence, ref))


def test_prepare_builds_the_same_store_from_pat_and_from_bam(small_cohort, tmp_path):
    """End to end through the real `prepare`: the .pat sheet and the BAM sheet give stores with
    the same reads (window, packed calls) for every sample, so the two formats carry the same
    fragments call for call."""
    from tissuebert.cli.app import main
    from tissuebert.store.store import Store

    stores = {}
    for sheet in ("samples.tsv", "samples_bam.tsv"):
        out = tmp_path / sheet.replace(".tsv", "")
        assert main(["prepare", "--samples", str(small_cohort / sheet), "--reference", str(small_cohort / "genome.fa"),
                     "--regions", str(small_cohort / "regions.bed"), "--cpg-index", str(small_cohort / "CpG.bed.gz"),
                     "--out", str(out)]) == 0
        stores[sheet] = Store.open(out)
    pat, bam = stores["samples.tsv"], stores["samples_bam.tsv"]
    assert pat.tissues == bam.tissues == load_truth(small_cohort).tissues
    assert pat.panel_hash == bam.panel_hash
    for rec in pat.samples():
        a, b = pat.reads(rec.sample_id), bam.reads(rec.sample_id)
        assert a.n_reads > 1000
        rows_a = sorted(zip(a.window_idx.tolist(), map(bytes, a.calls)))
        rows_b = sorted(zip(b.window_idx.tolist(), map(bytes, b.calls)))
        assert rows_a == rows_b, rec.sample_id


def test_lineage_motifs_sit_in_the_blocks_that_target_them(small_cohort):
    """Every tissue/group marker block with room for it holds its target's motif, and a motif
    never lands in a block of another tissue's marker by accident more than rarely (10-mers)."""
    import json

    from tissuebert.simulate.motifs import motif_for

    truth = load_truth(small_cohort)
    motifs = json.loads((small_cohort / "simulate.json").read_text())["motifs"]
    assert motifs["Neuron"] == motif_for("Neuron") and "Hemat/Lymphoid" in motifs
    assert all("CG" not in m and len(m) == 10 for m in motifs.values())
    fasta = pysam.FastaFile(str(small_cohort / "genome.fa"))
    hits, misses, stray = 0, 0, 0
    for b in range(truth.n_blocks):
        seq = fasta.fetch(truth.chroms[truth.reg_chrom[truth.blk_region[b]]], int(truth.blk_start[b]),
                          int(truth.blk_end[b]))
        target = truth.blk_target[b]
        if truth.blk_type[b].startswith(("tissue_", "group_")):
            hits += motifs[target] in seq
            misses += motifs[target] not in seq
        stray += sum(m in seq for name, m in motifs.items() if name != target)
    assert hits > 0.9 * (hits + misses)
    assert stray <= 2

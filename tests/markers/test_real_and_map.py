"""Markers on real .pat files (Roadmap, hg19) against the published UXM markers; the atlas22 map."""

from __future__ import annotations

from collections import Counter

import pytest

from tissuebert.cli.app import main
from tissuebert.io.sheet import read_sheet, read_tissue_map, shipped_file
from tissuebert.markers import read_groups, read_selection
from tissuebert.simulate.tissues import DEFAULT_TISSUES, groups_of

# The 39 cell types of the Loyfer et al. (2023) atlas, in Markers.U25.bed's column order
# (shared/data/README.md).
ATLAS39 = """Adipocytes Bladder-Ep Blood-B Blood-Granul Blood-Mono+Macro Blood-NK Blood-T Bone-Osteob Breast-Basal-Ep
Breast-Luminal-Ep Colon-Ep Colon-Fibro Dermal-Fibro Endothel Epid-Kerat Eryth-prog Fallopian-Ep Gallbladder Gastric-Ep
Head-Neck-Ep Heart-Cardio Heart-Fibro Kidney-Ep Liver-Hep Lung-Ep-Alveo Lung-Ep-Bron Neuron Oligodend Ovary-Ep
Pancreas-Acinar Pancreas-Alpha Pancreas-Beta Pancreas-Delta Pancreas-Duct Prostate-Ep Skeletal-Musc Small-Int-Ep
Smooth-Musc Thyroid-Ep""".split()


@pytest.mark.shared_data
def test_real_pat_markers_hit_the_published_markers_of_their_tissue(shared_data, tmp_path):
    """5 Roadmap samples (liver, lung, 2 pancreas, colon), candidates = the 953 published U25
    blocks. Measured: liver 23/25 selected hypo markers are published Liver-Hep markers, colon
    16/21 Colon-Ep, pancreas 7/8 Pancreas-*; the thresholds below leave room for ties."""
    tut = shared_data / "UXM_deconv" / "tutorial"
    names = {"Liver_STL011": "Liver", "Lung_STL002": "Lung", "Pancreas_STL002": "Pancreas",
             "Pancreas_STL003": "Pancreas", "Sigmoid_Colon_STL003": "Colon"}
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("sample_id\ttissue\tsplit\tpath\tformat\n" + "".join(
        f"{sid}\t{label}\ttrain\t{tut / 'data' / (sid + '.pat.gz')}\tpat\n" for sid, label in names.items()))
    out = tmp_path / "real.bed"
    assert main(["markers", "--samples", str(sheet), "--blocks", str(tut / "Markers.U25.bed"), "--test", "welch",
                 "--min-class-samples", "1", "--per-class", "25", "--out", str(out)]) == 0
    published = {}
    for line in (tut / "Markers.U25.bed").read_text().splitlines():
        cols = line.split("\t")
        published[(cols[0], int(cols[1]))] = cols[5]
    hits = Counter()
    totals = Counter()
    for row in read_selection(out):
        if row["direction"] != "U":
            continue
        totals[row["target"]] += 1
        hits[row["target"]] += published[(row["chrom"], row["start"])].startswith(
            {"Liver": "Liver-Hep", "Colon": "Colon-Ep", "Pancreas": "Pancreas-", "Lung": "Lung-Ep"}[row["target"]])
    assert totals["Liver"] >= 20 and hits["Liver"] / totals["Liver"] >= 0.85, (hits, totals)
    assert totals["Colon"] >= 10 and hits["Colon"] / totals["Colon"] >= 0.65, (hits, totals)
    assert totals["Pancreas"] >= 5 and hits["Pancreas"] / totals["Pancreas"] >= 0.7, (hits, totals)


def test_atlas22_map_covers_the_39_atlas_types_onto_the_22_classes(tmp_path):
    mapping = read_tissue_map("atlas22")
    assert sorted(mapping) == sorted(ATLAS39)
    assert set(mapping.values()) == set(DEFAULT_TISSUES)  # the simulator's classes, all 22 of them
    assert all(mapping[name] == name for name in DEFAULT_TISSUES)  # a class keeps its own cell type
    # the choices docs/atlas.md argues for
    assert mapping["Pancreas-Alpha"] == mapping["Pancreas-Delta"] == "Pancreas-Beta" != mapping["Pancreas-Acinar"]
    assert len({mapping[b] for b in ATLAS39 if b.startswith("Blood-")} | {mapping["Eryth-prog"]}) == 6
    # usable by name wherever a tissue map is
    sheet = tmp_path / "s.tsv"
    sheet.write_text("sample_id\ttissue\tsplit\tpath\tformat\nx\tPancreas-Alpha\ttrain\tx.pat.gz\tpat\n")
    assert read_sheet(sheet, mapping)[0].tissue == "Pancreas-Beta"
    assert shipped_file("atlas22").parent.name == "tissue_maps"


def test_atlas22_groups_are_the_simulator_hierarchy():
    classes = sorted(DEFAULT_TISSUES)
    shipped = {t.members for t in read_groups(shipped_file("atlas22", "groups"), classes)}
    sim = {g.members for g in groups_of(classes)}
    assert shipped == sim  # the simulator's two identical brain groups are one target here

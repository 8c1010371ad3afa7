"""Marker levels from a real atlas table (``--atlas``): the U-state probability of each region
and tissue is taken from the table instead of being drawn.

Two layouts are read:
- UXM (Loyfer et al. 2023) ``Atlas.U25.l4.*.tsv``: ``chr start end startCpG endCpG target name
  direction`` then one column per cell type holding the fraction of U fragments; the value is
  used as P(U state) directly.
- nanomix ``39Bisulfite.tsv``: ``chr start end`` then one column per cell type holding the mean
  methylation (beta); it is turned into P(U state) so that the expected methylation of a CpG
  (P(U) * mean q_U + P(M) * mean q_M) equals the beta.
The intermediate state is switched off in atlas mode so the table's number is the U-state
probability itself. Simulated positions and CpGs stay synthetic (or come from --reference).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tissuebert.errors import ConfigError, InputFormatError, require_file
from tissuebert.simulate.params import SimConfig
from tissuebert.simulate.tissues import DEFAULT_TISSUES

UXM_FIXED = ("chr", "start", "end", "startCpG", "endCpG", "target", "name", "direction")
# mean of P(methylated | state) over CpGs (markers.cpg_meth_probs draws U(0.01, 0.08), U(0.85, 0.98))
MEAN_Q_U, MEAN_Q_M = 0.045, 0.915
# nanomix's cell-type names -> the Loyfer names the catalog uses
NANOMIX_NAMES = {
    "adipocyte": "Adipocytes", "endothelial_cell": "Endothel", "skeletal_muscle": "Skeletal-Musc",
    "heart_cardiomyocyte": "Heart-Cardio", "oligodendrocyte": "Oligodend", "neuron": "Neuron",
    "hepatocyte": "Liver-Hep", "pancreas_duct": "Pancreas-Duct", "pancreas_acinar": "Pancreas-Acinar",
    "pancreas_beta": "Pancreas-Beta", "kidney_epithelial": "Kidney-Ep", "thyroid_epithelial": "Thyroid-Ep",
    "erythrocyte_progenitor": "Eryth-prog", "T-cell": "Blood-T", "NK-cell": "Blood-NK",
    "monocyte": "Blood-Mono+Macro", "granulocyte": "Blood-Granul", "B-cell": "Blood-B",
    "lung_alveolar_epithelial": "Lung-Ep-Alveo", "gastric_epithelial": "Gastric-Ep",
    "colon_epithelial": "Colon-Ep", "small_int_epithelial": "Small-Int-Ep",
}


def beta_to_u(beta: np.ndarray) -> np.ndarray:
    return np.clip((MEAN_Q_M - beta) / (MEAN_Q_M - MEAN_Q_U), 0.0, 1.0)


def read_atlas_table(path: str | Path) -> tuple[list[dict], list[str], str]:
    """Rows (dicts), the cell-type columns (catalog names) and the kind: 'uxm' or 'beta'."""
    path = require_file(path, "atlas table")
    with open(path, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            raise InputFormatError("atlas table is empty", path=path) from None
        rows = list(reader)
    if tuple(header[:8]) == UXM_FIXED:
        kind, n_fixed, names = "uxm", 8, header[8:]
    elif tuple(header[:3]) == ("chr", "start", "end"):
        kind, n_fixed, names = "beta", 3, [NANOMIX_NAMES.get(c, c) for c in header[3:]]
    else:
        raise InputFormatError("unrecognised atlas table header", path=path, line=1,
                               hint="expected a UXM Atlas.U25 table or nanomix 39Bisulfite.tsv")
    out = []
    for line_no, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InputFormatError(f"expected {len(header)} columns, got {len(row)}", path=path, line=line_no)
        rec = dict(zip(header[:n_fixed], row[:n_fixed]))
        try:
            rec["values"] = np.array([float(v) if v not in ("", "NA") else np.nan for v in row[n_fixed:]])
        except ValueError:
            raise InputFormatError("non-numeric value in a cell-type column", path=path, line=line_no) from None
        out.append(rec)
    return out, names, kind


def atlas_states(path: str | Path, cfg: SimConfig, rng: np.random.Generator
                 ) -> tuple[list[str], np.ndarray, list[str], list[str], list[str], np.ndarray]:
    """(sorted tissues, pi (R, T, 3), region types, targets, names, n_cpgs) from an atlas table.

    ``n_cpgs`` is the table's CpG count of each region (UXM: endCpG - startCpG; 0 when the table
    does not say), so simulated regions can carry as many CpGs as the real ones.

    Rows whose target is a selected tissue come first (shuffled), then the others, up to
    ``cfg.regions`` rows; a missing value (NaN) takes the row's median over the selected tissues.
    """
    rows, names, kind = read_atlas_table(path)
    wanted = cfg.tissue_names if cfg.tissue_names is not None else [t for t in DEFAULT_TISSUES if t in names][: cfg.tissues]
    missing = [t for t in wanted if t not in names]
    if missing or len(wanted) < 2:
        raise ConfigError(f"atlas table lacks tissues {missing}" if missing else "atlas table has fewer than 2 known tissues",
                          hint=f"its columns are: {', '.join(names)}")
    tissues = sorted(wanted)
    cols = [names.index(t) for t in tissues]
    values = np.array([rec["values"][cols] for rec in rows])
    usable = np.flatnonzero(~np.all(np.isnan(values), axis=1))
    targeted = [i for i in usable if rows[i].get("target") in tissues]
    others = [i for i in usable if rows[i].get("target") not in tissues]
    order = list(rng.permutation(targeted)) + list(rng.permutation(others))
    chosen = np.array(order[: cfg.regions], dtype=np.int64)
    vals = values[chosen]
    fill = np.nanmedian(vals, axis=1, keepdims=True)
    vals = np.where(np.isnan(vals), fill, vals)
    u = vals if kind == "uxm" else beta_to_u(vals)
    u = np.clip(u, 0.0, 1.0)
    pi = np.stack([u, np.zeros_like(u), 1.0 - u], axis=-1)
    types, targets, region_names, n_cpgs = [], [], [], []
    for i in chosen.tolist():
        rec = rows[i]
        if kind == "uxm":
            types.append("atlas_u" if rec["direction"] == "U" else "atlas_m")
            targets.append(rec["target"])
            region_names.append(rec["name"])
            n_cpgs.append(int(rec["endCpG"]) - int(rec["startCpG"]))
        else:
            types.append("atlas_beta")
            targets.append("")
            region_names.append(f"{rec['chr']}:{rec['start']}-{rec['end']}")
            n_cpgs.append(0)
    return tissues, pi, types, targets, region_names, np.array(n_cpgs, dtype=np.int64)

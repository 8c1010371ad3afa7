"""The default tissue classes, their hierarchy and their share of the cohort's samples.

Names follow the Loyfer et al. (2023) atlas so that a table from that atlas (``--atlas``) maps
onto them without renaming. The hierarchy decides which tissues share markers: every inner node
with at least two selected tissues gets its own group markers, so blood subtypes share most of
their marker states while blood and pancreas share none.
"""

from __future__ import annotations

from dataclasses import dataclass

# (name, lineage path from the root, relative sample abundance). Listed in the order in which
# ``--tissues N`` takes them: the first 8 are the demo set (two blood subtypes and two pancreas
# cell types, so the hierarchy shows even in the smallest cohort). Blood abundances make the
# five blood types ~27% of samples with all 22 tissues, as in the design's atlas.
_CATALOG: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("Blood-T", ("Hemat", "Lymphoid"), 1.2),
    ("Blood-B", ("Hemat", "Lymphoid"), 1.1),
    ("Liver-Hep", ("Endoderm",), 1.0),
    ("Pancreas-Acinar", ("Endoderm", "Pancreas"), 0.9),
    ("Pancreas-Beta", ("Endoderm", "Pancreas"), 0.8),
    ("Colon-Ep", ("Endoderm", "GI"), 1.1),
    ("Lung-Ep-Alveo", ("Endoderm",), 0.9),
    ("Neuron", ("Ectoderm", "Brain"), 1.0),
    ("Blood-NK", ("Hemat", "Lymphoid"), 1.0),
    ("Blood-Mono+Macro", ("Hemat", "Myeloid"), 1.1),
    ("Blood-Granul", ("Hemat", "Myeloid"), 1.2),
    ("Eryth-prog", ("Hemat",), 0.7),
    ("Pancreas-Duct", ("Endoderm", "Pancreas"), 0.8),
    ("Small-Int-Ep", ("Endoderm", "GI"), 0.8),
    ("Gastric-Ep", ("Endoderm", "GI"), 0.9),
    ("Kidney-Ep", ("Mesoderm",), 1.0),
    ("Heart-Cardio", ("Mesoderm", "Muscle"), 0.8),
    ("Skeletal-Musc", ("Mesoderm", "Muscle"), 0.9),
    ("Oligodend", ("Ectoderm", "Brain"), 0.8),
    ("Endothel", ("Mesoderm",), 1.0),
    ("Adipocytes", ("Mesoderm",), 0.8),
    ("Thyroid-Ep", ("Endoderm",), 0.8),
)
DEFAULT_TISSUES: tuple[str, ...] = tuple(name for name, _, _ in _CATALOG)
LINEAGE: dict[str, tuple[str, ...]] = {name: path for name, path, _ in _CATALOG}
ABUNDANCE: dict[str, float] = {name: weight for name, _, weight in _CATALOG}
BLOOD_PREFIX = "Blood-"
# Cell types of blood that contaminate solid-tissue samples, with their share of blood cells
# (granulocytes and T cells dominate leukocytes).
BLOOD_SHARES = {"Blood-Granul": 0.55, "Blood-T": 0.25, "Blood-Mono+Macro": 0.08,
                "Blood-B": 0.06, "Blood-NK": 0.06}


@dataclass(frozen=True)
class Group:
    """An inner node of the hierarchy and the (indices of the) selected tissues below it."""

    name: str
    depth: int  # 1 = directly below the root (e.g. Hemat), 2 = one level deeper (e.g. Lymphoid)
    members: tuple[int, ...]


def lineage_of(name: str) -> tuple[str, ...]:
    """Lineage path of a tissue; a tissue outside the catalog (e.g. from ``--atlas``) is its own group."""
    return LINEAGE.get(name, ("Other",))


def groups_of(tissues: list[str]) -> list[Group]:
    """Inner nodes shared by at least two of ``tissues`` (index into ``tissues``), deepest last."""
    found: dict[tuple[str, ...], list[int]] = {}
    for tissue_id, name in enumerate(tissues):
        path = lineage_of(name)
        for depth in range(1, len(path) + 1):
            found.setdefault(path[:depth], []).append(tissue_id)
    return [Group(name="/".join(path), depth=len(path), members=tuple(members))
            for path, members in sorted(found.items(), key=lambda kv: (len(kv[0]), kv[0]))
            if len(members) >= 2]


def siblings(tissues: list[str]) -> list[list[int]]:
    """For each tissue, the other selected tissues with the same full lineage path."""
    paths = [lineage_of(name) for name in tissues]
    return [[j for j in range(len(tissues)) if j != i and paths[j] == paths[i]] for i in range(len(tissues))]


def is_blood(name: str) -> bool:
    return name.startswith(BLOOD_PREFIX)

"""The marker BED (read by `prepare --regions`) and the per-target summary TSV.

BED columns (tab-separated, a ``#`` header line that `prepare` skips; docs/markers.md is the spec):
``chrom start end name startCpG endCpG target direction kind`` then the statistics of
``select.STAT_COLUMNS``. ``name`` is ``target:direction:chrom:start-end``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.atomic import atomic_write_text
from tissuebert.errors import InputFormatError
from tissuebert.markers.blocks import Blocks
from tissuebert.markers.select import DIRECTIONS, STAT_COLUMNS, Selected, Target

BED_COLUMNS = ("chrom", "start", "end", "name", "startCpG", "endCpG", "target", "direction", "kind", *STAT_COLUMNS)
_INT = {"start", "end", "startCpG", "endCpG"}
SUMMARY_COLUMNS = ("target", "kind", "train_samples", "direction", "passing", "selected", "median_delta",
                   "median_tg_mean", "median_bg_mean", "median_pval")


def rows_from_results(blocks: Blocks, results: dict[tuple[str, str], Selected], targets: list[Target]) -> list[dict]:
    kinds = {t.name: t.kind for t in targets}
    rows = []
    names = blocks.chroms
    for (target, direction), sel in results.items():
        for b, stat in zip(sel.block.tolist(), sel.stats):
            chrom = names[int(blocks.chrom_id[b])]
            start, end = int(blocks.start[b]), int(blocks.end[b])
            row = {"chrom": chrom, "start": start, "end": end, "name": f"{target}:{direction}:{chrom}:{start}-{end}",
                   "startCpG": int(blocks.cpg_first[b]), "endCpG": int(blocks.cpg_end[b]), "target": target,
                   "direction": direction, "kind": kinds[target]}
            row.update({k: float(v) for k, v in zip(STAT_COLUMNS, stat)})
            rows.append(row)
    return rows


def best_rows(rows: list[dict], per_target: int) -> list[dict]:
    """The best ``per_target`` rows of each (target, direction) by delta then p, in genome order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["target"], row["direction"]), []).append(row)
    kept = []
    for group in groups.values():
        group.sort(key=lambda r: (-r["delta"], r["pval"], r["startCpG"], r["start"]))
        kept += group[:per_target]
    return sorted(kept, key=lambda r: (r["startCpG"], r["start"], r["target"], r["direction"]))


def _fmt(key: str, value, precise: bool = False) -> str:
    if key in _INT or isinstance(value, str):
        return str(value)
    if precise:  # shard files: exact round trip, so that assembling gives the unsharded result
        return repr(float(value))
    if key.endswith("_frags"):
        return f"{value:.0f}"
    return f"{value:.4g}" if key == "pval" else f"{value:.4f}"


def write_bed(path: Path, rows: list[dict], *, precise: bool = False) -> None:
    lines = ["#" + "\t".join(BED_COLUMNS)]
    lines += ["\t".join(_fmt(k, row[k], precise) for k in BED_COLUMNS) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_selection(path: Path) -> list[dict]:
    """Rows of a marker BED written by :func:`write_bed` (shards, or a finished panel)."""
    rows = []
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != len(BED_COLUMNS):
            raise InputFormatError(f"expected {len(BED_COLUMNS)} columns of a marker BED, got {len(cols)}", path=path,
                                   line=line_no, hint="was it written by `tissuebert markers`?")
        rows.append({k: (int(v) if k in _INT else v if k in ("chrom", "name", "target", "direction", "kind")
                         else float(v)) for k, v in zip(BED_COLUMNS, cols)})
    return rows


def summary_rows(rows: list[dict], info: dict) -> list[list[str]]:
    out = []
    for name, kind, n_samples in info["targets"]:
        for direction in DIRECTIONS:
            sel = [r for r in rows if r["target"] == name and r["direction"] == direction]

            def med(key):
                return f"{np.median([r[key] for r in sel]):.4g}" if sel else "NA"
            out.append([name, kind, str(n_samples), direction, str(info["passing"].get(f"{name}\t{direction}", 0)),
                        str(len(sel)), med("delta"), med("tg_mean"), med("bg_mean"), med("pval")])
    return out


def write_summary(path: Path, rows: list[list[str]]) -> None:
    atomic_write_text(path, "\n".join(["\t".join(SUMMARY_COLUMNS)] + ["\t".join(r) for r in rows]) + "\n")

"""Published atlases and .pat reads for the baselines on real data.

- Moss et al. (meth_atlas): CSV, first column CpG probe id, then one beta column per cell type.
- UXM (Loyfer et al.): TSV ``chr start end startCpG endCpG target name direction <cell types...>``,
  values = U-fragment fraction; markers are CpG-index intervals [startCpG, endCpG), so .pat reads
  (which are in CpG-index coordinates) can be scored against it without a FASTA.
- wgbs_tools .pat(.gz): ``chrom  first_CpG_index  pattern  count``; C methylated, T unmethylated,
  '.' unknown.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tissuebert.constants import METH_M, METH_NONE
from tissuebert.deconvolve.baselines import UXM_MIN_CPGS, UXM_U_THRESHOLD, MarkerCounts
from tissuebert.errors import InputFormatError, require_file
from tissuebert.io.pat import iter_pat, pattern_matrix

UXM_FIXED_COLUMNS = ("chr", "start", "end", "startCpG", "endCpG", "target", "name", "direction")


@dataclass
class BetaTable:
    """Rows = CpG probes, columns = cell types or samples."""

    ids: list[str]
    columns: list[str]
    values: np.ndarray  # (M, C) float64, NaN where empty

    def aligned(self, ids: list[str]) -> np.ndarray:
        """Rows in the order of ``ids`` (NaN rows for ids this table lacks)."""
        pos = {probe: i for i, probe in enumerate(self.ids)}
        out = np.full((len(ids), len(self.columns)), np.nan)
        for row, probe in enumerate(ids):
            if probe in pos:
                out[row] = self.values[pos[probe]]
        return out


def _float(text: str, path: Path, line: int) -> float:
    if text.strip() in ("", "NA", "NaN", "nan"):
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise InputFormatError(f"not a number: {text!r}", path=path, line=line) from None


def read_beta_csv(path: str | Path) -> BetaTable:
    """A Moss-style CSV (probe id, then one value column each); duplicate probes keep the first row."""
    path = require_file(path, "beta table")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise InputFormatError("expected a header (probe id, columns...) and at least one row", path=path, line=1)
    columns = rows[0][1:]
    ids, values, seen = [], [], set()
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns) + 1:
            raise InputFormatError(f"{len(row)} fields, header has {len(columns) + 1}", path=path, line=line)
        if row[0] in seen:
            continue
        seen.add(row[0])
        ids.append(row[0])
        values.append([_float(v, path, line) for v in row[1:]])
    return BetaTable(ids, columns, np.array(values, dtype=np.float64))


@dataclass
class UxmAtlas:
    start_cpg: np.ndarray  # (M,) int64, 1-based CpG index of the first CpG
    end_cpg: np.ndarray  # (M,) int64, exclusive
    names: list[str]
    tissues: list[str]
    u_fraction: np.ndarray  # (M, T)
    # genome coordinates of each marker (1-based C of its first CpG, G of its last), for BAM input
    chrom: list[str] = field(default_factory=list)
    start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def read_uxm_atlas(path: str | Path) -> UxmAtlas:
    """A UXM atlas TSV (header required), sorted by CpG index."""
    path = require_file(path, "UXM atlas")
    with open(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if tuple(header[:len(UXM_FIXED_COLUMNS)]) != UXM_FIXED_COLUMNS:
            raise InputFormatError(f"header must start with {' '.join(UXM_FIXED_COLUMNS)}", path=path, line=1)
        starts, ends, names, values, chroms, locs = [], [], [], [], [], []
        for line, text in enumerate(fh, start=2):
            fields = text.rstrip("\n").split("\t")
            if len(fields) != len(header):
                raise InputFormatError(f"{len(fields)} fields, header has {len(header)}", path=path, line=line)
            try:
                starts.append(int(fields[3]))
                ends.append(int(fields[4]))
                locs.append((int(fields[1]), int(fields[2])))
            except ValueError:
                raise InputFormatError("start/end/startCpG/endCpG must be integers", path=path, line=line) from None
            chroms.append(fields[0])
            names.append(fields[6])
            values.append([_float(v, path, line) for v in fields[8:]])
    order = np.argsort(starts, kind="stable")
    return UxmAtlas(np.asarray(starts, np.int64)[order], np.asarray(ends, np.int64)[order],
                    [names[i] for i in order], header[8:], np.asarray(values, np.float64)[order],
                    [chroms[i] for i in order], np.asarray([locs[i][0] for i in order], np.int64),
                    np.asarray([locs[i][1] for i in order], np.int64))


@dataclass
class PatReads:
    start_cpg: np.ndarray  # (R,) int64
    codes: np.ndarray  # (R, Lmax) uint8: METH_U / METH_M / METH_NONE (also past the pattern's end)
    length: np.ndarray  # (R,) int64 pattern length
    counts: np.ndarray  # (R,) int64 multiplicity


def read_pat(path: str | Path) -> PatReads:
    """All reads of a (bgzipped) .pat file, validated line by line by :func:`tissuebert.io.pat.iter_pat`."""
    starts, patterns, counts = [], [], []
    for _, start, pattern, count, _ in iter_pat(path):
        starts.append(start)
        patterns.append(pattern)
        counts.append(count)
    codes, lengths = pattern_matrix(patterns)
    return PatReads(np.asarray(starts, np.int64), codes, lengths, np.asarray(counts, np.int64))


def pat_marker_counts(pat: PatReads, atlas: UxmAtlas, *, min_cpgs: int = UXM_MIN_CPGS,
                      u_threshold: float = UXM_U_THRESHOLD) -> MarkerCounts:
    """Per-marker call and fragment counts of .pat reads over the atlas's CpG-index intervals.

    A read overlapping several markers counts in each, with only its CpGs inside that marker.
    """
    n_markers = atlas.start_cpg.shape[0]
    called = pat.codes != METH_NONE
    zero = np.zeros((pat.codes.shape[0], 1), np.int64)
    cum_called = np.concatenate([zero, np.cumsum(called, axis=1)], axis=1)  # (R, L + 1)
    cum_meth = np.concatenate([zero, np.cumsum(pat.codes == METH_M, axis=1)], axis=1)
    read_end = pat.start_cpg + pat.length
    first = np.searchsorted(atlas.end_cpg, pat.start_cpg, side="right")  # first marker ending after the start
    out = [np.zeros(n_markers) for _ in range(4)]
    rows = np.arange(pat.codes.shape[0])
    for k in range(pat.codes.shape[1] + 1):  # a read can span at most its length in markers
        marker = first + k
        ok = marker < n_markers
        ok[ok] &= atlas.start_cpg[marker[ok]] < read_end[ok]
        if not ok.any():
            break
        r, m = rows[ok], marker[ok]
        lo = np.clip(atlas.start_cpg[m] - pat.start_cpg[r], 0, None)
        hi = np.minimum(atlas.end_cpg[m], read_end[r]) - pat.start_cpg[r]
        n_called = cum_called[r, hi] - cum_called[r, lo]
        n_meth = cum_meth[r, hi] - cum_meth[r, lo]
        informative = n_called >= min_cpgs
        is_u = informative & (n_meth < u_threshold * n_called)
        w = pat.counts[r].astype(np.float64)
        for acc, values in zip(out, (n_meth, n_called, is_u, informative)):
            acc += np.bincount(m, weights=values * w, minlength=n_markers)
    return MarkerCounts(*out)

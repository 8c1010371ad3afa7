"""Region-level count tables: deconvolution without reads, as public cfDNA studies share their data.

A table (CelFiE's layout) has ``chrom start end`` and, per sample or reference tissue, a pair of
columns ``<name>_meth <name>_depth``: methylated and total CpG calls over the region, possibly
fractional (CelFiE's tables carry read-weighted counts), possibly with CRLF line ends. A sample
table and a reference table are joined on identical (chrom, start, end); nothing is placed on a
genome, so no FASTA or CpG index is needed.

Methods (no reads, so no model and no UXM: UXM's unit is a fragment's own methylated fraction):
- ``em``: the sample's calls as draws from a mixture of the reference tissues' methylation levels,
  each call methylated with probability ``sum_t pi_t beta_rt``: CelFiE's likelihood with the
  reference held fixed, solved by the same EM as the reads' deconvolution (one row per region and
  call state, weighted by its count);
- ``nnls``: Moss et al.'s non-negative least squares of the sample's region betas on the reference
  betas.
Intervals: a bootstrap over regions (calls of one region are not independent, so resampling calls
would make the intervals too narrow), as percentile spreads placed around the point fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tissuebert.deconvolve.baselines import nnls_mixture
from tissuebert.deconvolve.bootstrap import bootstrap, index_draw
from tissuebert.deconvolve.em import em_proportions
from tissuebert.errors import InputFormatError, TissueBertError, require_file
from tissuebert.io.text import open_text
from tissuebert.progress import get_logger

log = get_logger("deconvolve")

REGION_COUNTS = "region-counts"  # the --format of a count table (deconvolve only; prepare needs reads)
TABLE_METHODS = ("em", "nnls")
_MISSING = {"", "na", "nan", "none", "."}
# reference levels are kept off 0 and 1: one methylated call in a region whose reference is fully
# unmethylated in a tissue must lower that tissue's likelihood, not rule it out for the whole sample
BETA_FLOOR = 0.01


@dataclass
class RegionCounts:
    """One count table: regions (R,) and named columns (N,) of methylated and total calls (R, N)."""

    path: Path
    keys: list[tuple[str, int, int]]  # (chrom, start, end) per region
    names: list[str]
    meth: np.ndarray  # (R, N) float64; NaN where missing
    depth: np.ndarray  # (R, N) float64; 0 where missing


def _header_names(cols: list[str], path: Path) -> list[str]:
    if [c.lower() for c in cols[:3]] != ["chrom", "start", "end"] and [c.lower() for c in cols[:3]] != ["chr", "start", "end"]:
        raise InputFormatError("a count table needs a header 'chrom start end <name>_meth <name>_depth ...'",
                               path=path, line=1, hint="CelFiE's tim_matrix layout; add the header to a header-less table")
    pairs = cols[3:]
    if not pairs or len(pairs) % 2:
        raise InputFormatError(f"after chrom/start/end the columns must come in <name>_meth/<name>_depth pairs, "
                               f"got {len(pairs)} columns", path=path, line=1)
    names = []
    for k in range(0, len(pairs), 2):
        meth, depth = pairs[k], pairs[k + 1]
        if not meth.endswith("_meth") or not depth.endswith("_depth") or meth[:-5] != depth[:-6]:
            raise InputFormatError(f"columns {k + 4}-{k + 5} ({meth!r}, {depth!r}) are not a <name>_meth "
                                   f"<name>_depth pair", path=path, line=1)
        names.append(meth[:-5])
    if len(set(names)) != len(names):
        raise InputFormatError("a column name appears twice", path=path, line=1)
    return names


def _value(text: str, path: Path, line: int, column: str) -> float:
    if text.strip().lower() in _MISSING:
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        raise InputFormatError(f"{column} is not a number: {text!r}", path=path, line=line) from None
    if value < 0 or not np.isfinite(value):
        raise InputFormatError(f"{column} must be a finite count >= 0, got {text!r}", path=path, line=line)
    return value


def read_region_counts(path: str | Path) -> RegionCounts:
    """Read and check a count table (tab- or comma-separated, CRLF or LF, optionally gzipped)."""
    path = require_file(path, "count table")
    keys: list[tuple[str, int, int]] = []
    rows: list[list[float]] = []
    seen: dict[tuple[str, int, int], int] = {}
    names: list[str] | None = None
    sep = "\t"
    with open_text(path) as fh:
        for line_no, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            if names is None:
                sep = "\t" if "\t" in line else ","
                names = _header_names([c.strip() for c in line.split(sep)], path)
                continue
            cols = line.split(sep)
            if len(cols) != 3 + 2 * len(names):
                raise InputFormatError(f"{len(cols)} columns, the header has {3 + 2 * len(names)}", path=path, line=line_no)
            try:
                key = (cols[0].strip(), int(cols[1]), int(cols[2]))
            except ValueError:
                raise InputFormatError("start and end must be integers", path=path, line=line_no) from None
            if key[1] < 0 or key[2] <= key[1]:
                raise InputFormatError(f"region {key[0]}:{key[1]}-{key[2]} has end <= start", path=path, line=line_no)
            if key in seen:
                raise InputFormatError(f"region {key[0]}:{key[1]}-{key[2]} repeats line {seen[key]}", path=path, line=line_no)
            seen[key] = line_no
            values = []
            for k, name in enumerate(names):
                meth = _value(cols[3 + 2 * k], path, line_no, f"{name}_meth")
                depth = _value(cols[4 + 2 * k], path, line_no, f"{name}_depth")
                if np.isnan(depth) or np.isnan(meth):
                    meth, depth = float("nan"), 0.0
                elif meth > depth * (1 + 1e-6) + 1e-6:
                    raise InputFormatError(f"{name}: {meth:g} methylated calls of {depth:g} in all", path=path,
                                           line=line_no, hint="the pairs are <name>_meth then <name>_depth")
                values += [meth, depth]
            keys.append(key)
            rows.append(values)
    if names is None or not rows:
        raise InputFormatError("count table has no region rows", path=path)
    data = np.asarray(rows, dtype=np.float64)
    return RegionCounts(path, keys, names, data[:, 0::2], data[:, 1::2])


@dataclass
class Joined:
    """Sample and reference on their shared regions, the reference as methylation levels."""

    samples: list[str]
    tissues: list[str]
    meth: np.ndarray  # (R, S)
    depth: np.ndarray  # (R, S)
    beta: np.ndarray  # (R, T) reference levels, every tissue covered


def join_tables(sample: RegionCounts, reference: RegionCounts, *, min_reference_depth: float = 1.0) -> Joined:
    """Regions present in both tables where every reference tissue has ``min_reference_depth`` calls."""
    ref_row = {key: k for k, key in enumerate(reference.keys)}
    shared = [(k, ref_row[key]) for k, key in enumerate(sample.keys) if key in ref_row]
    if not shared:
        example = sample.keys[0]
        raise TissueBertError(f"no region of {sample.path} is in the reference {reference.path} (first sample region "
                              f"{example[0]}:{example[1]}-{example[2]})",
                              hint="both tables must list the same regions: same genome build, same coordinates")
    s_idx = np.array([a for a, _ in shared])
    r_idx = np.array([b for _, b in shared])
    ref_depth = reference.depth[r_idx]
    covered = np.all(ref_depth >= min_reference_depth, axis=1)
    if not covered.any():
        raise TissueBertError(f"no shared region has >= {min_reference_depth:g} calls in every tissue of {reference.path}")
    if len(shared) < 0.5 * len(sample.keys):
        log.warning("only %d of the %d regions of %s are in the reference %s", len(shared), len(sample.keys),
                    sample.path, reference.path)
    log.info("count tables: %d shared regions, %d with every reference tissue covered", len(shared), int(covered.sum()))
    s_idx, r_idx = s_idx[covered], r_idx[covered]
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = reference.meth[r_idx] / reference.depth[r_idx]
    return Joined(list(sample.names), list(reference.names), sample.meth[s_idx], sample.depth[s_idx], beta)


def _em(beta: np.ndarray, meth: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """CelFiE's likelihood with a fixed reference: rows = (region, methylated) and (region, not)."""
    b = np.clip(beta, BETA_FLOOR, 1 - BETA_FLOOR)  # (R, T)
    loglik = np.concatenate([np.log(b), np.log1p(-b)])  # (2R, T)
    weights = np.concatenate([meth, depth - meth])
    keep = weights > 0
    return em_proportions(loglik[keep], weights=weights[keep], tol=1e-10)


def _nnls(beta: np.ndarray, meth: np.ndarray, depth: np.ndarray) -> np.ndarray:
    return nnls_mixture(beta, np.where(depth > 0, meth / np.where(depth > 0, depth, 1), np.nan))


_ESTIMATORS = {"em": _em, "nnls": _nnls}


def deconvolve_table(joined: Joined, methods: list[str], *, n_boot: int = 200, ci_level: float = 0.95,
                     seed: int = 0, min_depth: float = 1.0) -> dict[str, list]:
    """Proportions of every sample column by each method: sample -> [DeconvResult, ...]."""
    from tissuebert.deconvolve.run import DeconvResult
    from tissuebert.deconvolve.warnings import result_warnings

    unknown = [m for m in methods if m not in TABLE_METHODS]
    if unknown:
        raise TissueBertError(f"count tables support --method {', '.join(TABLE_METHODS)}, not {', '.join(unknown)}",
                              hint="the model and UXM need reads (fragments); a count table has only sums")
    out: dict[str, list] = {}
    for s, name in enumerate(joined.samples):
        has = joined.depth[:, s] >= min_depth
        if has.sum() < 2:
            raise TissueBertError(f"sample {name!r} has fewer than 2 regions with >= {min_depth:g} calls "
                                  f"among the {len(has)} shared with the reference")
        beta, meth, depth = joined.beta[has], joined.meth[has, s], joined.depth[has, s]
        rng = np.random.default_rng(seed)
        results = []
        for method in methods:
            fit = _ESTIMATORS[method]
            estimate = fit(beta, meth, depth)
            # resample regions, the unit the calls are correlated within; one generator per sample
            low, high, _ = bootstrap(lambda pick: fit(beta[pick], meth[pick], depth[pick]), index_draw(len(beta)),
                                     n_out=len(joined.tissues), n_boot=n_boot, ci_level=ci_level, seed=rng,
                                     estimate=estimate)
            res = DeconvResult(list(joined.tissues), method, estimate, low, high, estimate * depth.sum(),
                               int(round(depth.sum())), ci_level)
            res.warnings = result_warnings(res)
            results.append(res)
        out[name] = results
    return out


def write_table_results(out: Path, results: dict[str, list], info: dict, *, force: bool) -> None:
    """The deconvolve layout (deconvolve/output.py) with run.json naming the tables read."""
    from tissuebert.atomic import atomic_dir
    from tissuebert.deconvolve.output import result_warning_lines, write_results, write_run_info

    single = len(results) == 1
    with atomic_dir(out, force=force) as tmp:
        write_results(tmp, results)
        write_run_info(tmp, info, [{"sample": name, "folder": "." if single else name, "n_calls": res[0].n_reads,
                                    "warnings": result_warning_lines(res)} for name, res in results.items()])

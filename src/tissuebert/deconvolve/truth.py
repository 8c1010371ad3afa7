"""`deconvolve --truth`: the estimates beside a known composition (in-silico or spike-in mixtures).

The truth file is a TSV with a header: ``tissue  proportion`` for a one-sample run, or a sample
column (``mixture``, ``sample`` or ``sample_id``) as well for a cohort -- the layout of
`tissuebert simulate-mixture`'s ``truth.tsv`` and of the demo's ``<name>.truth.tsv``. Tissues a
sample does not list are 0. Each sample's proportions must add up to 1 (within 0.01).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.deconvolve.result import DeconvResult
from tissuebert.errors import TissueBertError
from tissuebert.io.text import open_text

SAMPLE_COLUMNS = ("mixture", "sample", "sample_id")
SUM_TOLERANCE = 0.01
TRUTH_COLUMNS = ("sample", "method", "tissue", "truth", "proportion", "error")


def read_truth(path: str | Path) -> dict[str | None, dict[str, float]]:
    """{sample (None without a sample column): {tissue: proportion}}, checked line by line."""
    path = Path(path)
    if not path.is_file():
        raise TissueBertError("truth file not found", path=path)
    out: dict[str | None, dict[str, float]] = {}
    with open_text(path) as fh:
        lines = [(n, line.rstrip("\r\n")) for n, line in enumerate(fh, 1)]
    body = [(n, line) for n, line in lines if line.strip() and not line.startswith("#")]
    if not body:
        raise TissueBertError("truth file is empty", path=path, hint="header `tissue<TAB>proportion`, one row per tissue")
    header = body[0][1].split("\t")
    missing = [c for c in ("tissue", "proportion") if c not in header]
    if missing:
        raise TissueBertError(f"truth file lacks the column(s) {', '.join(missing)} (header: {' '.join(header)})",
                              path=path, hint="header `tissue<TAB>proportion`, with `mixture` or `sample` first for a cohort")
    sample_col = next((header.index(c) for c in SAMPLE_COLUMNS if c in header), None)
    t_col, p_col = header.index("tissue"), header.index("proportion")
    for n, line in body[1:]:
        cells = line.split("\t")
        where = f"{path}:{n}"
        if len(cells) != len(header):
            raise TissueBertError(f"{where}: {len(cells)} columns, the header has {len(header)}")
        try:
            value = float(cells[p_col])
        except ValueError:
            raise TissueBertError(f"{where}: proportion {cells[p_col]!r} is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise TissueBertError(f"{where}: proportion {value} outside [0, 1]")
        sample = cells[sample_col] if sample_col is not None else None
        tissues = out.setdefault(sample, {})
        if cells[t_col] in tissues:
            raise TissueBertError(f"{where}: tissue {cells[t_col]} listed twice" + (f" for {sample}" if sample else ""))
        tissues[cells[t_col]] = value
    for sample, tissues in out.items():
        total = sum(tissues.values())
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise TissueBertError(f"the truth of {sample or 'the sample'} adds up to {total:.4f}, not 1", path=path)
    return out


def match_truth(truth: dict[str | None, dict[str, float]], sample_ids: list[str], tissues: list[str],
                path: str | Path) -> dict[str, np.ndarray]:
    """Each run sample's true proportions over ``tissues``; refuses unknown tissues and a truth that
    names none of the samples."""
    if None in truth:
        if len(sample_ids) != 1:
            raise TissueBertError(f"the truth file has no sample column but the run has {len(sample_ids)} samples",
                                  path=path, hint=f"add a column named one of {', '.join(SAMPLE_COLUMNS)}")
        truth = {sample_ids[0]: truth[None]}
    matched = {s: truth[s] for s in sample_ids if s in truth}
    if not matched:
        raise TissueBertError(f"the truth file names none of the samples ({', '.join(sample_ids[:5])}"
                              f"{' ...' if len(sample_ids) > 5 else ''})", path=path,
                              hint="its sample column must hold the samples' ids (file names without the format suffix)")
    out = {}
    for sample, props in matched.items():
        unknown = sorted(set(props) - set(tissues))
        if unknown:
            raise TissueBertError(f"the truth of {sample} names tissue(s) {', '.join(unknown)} that the methods do not "
                                  f"estimate", path=path, hint=f"the tissues are: {', '.join(tissues)}")
        out[sample] = np.array([props.get(t, 0.0) for t in tissues])
    return out


def compare(results: dict[str, list[DeconvResult]], truth: dict[str, np.ndarray]) -> tuple[list[list], dict]:
    """(rows of vs_truth.tsv, {sample: {method: {mae, max_abs_error}}}) with a uniform-guess row per sample."""
    rows: list[list] = []
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for sample, true in truth.items():
        res = results.get(sample, [])
        if not res:
            continue
        tissues = res[0].tissues
        estimates = {r.method: r.proportions for r in res}
        estimates["uniform guess"] = np.full(len(tissues), 1.0 / len(tissues))
        summary[sample] = {}
        for method, est in estimates.items():
            err = np.asarray(est, dtype=np.float64) - true
            summary[sample][method] = {"mae": float(np.abs(err).mean()), "max_abs_error": float(np.abs(err).max())}
            rows += [[sample, method, t, float(true[i]), float(est[i]), float(err[i])] for i, t in enumerate(tissues)]
    return rows, summary


def write_truth_table(path: Path, rows: list[list]) -> None:
    lines = ["\t".join(TRUTH_COLUMNS)]
    lines += [f"{s}\t{m}\t{t}\t{tr:.6f}\t{p:.6f}\t{e:+.6f}" for s, m, t, tr, p, e in rows]
    path.write_text("\n".join(lines) + "\n")

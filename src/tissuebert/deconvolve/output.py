"""Files written by `tissuebert deconvolve` and `tissuebert predict`."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from tissuebert.atomic import atomic_path
from tissuebert.constants import METH_NONE, WINDOW_BP
from tissuebert.deconvolve.run import DeconvResult
from tissuebert.store.panel import Panel
from tissuebert.store.sample import unpack_calls

PROPORTION_COLUMNS = ("method", "tissue", "proportion", "ci_low", "ci_high", "reads_used")
PATTERN_LETTERS = "TC."  # call code METH_U, METH_M, METH_NONE -> its .pat letter


def write_results(root: Path, results: dict[str, list[DeconvResult]]) -> dict[str, Path]:
    """The layout every deconvolution writes under ``root``: per sample, proportions.tsv and its
    plot (in ``root`` itself for one sample, else ``root/<sample>``), then the cohort tables.
    Returns each sample's folder (callers add their own per-sample files there)."""
    from tissuebert.constants import OUT

    single = len(results) == 1
    folders = {}
    for name, res in results.items():
        folder = folders[name] = root if single else root / name
        folder.mkdir(exist_ok=True)
        (folder / OUT.PROPORTIONS).write_text(proportions_tsv(res))
        plot_proportions([r for r in res if r.tissues == res[0].tissues], folder / OUT.PROPORTIONS_PNG, sample=name)
    (root / OUT.COHORT_PROPORTIONS).write_text(cohort_long_tsv(results))
    (root / OUT.COHORT_MATRIX).write_text(cohort_matrix_tsv(results))
    (root / OUT.MULTIQC).write_text(multiqc_tsv(results))
    return folders


def write_run_info(root: Path, info: dict, samples_info: list[dict]) -> None:
    """run.json: the version, the run's facts, each sample's and every warning in one list."""
    import json

    from tissuebert import __version__
    from tissuebert.constants import OUT

    run_warnings = list(info.pop("run_warnings", []))  # about the whole run (e.g. the checkpoint)
    run_info = {"version": __version__, **info, "samples": samples_info,
                "warnings": run_warnings + [f"{s['sample']}, {w}" for s in samples_info for w in s["warnings"]]}
    (root / OUT.RUN_INFO).write_text(json.dumps(run_info, indent=2) + "\n")


def result_warning_lines(res: list[DeconvResult]) -> list[str]:
    return [f"{r.method}: {w}" for r in res for w in r.warnings]


def proportions_tsv(results: list[DeconvResult]) -> str:
    """Long format: one row per (method, tissue); NaN intervals mean no bootstrap was run."""
    lines = ["\t".join(PROPORTION_COLUMNS)]
    for res in results:
        for row in res.rows():
            lines.append(f"{row['method']}\t{row['tissue']}\t{row['proportion']:.6f}\t{row['ci_low']:.6f}\t"
                         f"{row['ci_high']:.6f}\t{row['reads_used']:d}")
    return "\n".join(lines) + "\n"


COHORT_COLUMNS = ("sample", *PROPORTION_COLUMNS)


def cohort_long_tsv(results: dict[str, list[DeconvResult]]) -> str:
    """Every sample in one long table: one row per (sample, method, tissue)."""
    lines = ["\t".join(COHORT_COLUMNS)]
    for sample, res in results.items():
        body = proportions_tsv(res).splitlines()[1:]
        lines += [f"{sample}\t{line}" for line in body]
    return "\n".join(lines) + "\n"


def _all_tissues(results: dict[str, list[DeconvResult]]) -> list[str]:
    tissues: list[str] = []
    for res in results.values():
        for r in res:
            tissues += [t for t in r.tissues if t not in tissues]
    return tissues


def cohort_matrix_tsv(results: dict[str, list[DeconvResult]]) -> str:
    """Wide: one row per (sample, method), one proportion column per tissue (0 where a method's
    tissue list lacks it, e.g. a published atlas)."""
    tissues = _all_tissues(results)
    lines = ["\t".join(["sample", "method", *tissues])]
    for sample, res in results.items():
        for r in res:
            value = dict(zip(r.tissues, r.proportions))
            lines.append("\t".join([sample, r.method, *(f"{value.get(t, 0.0):.6f}" for t in tissues)]))
    return "\n".join(lines) + "\n"


def multiqc_tsv(results: dict[str, list[DeconvResult]]) -> str:
    """MultiQC custom content (a ``*_mqc.tsv`` file MultiQC picks up): a stacked bar graph of each
    sample's proportions by the run's first method, in percent."""
    tissues = _all_tissues(results)
    method = next((res[0].method for res in results.values() if res), "em")
    head = ["# id: 'tissuebert'", "# section_name: 'Tissue of origin (tissuebert)'",
            f"# description: 'Tissue proportions by {method} (tissuebert deconvolve), percent of the sample.'",
            "# plot_type: 'bargraph'", "# pconfig:", "#    id: 'tissuebert_proportions'",
            "#    title: 'tissuebert: tissue proportions'", "#    ylab: 'Percent'", "#    cpswitch: false"]
    lines = head + ["\t".join(["Sample", *tissues])]
    for sample, res in results.items():
        first = next((r for r in res if r.method == method), None)
        if first is None:
            continue
        value = dict(zip(first.tissues, first.proportions))
        lines.append("\t".join([sample, *(f"{100 * value.get(t, 0.0):.4f}" for t in tissues)]))
    return "\n".join(lines) + "\n"


def read_proportions_tsv(path: str | Path) -> dict[str, dict[str, float]]:
    """{method: {tissue: proportion}} from a proportions.tsv."""
    out: dict[str, dict[str, float]] = {}
    with open(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        for text in fh:
            row = dict(zip(header, text.rstrip("\n").split("\t")))
            out.setdefault(row["method"], {})[row["tissue"]] = float(row["proportion"])
    return out


def plot_proportions(results: list[DeconvResult], path: str | Path, title: str = "", sample: str = "") -> None:
    """Grouped bars (one colour per method) with bootstrap intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tissues = results[0].tissues
    x = np.arange(len(tissues))
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(tissues) + 2), 4))
    for k, res in enumerate(results):
        err = None
        if np.all(np.isfinite(res.ci_low)):
            err = np.vstack([np.clip(res.proportions - res.ci_low, 0, None),
                             np.clip(res.ci_high - res.proportions, 0, None)])
        ax.bar(x + (k - (len(results) - 1) / 2) * width, res.proportions, width=width, yerr=err, capsize=2,
               label=res.method)
    ax.set_xticks(x, tissues, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("proportion")
    ax.set_ylim(0, max(0.05, min(1.0, max(float(np.nanmax(r.ci_high if np.all(np.isfinite(r.ci_high)) else r.proportions))
                                               for r in results) * 1.1)))
    ax.legend(fontsize=8)
    level = int(round(results[0].ci_level * 100))
    default = f"Tissue proportions ({level}% bootstrap intervals)"
    ax.set_title(title or (f"{sample}: {default[0].lower()}{default[1:]}" if sample else default))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_posteriors(path: str | Path, panel: Panel, tissues: list[str], window_idx: np.ndarray,
                     loglik: np.ndarray, counts: np.ndarray | None, calls: np.ndarray, *,
                     read_names: list[str] | None = None, chunk: int = 200_000) -> None:
    """Per-read posteriors (uniform prior: the model's evidence alone) as a gzipped TSV, one row per
    unique (window, read pattern), written in chunks to bound memory:

    ``window chrom start end cpg_start pattern count <one column per tissue> call``

    ``start``/``end`` are the window's BED coordinates (0-based, half-open), ``cpg_start`` the
    wgbs_tools CpG index (1-based) of its first CpG, ``pattern`` the read's calls on the window's
    CpGs in .pat letters (C methylated, T unmethylated, . no call), so a row is traced back to the
    reads of the input (``count`` of them) without the model. ``read_names`` (one string per row)
    adds a last column ``read_names``: the names of the row's reads, comma-joined."""
    window_idx = np.asarray(window_idx, dtype=np.int64)
    counts = np.ones(len(window_idx), np.int64) if counts is None else np.asarray(counts).astype(np.int64)
    names = np.array(tissues, dtype=object)
    letters = np.frombuffer(PATTERN_LETTERS.encode(), dtype=np.uint8)  # indexed by call code
    width = max(panel.max_cpgs, 1)
    header = ["window", "chrom", "start", "end", "cpg_start", "pattern", "count", *tissues, "call"]
    if read_names is not None:
        header.append("read_names")
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", compresslevel=5) as fh:
        fh.write("\t".join(header) + "\n")
        for start in range(0, len(window_idx), chunk):
            ll = np.asarray(loglik[start:start + chunk], dtype=np.float64)
            post = np.exp(ll - ll.max(axis=1, keepdims=True))
            post /= post.sum(axis=1, keepdims=True)
            wins = window_idx[start:start + chunk]
            uniq, inverse = np.unique(wins, return_inverse=True)
            labels = np.array([panel.window_label(int(w)) for w in uniq], dtype=object)[inverse]
            chroms = np.array(panel.chroms, dtype=object)[panel.win_chrom[wins]]
            begin = panel.win_start[wins]
            codes = unpack_calls(np.asarray(calls[start:start + chunk]), width)  # (n, K) call codes
            n_cpgs = panel.n_cpgs[wins]
            chars = letters[np.minimum(codes, METH_NONE)]  # (n, K) uint8
            patterns = [row[:k].tobytes().decode() for row, k in zip(chars, n_cpgs)]
            first = panel.cpg_index[np.minimum(panel.cpg_ptr[wins], max(len(panel.cpg_index) - 1, 0))]
            cols = [labels, chroms, begin.astype(str), (begin + WINDOW_BP).astype(str),
                    np.where(n_cpgs > 0, first, 0).astype(str), patterns,
                    counts[start:start + chunk].astype(str)]
            cols += [np.char.mod("%.5f", post[:, t]) for t in range(post.shape[1])]
            cols.append(names[post.argmax(axis=1)])
            if read_names is not None:
                cols.append(read_names[start:start + chunk])
            fh.write("\n".join("\t".join(row) for row in zip(*cols)) + "\n")

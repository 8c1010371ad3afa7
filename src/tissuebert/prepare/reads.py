"""``read_sample_windows``: stream one input file and project its reads onto a panel."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tissuebert.errors import InputFormatError, TissueBertError, require_file
from tissuebert.io import pat as pat_io
from tissuebert.io.fasta import naming_hint
from tissuebert.io.formats import FORMATS, INPUT_FORMATS, ROUTE_BAM, ROUTE_COUNTS, ROUTE_PAT
from tissuebert.io.text import tabix_index
from tissuebert.prepare.bam_reads import read_bam
from tissuebert.prepare.project import PanelIndex, Projector, WindowReads
from tissuebert.prepare.pseudo import read_counts
from tissuebert.progress import get_logger
from tissuebert.store.panel import Panel

log = get_logger("prepare.reads")
BATCH = 20000  # reads projected per vectorised batch
PAT_STREAM_BYTES = 32 << 20  # indexed .pat.gz files smaller than this are streamed anyway


@dataclass
class ReadFilters:
    """Which BAM alignments count, after wgbs_tools bam2pat's defaults."""

    min_mapq: int = 10
    drop_secondary: bool = True
    drop_supplementary: bool = True
    drop_duplicates: bool = True
    drop_qcfail: bool = True
    drop_unpaired_mates: bool = False  # keep a pair's mapped mate when the other is unmapped
    mod_threshold: float = 0.5  # MM/ML: P(5mC) >= this is M, <= 1 - this is U, between is no call


def _pat_batches(lines: Iterable[pat_io.PatLine],
                 path: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Group .pat lines into per-chromosome batches: (chrom, start, codes, ptr, counts)."""
    chrom: str | None = None
    starts: list[int] = []
    patterns: list[str] = []
    counts: list[int] = []

    def flush() -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lengths = np.fromiter((len(p) for p in patterns), dtype=np.int64, count=len(patterns))
        ptr = np.zeros(len(patterns) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ptr[1:])
        codes = pat_io.pattern_codes("".join(patterns), path=path)
        return chrom, np.asarray(starts, np.int64), codes, ptr, np.asarray(counts, np.int64)

    for line_chrom, start, pattern, count, _ in lines:
        if line_chrom != chrom or len(starts) >= BATCH:
            if starts:
                yield flush()
            chrom, starts, patterns, counts = line_chrom, [], [], []
        starts.append(start)
        patterns.append(pattern)
        counts.append(count)
    if starts:
        yield flush()


def _project_lines(lines: list[pat_io.PatLine], bounds: np.ndarray, path: Path, proj: Projector) -> None:
    """Project fetched lines (all of one chromosome), each limited to its cluster's windows."""
    done = 0
    for chrom, start, codes, ptr, counts in _pat_batches(lines, path):
        n = start.shape[0]
        proj.add(chrom, start, codes, ptr, counts, bounds[done:done + n, 0], bounds[done:done + n, 1])
        done += n


def _read_pat_tabix(path: Path, index: PanelIndex, proj: Projector) -> dict:
    """Look up each window cluster's CpG range through the tabix index."""
    n_lines = 0
    panel = index.panel
    with pat_io.open_indexed_pat(path) as tbx:
        _check_chroms(set(tbx.contigs), panel, path)
        for chrom in panel.chroms:
            n_lines += _fetch_chrom(tbx, path, chrom, index, proj)
    return {"mode": "tabix", "lines": n_lines}


def _fetch_chrom(tbx, path: Path, chrom: str, index: PanelIndex, proj: Projector) -> int:
    """Fetch one chromosome's clusters; lines are projected in batches, each onto its own cluster."""
    n_lines = 0
    wids = index.chrom_windows[chrom]
    lines: list[pat_io.PatLine] = []
    bounds: list[tuple[int, int]] = []  # cluster rank range of each fetched line
    for _, _, rank_lo, rank_hi in index.clusters(chrom):
        first = int(index.lo[chrom][rank_lo:rank_hi].min())
        last = int(index.hi[chrom][rank_lo:rank_hi].max())
        fetched = list(pat_io.fetch_pat(tbx, path, chrom, first, last))
        lines += fetched
        bounds += [(rank_lo, rank_hi)] * len(fetched)
        if len(lines) >= BATCH or rank_hi == len(wids):
            n_lines += len(lines)
            _project_lines(lines, np.asarray(bounds, np.int64).reshape(-1, 2), path, proj)
            lines, bounds = [], []
    return n_lines


def _read_pat(path: Path, index: PanelIndex, proj: Projector, stream: bool | None) -> dict:
    if stream is None:  # a small file is read faster in one pass than by index look-ups
        use_tabix = tabix_index(path) is not None and path.stat().st_size > PAT_STREAM_BYTES
    else:
        use_tabix = not stream
    if use_tabix:
        try:
            return _read_pat_tabix(path, index, proj)
        except (OSError, ValueError) as exc:
            raise InputFormatError(f"cannot read the indexed .pat: {exc}", path=path,
                                   hint="a .csi/.tbi needs a bgzip-compressed file; re-index it or remove the index") from None
    n_lines = 0
    chroms_seen: set[str] = set()
    ranges = _chrom_ranges(index.panel)

    def counted() -> Iterator[pat_io.PatLine]:
        nonlocal n_lines
        prev: tuple[str, int] | None = None
        for rec in pat_io.iter_pat(path):
            n_lines += 1
            bounds = ranges.get(rec[0])
            if bounds is not None and not bounds[0] <= rec[1] <= bounds[1]:
                _out_of_range(rec, bounds, path)
            if prev is not None and rec[0] == prev[0] and rec[1] < prev[1]:
                raise InputFormatError("the .pat file is not sorted by CpG index", path=path, line=rec[4],
                                       hint="sort it (wgbstools convert / sort -k1,1 -k2,2n) and bgzip it")
            prev = (rec[0], rec[1])
            chroms_seen.add(rec[0])
            yield rec

    for batch in _pat_batches(counted(), path):
        proj.add(*batch)
    _check_chroms(chroms_seen, index.panel, path)
    return {"mode": "stream", "lines": n_lines}


def _chrom_ranges(panel: Panel) -> dict[str, tuple[int, int]]:
    """{chrom: (first, last) CpG index} of the chromosomes the panel's CpG index numbers completely."""
    if panel.cpg_range is None:
        return {}
    return {c: (int(lo), int(hi)) for c, (lo, hi) in zip(panel.chroms, panel.cpg_range) if hi > 0}


def _out_of_range(rec: pat_io.PatLine, bounds: tuple[int, int], path: Path) -> None:
    chrom, start, _, _, line = rec
    where = "past the end of" if start > bounds[1] else "before the start of"
    raise InputFormatError(f".pat line starts at CpG index {start:,}, {where} {chrom} (CpG indices {bounds[0]:,}-"
                           f"{bounds[1]:,} in the CpG index the panel was built with)", path=path, line=line,
                           hint="the .pat was made with another genome's CpG index (--cpg-index), or it is damaged")


def _check_chroms(seen: set[str], panel: Panel, path: Path) -> None:
    """Reads on none of the panel's chromosomes usually means chr1 vs 1 naming."""
    if seen and not seen & set(panel.chroms):
        example = sorted(seen)[0]
        hint = naming_hint(example, panel.chroms, "the panel") or f"the panel's chromosomes are {', '.join(panel.chroms[:5])}"
        raise InputFormatError(f"no read lies on a chromosome of the panel (file has {example!r}, ...)", path=path,
                               hint=hint)


@dataclass(frozen=True)
class _ReadOptions:
    """What the readers of the three routes may need; each takes its own."""

    stream: bool | None
    filters: ReadFilters
    reference: str | Path | None
    seed: int
    max_reads_per_window: int | None


def _pat_route(path: Path, fmt: str, index: PanelIndex, proj: Projector, how: _ReadOptions) -> dict:
    return _read_pat(path, index, proj, how.stream)


def _bam_route(path: Path, fmt: str, index: PanelIndex, proj: Projector, how: _ReadOptions) -> dict:
    return read_bam(path, fmt, index, proj, filters=how.filters, reference=how.reference)


def _counts_route(path: Path, fmt: str, index: PanelIndex, proj: Projector, how: _ReadOptions) -> dict:
    return read_counts(path, fmt, index, proj, seed=how.seed, max_reads_per_window=how.max_reads_per_window)


_READERS = {ROUTE_PAT: _pat_route, ROUTE_BAM: _bam_route, ROUTE_COUNTS: _counts_route}  # io/formats.py's routes


def require_read_names(path: Path, fmt: str) -> None:
    """Only a BAM names its reads: refuse read names of any other format."""
    if FORMATS[fmt].route != ROUTE_BAM:
        what = {"pat": "a .pat file collapses reads into patterns and keeps no read names"}.get(
            fmt, f"a {fmt} file holds per-CpG counts, not named reads")
        raise TissueBertError(f"--read-names needs a BAM input: {what}", path=path,
                              hint="drop --read-names, or predict from the BAM the file was made from")


def read_sample_windows(path: str | Path, fmt: str, panel: Panel, *, reference: str | Path | None = None,
                        min_cpgs: int = 1, collapse: bool = False, filters: ReadFilters | None = None,
                        seed: int = 0, max_reads_per_window: int | None = None,
                        stream: bool | None = None, index: PanelIndex | None = None,
                        read_names: bool = False) -> WindowReads:
    """Read one sample file (``fmt`` in INPUT_FORMATS) into rows of (window, packed calls, count).

    A read gives one row per window where it has >= ``min_cpgs`` calls. ``collapse=False`` expands
    multiplicities into rows (counts all 1); ``collapse=True`` merges identical (window, calls)
    rows and keeps their multiplicity in ``counts``. ``max_reads_per_window`` keeps a seeded
    uniform subset of each window's reads. ``stream`` forces (True) or forbids (False) a single
    pass over a .pat instead of tabix look-ups (default: tabix when indexed and over 32 MB).
    ``read_names`` (BAM only) fills ``read_names``: per row, the names of its reads.
    """
    path = require_file(path, f"{fmt} input")
    if fmt not in INPUT_FORMATS:
        raise TissueBertError(f"unknown input format {fmt!r}; choose one of {', '.join(INPUT_FORMATS)}", path=path)
    if read_names:
        require_read_names(path, fmt)
    index = index or PanelIndex(panel)
    proj = Projector(index, min_cpgs=min_cpgs, track_reads=read_names)
    how = _ReadOptions(stream=stream, filters=filters or ReadFilters(), reference=reference, seed=seed,
                       max_reads_per_window=max_reads_per_window)
    stats = _READERS[FORMATS[fmt].route](path, fmt, index, proj, how)
    out = proj.finish(collapse=collapse, max_reads_per_window=max_reads_per_window, seed=seed,
                      pseudo=FORMATS[fmt].pseudo_reads, stats=dict(stats, format=fmt))
    log.debug("%s: %s", path.name, out.stats)
    return out

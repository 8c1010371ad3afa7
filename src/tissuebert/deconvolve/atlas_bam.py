"""bam2pat for the UXM ``--atlas`` route: a BAM's fragments over the atlas's markers as .pat reads.

The atlas names its CpGs by genome-wide index (``[startCpG, endCpG)``); the wgbs_tools CpG index
(``--cpg-index``: ``chr loc index``) says where they are. Each marker's index entries are checked
against the atlas's own coordinates (its ``start`` is the C of its first CpG), so an index of
another build stops the run. Calls are made as ``prepare`` makes them (io/bam.py, the same read
filters, the mates of a pair merged into one fragment), so no FASTA is needed; a FASTA given
with ``--reference`` is checked against the BAM header's contig lengths. A bisulfite read must
show the other base of the CpG (the G beside a top-strand call, the C beside a bottom-strand
one) at most of the index's CpGs, or the BAM is of another genome build than the index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.constants import METH_NONE
from tissuebert.deconvolve.atlas_io import PatReads, UxmAtlas
from tissuebert.errors import InputFormatError
from tissuebert.io.bam import bisulfite_calls, is_bottom_strand, match_blocks, modification_calls, open_bam
from tissuebert.io.bam_index import check_bai_matches
from tissuebert.io.cpg_index import read_cpg_index
from tissuebert.io.fasta import Reference, naming_hint
from tissuebert.prepare.bam_reads import check_contig_lengths, filter_reason, merge_mates
from tissuebert.prepare.reads import ReadFilters

MIN_PARTNER_CHECKS = 50  # CpG calls needed before the partner-base share is judged
MIN_PARTNER_SHARE = 0.8  # real CpGs: ~0.99 (SNPs, sequencing errors); another build: ~0.2


def marker_cpgs(atlas: UxmAtlas, atlas_path: Path, cpg_index: Path, chroms: list[str], lengths: dict[str, int]
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{chrom: (C positions 0-based, CpG indices)} of the atlas markers' CpGs on ``chroms``, each
    marker checked against the index: all of ``[startCpG, endCpG)``, the first at ``start``."""
    spans: dict[str, list[tuple[int, int]]] = {c: [] for c in chroms}
    for m, chrom in enumerate(atlas.chrom):
        if chrom in spans:
            spans[chrom].append((int(atlas.start[m]) - 1, int(atlas.end[m])))
    table = read_cpg_index(cpg_index, spans, lengths)
    out = {}
    for chrom in chroms:
        pos, ords = table.cpgs[chrom]
        keep = []
        for m in (m for m, c in enumerate(atlas.chrom) if c == chrom):
            lo, hi = int(atlas.start_cpg[m]), int(atlas.end_cpg[m])
            sel = np.flatnonzero((ords >= lo) & (ords < hi))
            if sel.size != hi - lo or pos[sel[0]] + 1 != atlas.start[m] or pos[sel[-1]] >= atlas.end[m]:
                where = f"at {chrom}:{pos[sel[0]] + 1}" if sel.size else "nowhere near it"
                raise InputFormatError(f"the atlas {atlas_path.name} puts CpGs {lo}-{hi - 1} (marker {atlas.names[m]}) "
                                       f"at {chrom}:{int(atlas.start[m])}-{int(atlas.end[m])}, the CpG index "
                                       f"{where} ({sel.size} of {hi - lo} found)", path=cpg_index,
                                       hint="give the CpG index of the atlas's genome build (wgbs_tools init_genome)")
            keep.append(sel)
        sel = np.unique(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
        out[chrom] = (pos[sel], ords[sel])
    return out


def _partner_bases(read, bottom: bool, cpg_pos: np.ndarray) -> tuple[int, int]:
    """(agreeing, checked): the base paired with the call at each CpG the read aligns. A
    top-strand read calls at the C and must show the G; a bottom-strand read the reverse."""
    seq = read.query_sequence.upper()
    want, shift = ("C", 0) if bottom else ("G", 1)
    agree = checked = 0
    for ref0, ref1, query0 in match_blocks(read):
        for site in cpg_pos[(cpg_pos + shift >= ref0) & (cpg_pos + shift < ref1)] + shift:
            checked += 1
            agree += seq[query0 + int(site) - ref0] == want
    return agree, checked


def _check_lengths(bam, chroms: list[str], path: Path, reference: Path) -> None:
    ref = Reference(reference)
    try:
        check_contig_lengths(bam, {c: ref.lengths[c] for c in chroms if c in ref.lengths}, path, Path(reference).name)
    finally:
        ref.close()


def bam_to_pat(path: Path, fmt: str, atlas: UxmAtlas, atlas_path: Path, cpg_index: Path, *,
               reference: Path | None = None, filters: ReadFilters | None = None) -> PatReads:
    """The kept fragments of a sorted, indexed BAM over the atlas's markers, in CpG-index coordinates."""
    filters = filters or ReadFilters()
    bam = open_bam(path)
    starts: list[int] = []
    patterns: list[np.ndarray] = []
    agree = checked = 0
    try:
        chroms = sorted(set(atlas.chrom) & set(bam.references), key=atlas.chrom.index)
        if not chroms:
            example = atlas.chrom[0] if atlas.chrom else "?"
            raise InputFormatError(f"none of the atlas's chromosomes ({example}, ...) is in the BAM header", path=path,
                                   hint=naming_hint(example, set(bam.references), "the BAM")
                                   or "are the BAM and the atlas of the same genome?")
        if reference is not None:
            _check_lengths(bam, chroms, path, reference)
        check_bai_matches(bam, Path(path), chroms)
        cpgs = marker_cpgs(atlas, atlas_path, cpg_index, chroms, {c: bam.get_reference_length(c) for c in chroms})
        for chrom in chroms:
            cpg_pos, cpg_ord = cpgs[chrom]
            if cpg_pos.size == 0:
                continue
            cpg_list = cpg_pos.tolist()
            fragments: dict[object, list] = {}
            seen: set[tuple[str, int, int]] = set()
            for m in (m for m, c in enumerate(atlas.chrom) if c == chrom):
                for read in bam.fetch(chrom, int(atlas.start[m]) - 1, int(atlas.end[m])):
                    key = (read.query_name, read.flag, read.reference_start)
                    if key in seen or filter_reason(read, filters):
                        continue  # a read over two markers is fetched twice: keep it once
                    seen.add(key)
                    if fmt == "mmml":
                        calls = modification_calls(read, cpg_pos, filters.mod_threshold)
                    else:
                        calls = bisulfite_calls(read, fmt, cpg_list)
                        a, n = _partner_bases(read, is_bottom_strand(read, fmt), calls[0])
                        agree, checked = agree + a, checked + n
                    fragments.setdefault(read.query_name if read.is_paired else key, []).append(calls)
            for calls in fragments.values():
                pos, code = merge_mates(calls)
                if pos.size:
                    ords = cpg_ord[np.searchsorted(cpg_pos, pos)]
                    row = np.full(int(ords[-1] - ords[0]) + 1, METH_NONE, np.uint8)
                    row[ords - ords[0]] = code
                    starts.append(int(ords[0]))
                    patterns.append(row)
    except (OSError, ValueError) as exc:
        raise InputFormatError(f"cannot read BAM: {exc}", path=path, hint="is the file truncated?") from None
    finally:
        try:
            bam.close()
        except OSError:  # htslib reports an earlier read error again on close
            pass
    if checked >= MIN_PARTNER_CHECKS and agree < MIN_PARTNER_SHARE * checked:
        raise InputFormatError(f"at the CpGs of the CpG index {Path(cpg_index).name}, only {agree} of {checked} read "
                               f"bases beside a call are the CpG's other base (a BAM of this genome shows it at "
                               f"nearly all)", path=path, hint="the BAM was aligned to another genome build than the "
                                                               "CpG index and atlas: use the ones of its build")
    return _pat_reads(starts, patterns)


def _pat_reads(starts: list[int], patterns: list[np.ndarray]) -> PatReads:
    lengths = np.fromiter((len(p) for p in patterns), np.int64, len(patterns))
    codes = np.full((len(patterns), int(lengths.max()) if patterns else 1), METH_NONE, np.uint8)
    for k, row in enumerate(patterns):
        codes[k, :len(row)] = row
    return PatReads(np.asarray(starts, np.int64), codes, lengths, np.ones(len(patterns), np.int64))

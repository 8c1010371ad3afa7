"""The window panel: region BED + reference FASTA (+ CpG index) -> :class:`Panel`.

Tiling (docs/input_formats.md): a region of length L gets n = ceil(L / 150) windows laid end to
end over an n * 150 bp block centred on the region (so a region shorter than 150 bp gets one
window centred on it), the block shifted to stay inside the chromosome. Windows are sorted in
genome order (reference contig order, then start); a window identical to an earlier one (two
overlapping regions) is kept once, under the first region.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.constants import COORDS, N_TOKENS, WINDOW_BP
from tissuebert.errors import InputFormatError
from tissuebert.io.bed import Region, read_regions
from tissuebert.io.cpg_index import CpGIndexSlice, find_line, read_cpg_index
from tissuebert.io.fasta import Reference
from tissuebert.prepare.encode import cpg_offsets, window_tokens
from tissuebert.progress import get_logger
from tissuebert.store.panel import Panel

log = get_logger("prepare.panel")
_CHUNK = 1 << 24  # bases per FASTA read when counting CpGs genome-wide


def tile_region(start: int, end: int, chrom_length: int) -> list[int]:
    """0-based starts of the 150 bp windows covering [start, end) (see module docstring)."""
    if chrom_length < WINDOW_BP:
        raise ValueError(f"chromosome shorter than one {WINDOW_BP} bp window")
    n_win = max(1, -(-(end - start) // WINDOW_BP))
    block = n_win * WINDOW_BP
    first = start - (block - (end - start)) // 2
    first = min(max(first, 0), max(chrom_length - block, 0))
    return [min(first + k * WINDOW_BP, chrom_length - WINDOW_BP) for k in range(n_win)]


def _windows(regions: list[Region], ref: Reference, bed_path: Path) -> tuple[list[str], list[tuple[int, int, int]]]:
    chroms = [c for c in ref.names if any(r.chrom == c for r in regions)]
    chrom_id = {c: i for i, c in enumerate(chroms)}
    order = sorted(range(len(regions)), key=lambda i: (chrom_id[regions[i].chrom], regions[i].start, regions[i].end))
    wins: dict[tuple[int, int], int] = {}
    for reg_rank, i in enumerate(order):
        reg = regions[i]
        length = ref.lengths[reg.chrom]
        if length < WINDOW_BP:
            raise InputFormatError(f"chromosome {reg.chrom} ({length} bp) is shorter than one {WINDOW_BP} bp window",
                                   path=bed_path, line=reg.line, hint="drop regions on this contig")
        for start in tile_region(reg.start, reg.end, length):
            wins.setdefault((chrom_id[reg.chrom], start), reg_rank)
    return chroms, sorted((c, s, r) for (c, s), r in wins.items())


def _ordinals_from_fasta(ref: Reference, chroms: list[str], cpg_pos: dict[str, np.ndarray]
                         ) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
    """Genome-wide 1-based CpG ordinals counted in FASTA contig order (no CpG index given), and
    each wanted chromosome's (first, last) ordinal."""
    out: dict[str, np.ndarray] = {}
    ranges: dict[str, tuple[int, int]] = {}
    before = 0  # CpGs on earlier contigs
    wanted = set(chroms)
    for name in ref.names:
        length = ref.lengths[name]
        positions = cpg_pos.get(name)
        ords = np.zeros(0 if positions is None else len(positions), dtype=np.int64)
        n_seen, k = 0, 0  # CpGs whose C is before the chunk start; next panel CpG to number
        for chunk_start in range(0, length, _CHUNK):
            seq = ref.fetch(name, chunk_start, min(chunk_start + _CHUNK + 1, length))  # +1: a CG across the cut
            if positions is not None:
                while k < len(positions) and positions[k] < chunk_start + _CHUNK:
                    # CGs whose C lies before this one, plus itself (1-based)
                    ords[k] = before + n_seen + seq.count("CG", 0, int(positions[k]) - chunk_start + 1) + 1
                    k += 1
            n_seen += seq.count("CG", 0, min(_CHUNK + 1, len(seq)))
        if name in wanted:
            out[name] = ords
            if n_seen:
                ranges[name] = (before + 1, before + n_seen)
        before += n_seen
    return out, ranges


def _range_array(chroms: list[str], ranges: dict[str, tuple[int, int]]) -> np.ndarray:
    """(n_chroms, 2) first and last CpG index per chromosome; (0, 0) where unknown."""
    return np.array([ranges.get(c, (0, 0)) for c in chroms], dtype=np.int64).reshape(len(chroms), 2)


def _count_cg(ref: Reference, chrom: str) -> int:
    length, n_cg = ref.lengths[chrom], 0
    for chunk_start in range(0, length, _CHUNK):
        seq = ref.fetch(chrom, chunk_start, min(chunk_start + _CHUNK + 1, length))  # +1: a CG across the cut
        n_cg += seq.count("CG", 0, min(_CHUNK + 1, len(seq)))
    return n_cg


def _whole_chromosomes(ref: Reference, ranges: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The index's ranges of the chromosomes it numbers completely (as many CpGs as the FASTA
    has CGs); a slice of an index says nothing about where a chromosome's numbering ends."""
    return {c: (lo, hi) for c, (lo, hi) in ranges.items() if hi - lo + 1 == _count_cg(ref, c)}


def _assemble(ref: Reference, chroms: list[str], wins: list[tuple[int, int, int]], cpg_index: str | Path | None,
              regions: list[Region] | None, saved: dict | None = None) -> Panel:
    """The panel of ``wins``; ``saved`` (a checkpoint's ``Panel.coordinates()``) supplies the CpG
    indices when no CpG index is given, and is checked against the one given."""
    n_win = len(wins)
    dna = np.zeros((n_win, N_TOKENS), dtype=np.uint8)
    offsets: list[np.ndarray] = []
    for w, (cid, start, _) in enumerate(wins):
        seq = ref.fetch(chroms[cid], start, start + WINDOW_BP)
        dna[w] = window_tokens(seq)
        offsets.append(cpg_offsets(seq))
    counts = np.array([len(o) for o in offsets], dtype=np.int64)
    cpg_ptr = np.zeros(n_win + 1, dtype=np.int64)
    np.cumsum(counts, out=cpg_ptr[1:])
    cpg_offset = np.concatenate(offsets).astype(np.uint8) if offsets else np.zeros(0, np.uint8)
    win_chrom = np.array([w[0] for w in wins], dtype=np.int32)
    win_start = np.array([w[1] for w in wins], dtype=np.int64)
    cpg_chrom = np.repeat(win_chrom, counts)
    cpg_pos = np.repeat(win_start, counts) + cpg_offset  # 0-based C position
    win_of = np.repeat(np.arange(n_win), counts)
    if saved is not None and COORDS.CPG_INDEX in saved:
        cpg_ord, cpg_range, warnings = _saved_ordinals(ref, chroms, wins, cpg_chrom, cpg_pos, win_of, cpg_index, saved)
    else:
        cpg_ord, cpg_range, warnings = _cpg_ordinals(ref, chroms, wins, cpg_chrom, cpg_pos, win_of, cpg_index)
    if regions is None:  # rebuilt from coordinates: one pseudo-region per window
        reg_chrom, reg_start = win_chrom.copy(), win_start.copy()
        reg_end, reg_name = win_start + WINDOW_BP, [f"{chroms[c]}:{s + 1}-{s + WINDOW_BP}" for c, s, _ in wins]
        win_region = np.arange(n_win, dtype=np.int32)
    else:
        cid = {c: i for i, c in enumerate(chroms)}
        ordered = sorted(regions, key=lambda r: (cid[r.chrom], r.start, r.end))
        reg_chrom = np.array([cid[r.chrom] for r in ordered], dtype=np.int32)
        reg_start = np.array([r.start for r in ordered], dtype=np.int64)
        reg_end = np.array([r.end for r in ordered], dtype=np.int64)
        reg_name = [r.name for r in ordered]
        win_region = np.array([w[2] for w in wins], dtype=np.int32)
    return Panel(chroms=chroms, chrom_lengths=np.array([ref.lengths[c] for c in chroms], dtype=np.int64),
                 win_chrom=win_chrom, win_start=win_start, win_region=win_region, dna=dna, cpg_ptr=cpg_ptr,
                 cpg_offset=cpg_offset, cpg_index=cpg_ord, reg_chrom=reg_chrom, reg_start=reg_start,
                 reg_end=reg_end, reg_name=reg_name, cpg_range=cpg_range, warnings=warnings)


def _cpg_ordinals(ref: Reference, chroms: list[str], wins: list[tuple[int, int, int]], cpg_chrom: np.ndarray,
                  cpg_pos: np.ndarray, win_of: np.ndarray,
                  cpg_index: str | Path | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(C,) CpG ordinals of the panel's CpGs, (n_chroms, 2) per-chromosome ordinal ranges (or
    None), and warnings. With a CpG index, every index entry inside a window must be a CG of
    the FASTA and vice versa, and a window's CpGs must be numbered consecutively."""
    out = np.zeros(len(cpg_pos), dtype=np.int64)
    if cpg_index is None:
        uniq = {c: np.unique(cpg_pos[cpg_chrom == cid]) for cid, c in enumerate(chroms)}
        ords, ranges = _ordinals_from_fasta(ref, chroms, uniq)
        for cid, c in enumerate(chroms):
            sel = cpg_chrom == cid
            out[sel] = ords[c][np.searchsorted(uniq[c], cpg_pos[sel])]
        return out, _range_array(chroms, ranges), []
    ranges: dict[str, list[tuple[int, int]]] = {c: [] for c in chroms}
    for cid, start, _ in wins:
        ranges[chroms[cid]].append((start, start + N_TOKENS))
    table = read_cpg_index(cpg_index, ranges, {c: ref.lengths[c] for c in chroms})
    for cid, c in enumerate(chroms):
        idx_pos, idx_ord = table.cpgs[c]
        sel = np.flatnonzero(cpg_chrom == cid)
        found = np.searchsorted(idx_pos, cpg_pos[sel])
        ok = (found < len(idx_pos)) & (idx_pos[np.minimum(found, len(idx_pos) - 1)] == cpg_pos[sel])
        if not np.all(ok):
            bad = int(cpg_pos[sel][~ok][0])
            raise InputFormatError(f"the FASTA has a CpG at {c}:{bad + 1} that the CpG index lacks", path=cpg_index,
                                   hint=f"the CpG index must come from the same genome build as --reference {ref.path.name}")
        out[sel] = idx_ord[found]
        # the reverse check: every index entry inside a window must be a CG in the FASTA
        win_starts = np.array([s for wc, s, _ in wins if wc == cid], dtype=np.int64)
        lo = np.searchsorted(idx_pos, win_starts)
        hi = np.searchsorted(idx_pos, win_starts + N_TOKENS)
        inside = np.unique(np.concatenate([idx_pos[a:b] for a, b in zip(lo, hi)] or [np.zeros(0, np.int64)]))
        extra = np.setdiff1d(inside, cpg_pos[sel])
        if extra.size:
            loc = int(extra[0]) + 1
            base = ref.fetch(c, loc - 1, loc + 1)
            raise InputFormatError(f"CpG index entry {c}:{loc} is {base!r} in the FASTA {ref.path.name}, not 'CG'",
                                   path=cpg_index, line=find_line(cpg_index, c, loc),
                                   hint="the CpG index does not match the FASTA: use the index made from this reference")
    _check_jumps(ref, table, cpg_index)
    _check_consecutive(out, cpg_chrom, cpg_pos, chroms, win_of, cpg_index)
    ranges = _whole_chromosomes(ref, table.ranges)
    return out, _range_array(chroms, ranges), _shift_warnings(ref, table, cpg_index)


def _saved_ordinals(ref: Reference, chroms: list[str], wins: list[tuple[int, int, int]], cpg_chrom: np.ndarray,
                    cpg_pos: np.ndarray, win_of: np.ndarray, cpg_index: str | Path | None,
                    saved: dict) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """The training panel's CpG indices (from the checkpoint), checked against ``cpg_index`` if given."""
    trained = np.asarray(saved[COORDS.CPG_INDEX], dtype=np.int64)
    if trained.shape != cpg_pos.shape:
        raise InputFormatError(f"the model's windows hold {trained.size} CpGs in the FASTA it was trained with, "
                               f"{cpg_pos.size} in this one", path=ref.path,
                               hint="use the reference genome the model was trained with")
    saved_range = saved.get(COORDS.CPG_RANGE)
    saved_range = None if saved_range is None else np.asarray(saved_range, dtype=np.int64)
    if cpg_index is None:
        return trained, saved_range, []
    ords, cpg_range, warnings = _cpg_ordinals(ref, chroms, wins, cpg_chrom, cpg_pos, win_of, cpg_index)
    differ = np.flatnonzero(ords != trained)
    if differ.size:
        k = int(differ[0])
        raise InputFormatError(f"numbers CpG {chroms[int(cpg_chrom[k])]}:{int(cpg_pos[k]) + 1} as {int(ords[k])}, but "
                               f"the CpG index the model was trained with numbered it {int(trained[k])}", path=cpg_index,
                               hint="give the CpG index the training store was prepared with (or none: the model's is used)")
    return ords, cpg_range, warnings


def _check_jumps(ref: Reference, table: CpGIndexSlice, cpg_index: str | Path) -> None:
    """Where the index's numbering jumps (a slice of an index, or a damaged one), the FASTA must
    hold exactly as many CGs between the two entries as the indices skip."""
    for chrom, pos0, ord0, pos1, ord1, line in table.jumps:
        between = ref.fetch(chrom, pos0 + 1, pos1).count("CG") if ord1 > ord0 else -1
        if between != ord1 - ord0 - 1:
            raise InputFormatError(f"CpG index entry {chrom}:{pos1 + 1} has index {ord1}, the entry before it "
                                   f"({chrom}:{pos0 + 1}) {ord0}, but {ref.path.name} has {max(between, 0)} CpG(s) "
                                   f"between them", path=cpg_index, line=line,
                                   hint="the CpG index is damaged, edited or of another build: use the one wgbs_tools "
                                        "made from this reference")


def _check_consecutive(ords: np.ndarray, cpg_chrom: np.ndarray, cpg_pos: np.ndarray, chroms: list[str],
                       win_of: np.ndarray, cpg_index: str | Path) -> None:
    """Neighbouring CGs of the FASTA inside one window must have neighbouring CpG indices.

    ``win_of`` (C,) is the window of each CpG (CpGs are listed window by window, ascending)."""
    same_window = np.zeros(len(ords), dtype=bool)
    same_window[1:] = win_of[1:] == win_of[:-1]
    bad = np.flatnonzero(same_window[1:] & (ords[1:] - ords[:-1] != 1))
    if bad.size:
        k = int(bad[0]) + 1
        c, loc = chroms[int(cpg_chrom[k])], int(cpg_pos[k]) + 1
        raise InputFormatError(f"CpG index numbers {c}:{loc} as {int(ords[k])}, but the CpG before it in the FASTA "
                               f"({c}:{int(cpg_pos[k - 1]) + 1}) as {int(ords[k - 1])}: neighbouring CpGs must differ by one",
                               path=cpg_index, line=find_line(cpg_index, c, loc),
                               hint="the CpG index is damaged or edited: use the one wgbs_tools made from this reference")


def _shift_warnings(ref: Reference, table: CpGIndexSlice, cpg_index: str | Path) -> list[str]:
    """A whole-genome index numbers the first CpG of its first contig 1: say so when it does not."""
    if table.first is None or table.first[0] not in ref.lengths:
        return []
    chrom, loc, idx = table.first
    n_before = ref.fetch(chrom, 0, loc - 1).count("CG")  # CGs whose C lies before the first entry
    if idx == n_before + 1:
        return []
    message = (f"CpG index {Path(cpg_index).name}: its first entry {chrom}:{loc} has index {idx}, but it is CpG "
               f"number {n_before + 1} of {chrom} in {ref.path.name}; unless the index is a slice of a larger one, "
               f"its indices are shifted and .pat files will be read at the wrong CpGs")
    log.warning("%s", message)
    return [message]


def build_panel(reference: str | Path, regions: str | Path, cpg_index: str | Path | None = None) -> Panel:
    """Windows from the BED, DNA tokens from the FASTA, CpGs from the sequence, numbered by the
    wgbs_tools CpG index (cross-checked against the FASTA) or, without one, counted from the FASTA."""
    ref = Reference(reference)
    try:
        regs = read_regions(regions, ref)
        chroms, wins = _windows(regs, ref, Path(regions))
        panel = _assemble(ref, chroms, wins, cpg_index, regs)
    finally:
        ref.close()
    log.info("panel: %d regions -> %d windows, %d CpGs (hash %s)", len(regs), panel.n_windows,
             int(panel.cpg_ptr[-1]), panel.panel_hash())
    return panel


def panel_from_coordinates(reference: str | Path, coords: dict, cpg_index: str | Path | None = None) -> Panel:
    """Rebuild the panel whose ``Panel.coordinates()`` a checkpoint saved (same hash if same FASTA)."""
    ref = Reference(reference)
    try:
        chroms = list(coords[COORDS.CHROMS])
        for c in chroms:
            ref.require_chrom(c, path=reference, what="chromosome of the checkpoint's panel")
        wins = [(int(c), int(s), w)
                for w, (c, s) in enumerate(zip(np.asarray(coords[COORDS.CHROM_ID]), np.asarray(coords[COORDS.START])))]
        for cid, start, _ in wins:
            if start < 0 or start + WINDOW_BP > ref.lengths[chroms[cid]]:
                raise InputFormatError(f"window {chroms[cid]}:{start + 1} lies outside the chromosome", path=reference,
                                       hint="use the reference the model was trained with")
        return _assemble(ref, chroms, wins, cpg_index, None, coords)
    finally:
        ref.close()

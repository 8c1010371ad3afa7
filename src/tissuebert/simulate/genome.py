"""The simulated genome: synthetic chromosomes with CpG-rich regions, or regions placed on a
real reference sequence. Returns sequences, region coordinates and every CpG of the genome."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam

from tissuebert.constants import N_TOKENS, WINDOW_BP
from tissuebert.errors import InputFormatError, require_file
from tissuebert.progress import get_logger
from tissuebert.simulate.params import SimConfig

log = get_logger("simulate")
_ACGT = np.frombuffer(b"ACGT", dtype=np.uint8)
_C, _G, _T = ord("C"), ord("G"), ord("T")
REGIONS_PER_CHROM = 1500  # synthetic chromosomes hold ~1,500 regions (a few Mb each)


@dataclass
class Genome:
    """Chromosome sequences (uint8 ASCII, upper case) and the panel regions placed on them."""

    chroms: list[str]
    seqs: list[np.ndarray]
    reg_chrom: np.ndarray  # (R,) int32
    reg_start: np.ndarray  # (R,) int64
    reg_end: np.ndarray  # (R,) int64

    @property
    def chrom_lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.seqs], dtype=np.int64)

    def cpgs(self) -> tuple[np.ndarray, np.ndarray]:
        """(cpg_chrom, cpg_pos) of every CG in the genome, in FASTA order (= CpG index order)."""
        chrom_ids, positions = [], []
        for chrom_id, seq in enumerate(self.seqs):
            pos = np.flatnonzero((seq[:-1] == _C) & (seq[1:] == _G))
            positions.append(pos.astype(np.int64))
            chrom_ids.append(np.full(pos.shape[0], chrom_id, dtype=np.int32))
        return np.concatenate(chrom_ids), np.concatenate(positions)

    def blocks(self, block_bp: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(blk_region, blk_start, blk_end): each region cut into ``block_bp`` pieces (the last
        may be shorter), or one block per region when ``block_bp`` is None."""
        lengths = self.reg_end - self.reg_start
        per = np.ones_like(lengths) if block_bp is None else -(-lengths // block_bp)
        blk_region = np.repeat(np.arange(lengths.size), per).astype(np.int32)
        first = np.concatenate([[0], np.cumsum(per)[:-1]])
        k = np.arange(blk_region.size) - np.repeat(first, per)
        size = lengths[blk_region] if block_bp is None else np.full(blk_region.size, block_bp)
        blk_start = self.reg_start[blk_region] + k * size
        blk_end = np.minimum(blk_start + size, self.reg_end[blk_region])
        return blk_region, blk_start, blk_end

    def region_of_cpgs(self, cpg_chrom: np.ndarray, cpg_pos: np.ndarray) -> np.ndarray:
        """(C,) region id of each CpG whose C lies in a region, -1 elsewhere."""
        out = np.full(cpg_pos.shape[0], -1, dtype=np.int32)
        for chrom_id in range(len(self.chroms)):
            sel = np.flatnonzero(cpg_chrom == chrom_id)
            regs = np.flatnonzero(self.reg_chrom == chrom_id)
            if sel.size == 0 or regs.size == 0:
                continue
            # regions of a chromosome are sorted and disjoint: find the last start <= pos
            k = np.searchsorted(self.reg_start[regs], cpg_pos[sel], side="right") - 1
            ok = k >= 0
            inside = np.zeros(sel.size, dtype=bool)
            inside[ok] = cpg_pos[sel][ok] < self.reg_end[regs][k[ok]]
            out[sel[inside]] = regs[k[inside]]
        return out


def _random_bases(rng: np.random.Generator, n: int, gc: float) -> np.ndarray:
    probs = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    return _ACGT[rng.choice(4, size=n, p=probs)]


def _deplete_cpgs(rng: np.random.Generator, seq: np.ndarray, keep: float) -> None:
    """Turn CG into TG or CA with probability 1 - keep, as methyl-C deamination does in real genomes.

    Changing the C to T or the G to A can never create a new CG, so one pass suffices.
    """
    pos = np.flatnonzero((seq[:-1] == _C) & (seq[1:] == _G))
    drop = pos[rng.random(pos.size) >= keep]
    to_t = rng.random(drop.size) < 0.5
    seq[drop[to_t]] = _T
    seq[drop[~to_t] + 1] = ord("A")


def _insert_region_cpgs(rng: np.random.Generator, seq: np.ndarray, start: int, n_windows: int,
                        lo: int, hi: int, total: int = 0) -> None:
    """Clear every CG in the region (and at its edges), then put lo..hi CpGs in each window
    (or ``total`` CpGs spread evenly over the windows when it is > 0).

    Positions are drawn so CpGs never touch (C at offsets 0..147 with gaps >= 2, so the G is
    inside the window too); inserting a CG into CG-free sequence creates no other CG.
    """
    end = start + n_windows * WINDOW_BP
    lo_clear = max(start - 1, 0)
    seg = seq[lo_clear:end + 1]
    pos = np.flatnonzero((seg[:-1] == _C) & (seg[1:] == _G))
    seg[pos] = _T
    for w in range(n_windows):
        n_cpg = int(rng.integers(lo, hi + 1)) if total <= 0 else total // n_windows + (w < total % n_windows)
        offs = np.sort(rng.choice(N_TOKENS - n_cpg + 1, size=n_cpg, replace=False)) + np.arange(n_cpg)
        at = start + w * WINDOW_BP + offs
        seq[at] = _C
        seq[at + 1] = _G


def synthetic_genome(cfg: SimConfig, rng: np.random.Generator, n_cpgs: np.ndarray | None = None) -> Genome:
    """Synthetic chromosomes; ``n_cpgs`` (R,) optionally fixes the CpG count of each region
    (0 = draw it), e.g. from an atlas table, with windows enough to hold them at island density."""
    n_regions = cfg.regions
    n_chroms = int(min(22, max(1, round(n_regions / REGIONS_PER_CHROM))))
    n_windows = rng.choice(np.arange(1, 5), size=n_regions, p=np.asarray(cfg.windows_per_region) / sum(cfg.windows_per_region))
    fixed = np.zeros(n_regions, dtype=np.int64) if n_cpgs is None else np.asarray(n_cpgs, dtype=np.int64)
    hi = cfg.cpgs_per_window[1]
    n_windows = np.where(fixed > 0, np.maximum(1, -(-fixed // hi)), n_windows)
    gaps = rng.integers(cfg.gap_bp[0], cfg.gap_bp[1] + 1, size=n_regions + n_chroms)
    chrom_of_region = np.sort(rng.integers(0, n_chroms, size=n_regions)) if n_chroms > 1 else np.zeros(n_regions, dtype=np.int64)
    # background keeps the fraction of CGs that gives the requested density (random GC-41% sequence
    # has ~0.205^2 = 42 CG per kb)
    keep = min(1.0, cfg.background_cpg_per_kb / 1000 / (0.205 ** 2))
    chroms, seqs, starts, ends = [], [], np.zeros(n_regions, np.int64), np.zeros(n_regions, np.int64)
    gap_i = 0
    for chrom_id in range(n_chroms):
        regs = np.flatnonzero(chrom_of_region == chrom_id)
        lengths = n_windows[regs] * WINDOW_BP
        cursor = int(gaps[gap_i])
        gap_i += 1
        for r, length in zip(regs, lengths):
            starts[r] = cursor
            ends[r] = cursor + length
            cursor += int(length) + int(gaps[gap_i])
            gap_i += 1
        seq = _random_bases(rng, cursor, 0.41)
        _deplete_cpgs(rng, seq, keep)
        for r in regs:
            seq[starts[r]:ends[r]] = _random_bases(rng, int(ends[r] - starts[r]), 0.62)
            _insert_region_cpgs(rng, seq, int(starts[r]), int(n_windows[r]), *cfg.cpgs_per_window, total=int(fixed[r]))
        chroms.append(f"chr{chrom_id + 1}")
        seqs.append(seq)
    return Genome(chroms=chroms, seqs=seqs, reg_chrom=chrom_of_region.astype(np.int32), reg_start=starts, reg_end=ends)


def reference_genome(cfg: SimConfig, rng: np.random.Generator, fasta: str | Path) -> Genome:
    """Place regions on a real sequence: windows with at least ``cpgs_per_window[0]`` CpGs,
    at least ``gap_bp[0]`` apart and ``frag_max`` from contig ends; extend a region by further
    windows while they are CpG-rich too, up to the drawn number of windows."""
    path = require_file(fasta, "reference FASTA")
    chroms, seqs = [], []
    try:
        with pysam.FastxFile(str(path)) as fh:
            for rec in fh:
                chroms.append(rec.name)
                seqs.append(np.frombuffer(rec.sequence.upper().encode(), dtype=np.uint8).copy())
    except (OSError, ValueError) as exc:
        raise InputFormatError(f"cannot read FASTA: {exc}", path=path) from None
    if not chroms:
        raise InputFormatError("no sequences in FASTA", path=path)
    step, lo = 10, cfg.cpgs_per_window[0]
    candidates = []
    for chrom_id, seq in enumerate(seqs):
        is_cg = np.zeros(seq.size, dtype=np.int64)
        is_cg[:-1] = (seq[:-1] == _C) & (seq[1:] == _G)
        csum = np.concatenate([[0], np.cumsum(is_cg)])
        starts = np.arange(cfg.frag_max, seq.size - cfg.frag_max - WINDOW_BP, step)
        counts = csum[starts + N_TOKENS] - csum[starts]
        good = starts[counts >= lo]
        candidates += [(chrom_id, int(s)) for s in good]
    order = rng.permutation(len(candidates))
    want = rng.choice(np.arange(1, 5), size=len(candidates), p=np.asarray(cfg.windows_per_region) / sum(cfg.windows_per_region))
    placed: dict[int, list[tuple[int, int]]] = {}
    for k in order:
        chrom_id, start = candidates[k]
        seq = seqs[chrom_id]
        end = start + WINDOW_BP
        for _ in range(int(want[k]) - 1):  # grow while the next window is CpG-rich and fits
            nxt = seq[end:end + N_TOKENS + 1]
            if end + WINDOW_BP > seq.size - cfg.frag_max or int(np.sum((nxt[:-1] == _C) & (nxt[1:] == _G))) < lo:
                break
            end += WINDOW_BP
        if any(start < e + cfg.gap_bp[0] and s < end + cfg.gap_bp[0] for s, e in placed.get(chrom_id, [])):
            continue
        placed.setdefault(chrom_id, []).append((start, end))
        if sum(len(v) for v in placed.values()) >= cfg.regions:
            break
    regions = sorted((c, s, e) for c, lst in placed.items() for s, e in lst)
    if len(regions) < cfg.regions:
        log.warning("the reference holds room for %d CpG-rich regions (asked for %d)", len(regions), cfg.regions)
    if not regions:
        raise InputFormatError("no CpG-rich window found to place a region on", path=path,
                               hint="use a longer reference or lower cpgs_per_window")
    arr = np.array(regions, dtype=np.int64)
    return Genome(chroms=chroms, seqs=seqs, reg_chrom=arr[:, 0].astype(np.int32), reg_start=arr[:, 1], reg_end=arr[:, 2])

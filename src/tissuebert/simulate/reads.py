"""Draw cfDNA-like fragments and their CpG calls, one chunk of regions at a time.

A fragment overlapping region r comes from one source (the sample's own tissue, a contaminating
blood cell type, or a mixture component), with latent structure also from one latent class of
that source (a cell subtype and an allele), takes one state U/X/M in each methylation block of
the region it covers (independently given the source and class), and calls each CpG
independently given its block's state, through bisulfite non-conversion and sequencing error.
Chunks are generated in genome order, so a caller can stream them to disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tissuebert.simulate.truth import Truth

# fragment length mixture: (weight, mean offset from the mode, sd); the mono-nucleosome peak,
# a shoulder of shorter (nicked) fragments, and a di-nucleosome bump
_FRAG_MIX = ((0.80, 0, 10.0), (0.15, -24, 15.0), (0.05, None, 30.0))
FRAG_MIN = 50
CHUNK_FRAGMENTS = 200_000  # expected fragments per chunk: bounds memory whatever the depth
CALL_M, CALL_U, CALL_NONE = ord("C"), ord("T"), ord(".")


@dataclass
class FragmentChunk:
    """Fragments of consecutive regions, sorted by (first called CpG index, pattern).

    ``calls[ptr[f]:ptr[f+1]]`` (ASCII C/T/.) are fragment f's calls at every CpG it covers,
    from 0-based CpG array index ``cov_first[f]`` on (CpG index = array index + 1);
    ``pats[f]`` is the same with no-call ends trimmed, starting at CpG array index ``first[f]``,
    which is what a .pat line holds.
    """

    chrom: np.ndarray  # (F,) int32
    start: np.ndarray  # (F,) int64, 0-based first base on the chromosome
    length: np.ndarray  # (F,) int64
    reverse: np.ndarray  # (F,) bool: original bottom strand
    source: np.ndarray  # (F,) int32 index into the sources the chunk was drawn from
    state: np.ndarray  # (F,) int8 0 U, 1 X, 2 M: state of the fragment's first covered block
    cov_first: np.ndarray  # (F,) int64
    ptr: np.ndarray  # (F + 1,) int64
    calls: np.ndarray  # (sum,) uint8
    first: np.ndarray  # (F,) int64
    pats: list[str]
    latent: np.ndarray | None = None  # (F,) int32 latent class (subtype * A + allele); None without structure

    @property
    def n(self) -> int:
        return int(self.start.shape[0])

    def patterns(self) -> list[str]:
        return self.pats


def fragment_lengths(rng: np.random.Generator, n: int, mode: int, frag_max: int) -> np.ndarray:
    comp = rng.choice(3, size=n, p=[w for w, _, _ in _FRAG_MIX])
    means = np.array([mode + 0.0, mode - 24.0, 2.0 * mode])
    sds = np.array([sd for _, _, sd in _FRAG_MIX])
    lengths = np.rint(rng.normal(means[comp], sds[comp])).astype(np.int64)
    return np.clip(lengths, FRAG_MIN, frag_max)


def mean_fragment_length(mode: int) -> float:
    return 0.80 * mode + 0.15 * (mode - 24) + 0.05 * 2 * mode


class ReadSimulator:
    """Fragments for one sample or mixture: ``sources`` (S, B, 3) block state probabilities and
    ``weights`` (S,) the share of fragments each source contributes.

    With latent structure, ``sources`` is (S, B, L, 3) and ``latent_weights`` (S, L): a fragment
    draws its source, then a latent class of that source, and its blocks' states from that
    class's row. Without ``latent_weights`` no extra random number is drawn, so unstructured
    cohorts are the same as before the structure existed.
    """

    def __init__(self, truth: Truth, *, sources: np.ndarray, weights: np.ndarray, depth: float,
                 frag_mode: int, frag_max: int, rng: np.random.Generator,
                 only_regions: np.ndarray | None = None, latent_weights: np.ndarray | None = None) -> None:
        self.truth = truth
        self.sources = np.asarray(sources, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        if latent_weights is not None:
            latent_weights = np.asarray(latent_weights, dtype=np.float64)
            if self.sources.ndim != 4 or latent_weights.shape != (self.sources.shape[0], self.sources.shape[2]):
                raise ValueError(f"latent sources must be (S, B, L, 3) with latent_weights (S, L); got "
                                 f"{self.sources.shape} and {latent_weights.shape}")
            latent_weights = latent_weights / latent_weights.sum(axis=1, keepdims=True)
        elif self.sources.ndim != 3:
            raise ValueError(f"sources must be (S, B, 3) without latent_weights, got {self.sources.shape}")
        self.latent_weights = latent_weights
        self.depth = float(depth)
        self.frag_mode, self.frag_max = frag_mode, frag_max
        self.rng = rng
        offsets = truth.chrom_offsets()
        self.cpg_gpos = truth.cpg_gpos()
        self.reg_gstart = offsets[truth.reg_chrom] + truth.reg_start
        self.reg_gend = offsets[truth.reg_chrom] + truth.reg_end
        self.p_obs_m = truth.observed_meth_prob()
        self.p_nocall = 2.0 * truth.seq_error / 3.0
        # draw fragments for these regions only (tests and spot checks); None = the whole panel
        self.only_regions = None if only_regions is None else np.asarray(only_regions, dtype=np.int64)

    def chunks(self) -> Iterator[FragmentChunk]:
        n_regions = self.reg_gstart.shape[0]
        mean_len = mean_fragment_length(self.frag_mode)
        # a fragment overlaps a region when its start is in [start - L + 1, end - 1]: with
        # depth * (len + L - 1) / L fragments the region's bases get `depth` on average
        expected = self.depth * (self.reg_gend - self.reg_gstart + mean_len - 1) / mean_len
        n_frags = self.rng.poisson(expected)
        if self.only_regions is not None:
            mask = np.zeros(n_regions, dtype=bool)
            mask[self.only_regions] = True
            n_frags[~mask] = 0
            expected = np.where(mask, expected, 0.0)
        bounds = np.searchsorted(np.cumsum(expected),
                                 np.arange(CHUNK_FRAGMENTS, expected.sum() + CHUNK_FRAGMENTS, CHUNK_FRAGMENTS))
        lo = 0
        for hi in list(np.unique(np.minimum(bounds + 1, n_regions))) + [n_regions]:
            if hi > lo:
                chunk = self._chunk(np.arange(lo, hi), n_frags[lo:hi])
                if chunk.n:
                    yield chunk
                lo = hi

    def _chunk(self, regions: np.ndarray, n_frags: np.ndarray) -> FragmentChunk:
        rng, truth = self.rng, self.truth
        region = np.repeat(regions, n_frags)
        n = region.size
        length = fragment_lengths(rng, n, self.frag_mode, self.frag_max)
        gstart = self.reg_gstart[region] - length + 1 + np.floor(
            rng.random(n) * (self.reg_gend[region] - self.reg_gstart[region] + length - 1)).astype(np.int64)
        reverse = rng.random(n) < 0.5
        source = rng.choice(self.weights.size, size=n, p=self.weights).astype(np.int32)
        latent = None
        if self.latent_weights is not None:  # one cell and one allele per fragment
            cum = np.cumsum(self.latent_weights, axis=1)[source]  # (F, L)
            latent = np.minimum((rng.random(n)[:, None] >= cum).sum(axis=1), cum.shape[1] - 1).astype(np.int32)
        # the original-top strand calls a CpG at its C, the original-bottom strand at its G (C+1)
        shift = reverse.astype(np.int64)
        first = np.searchsorted(self.cpg_gpos, gstart - shift, side="left")
        stop = np.searchsorted(self.cpg_gpos, gstart + length - shift, side="left")
        n_cov = stop - first
        ptr = np.concatenate([[0], np.cumsum(n_cov)])
        idx = np.repeat(first - ptr[:-1], n_cov) + np.arange(ptr[-1])
        frag_of = np.repeat(np.arange(n), n_cov)
        reg_of_cpg = truth.cpg_region[idx]
        if np.any((reg_of_cpg >= 0) & (reg_of_cpg != region[frag_of])):
            raise AssertionError("a fragment reached a second region; regions must be >= 2 * frag_max apart")
        # one state per (fragment, block): calls are ordered by fragment then CpG, so a new
        # group starts wherever the fragment or the block changes
        block = truth.cpg_block[idx]
        new_group = np.ones(idx.size, dtype=bool)
        new_group[1:] = (frag_of[1:] != frag_of[:-1]) | (block[1:] != block[:-1])
        group = np.cumsum(new_group) - 1
        heads = np.flatnonzero(new_group)
        g_block = block[heads]
        if latent is None:
            probs = self.sources[source[frag_of[heads]], np.maximum(g_block, 0)]  # (G, 3)
        else:
            head_frag = frag_of[heads]
            probs = self.sources[source[head_frag], np.maximum(g_block, 0), latent[head_frag]]  # (G, 3)
        g_state = (rng.random(heads.size)[:, None] > np.cumsum(probs, axis=1)[:, :2]).sum(axis=1)
        # background CpGs have equal q in every state column, so their "state" does not matter
        state_of_call = g_state[group]
        state = np.zeros(n, dtype=np.int8)  # state of each fragment's first block, for inspection
        state[frag_of[heads][::-1]] = g_state[::-1]
        p_m = self.p_obs_m[idx, state_of_call]
        u = rng.random(idx.size)
        called = rng.random(idx.size) >= self.p_nocall
        calls = np.where(~called, CALL_NONE, np.where(u < p_m, CALL_M, CALL_U)).astype(np.uint8)
        return _trim_and_sort(truth, gstart, length, reverse, source, state, first, ptr, calls, frag_of, latent)


def _trim_and_sort(truth: Truth, gstart, length, reverse, source, state, first, ptr, calls, frag_of,
                   latent=None) -> FragmentChunk:
    """Drop fragments without a call, trim no-call ends off the pattern (a .pat pattern starts
    and ends with a call) and order fragments as wgbs_tools sorts a .pat: by first CpG index,
    then pattern."""
    n = gstart.size
    is_call = calls != CALL_NONE
    pos = np.arange(calls.size)
    first_call = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_call, frag_of[is_call], pos[is_call])
    last_call = np.full(n, -1)
    np.maximum.at(last_call, frag_of[is_call], pos[is_call])
    kept = np.flatnonzero(last_call >= 0)
    raw = calls.tobytes().decode("ascii")
    pats = [raw[a:b + 1] for a, b in zip(first_call[kept].tolist(), last_call[kept].tolist())]
    firsts = first[kept] + (first_call[kept] - ptr[:-1][kept])
    # numpy orders unicode strings by code point, as the C-locale `sort` wgbs_tools relies on
    order = kept[np.lexsort((np.array(pats, dtype=str), firsts))] if pats else kept
    rank = np.empty(n, dtype=np.int64)
    rank[kept] = np.arange(kept.size)
    n_cov = np.diff(ptr)[order]
    new_ptr = np.concatenate([[0], np.cumsum(n_cov)])
    gather = np.repeat(ptr[:-1][order] - new_ptr[:-1], n_cov) + np.arange(new_ptr[-1])
    offsets = truth.chrom_offsets()
    gsel = gstart[order]
    chrom = (np.searchsorted(offsets, gsel, side="right") - 1).astype(np.int32)
    return FragmentChunk(chrom=chrom, start=gsel - offsets[chrom], length=length[order], reverse=reverse[order],
                         source=source[order], state=state[order], cov_first=first[order], ptr=new_ptr,
                         calls=calls[gather], first=first[order] + (first_call[order] - ptr[:-1][order]),
                         pats=[pats[k] for k in rank[order].tolist()],
                         latent=None if latent is None else latent[order])

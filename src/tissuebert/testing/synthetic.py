"""Small marker stores written straight through ``store.builder`` (tests and benchmarks).

Unlike ``tissuebert simulate`` (realistic cohorts in the real input formats), this writes a
store directly from a methylation matrix ``beta[tissue, window]``: every window is a marker of
one tissue, hypomethylated (``marker_beta``) there and methylated (``background_beta``)
elsewhere, the way tissue marker blocks look in WGBS atlases. With marker_beta 0 and
background_beta 1 a read's tissue follows exactly from its window and calls, so a model must
reach ~100% accuracy on it; softer values make a harder problem with a known Bayes rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.constants import WINDOW_BP
from tissuebert.prepare.encode import cpg_offsets, window_tokens
from tissuebert.store.builder import add_sample, assemble_manifest, ensure_panel
from tissuebert.store.manifest import SampleRecord
from tissuebert.store.panel import Panel
from tissuebert.store.sample import pack_calls
from tissuebert.store.store import Store

DEFAULT_SPLITS = {"train": 2, "val": 1, "test": 1}


def random_panel(n_windows: int, rng: np.random.Generator, *, gap: int = 50) -> Panel:
    """A random ACGT chromosome cut into ``n_windows`` 150 bp windows, one region each."""
    starts = np.arange(n_windows, dtype=np.int64) * (WINDOW_BP + gap) + gap
    length = int(starts[-1] + WINDOW_BP + gap)
    seq = "".join(rng.choice(list("ACGT"), size=length))
    dna, offsets = [], []
    for start in starts:
        window = seq[start:start + WINDOW_BP]
        dna.append(window_tokens(window))
        offsets.append(cpg_offsets(window))
    counts = np.array([o.size for o in offsets], dtype=np.int64)
    cpg_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Panel(chroms=["chr1"], chrom_lengths=np.array([length], np.int64),
                 win_chrom=np.zeros(n_windows, np.int32), win_start=starts, win_region=np.arange(n_windows, dtype=np.int32),
                 dna=np.stack(dna).astype(np.uint8), cpg_ptr=cpg_ptr,
                 cpg_offset=np.concatenate(offsets).astype(np.uint8), cpg_index=np.arange(1, cpg_ptr[-1] + 1, dtype=np.int64),
                 reg_chrom=np.zeros(n_windows, np.int32), reg_start=starts, reg_end=starts + WINDOW_BP,
                 reg_name=[f"marker_{w}" for w in range(n_windows)])


def marker_beta_matrix(n_tissues: int, n_windows: int, *, marker_beta: float, background_beta: float) -> np.ndarray:
    """(T, W) methylation level: window w is a marker of tissue w % T."""
    beta = np.full((n_tissues, n_windows), background_beta, dtype=np.float64)
    beta[np.arange(n_windows) % n_tissues, np.arange(n_windows)] = marker_beta
    return beta


def simulate_reads(panel: Panel, beta_of_tissue: np.ndarray, n_reads: int, rng: np.random.Generator,
                   *, partial: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(R,) window index and (R, max_cpgs) calls 0/1/2 of reads drawn from one tissue's betas.

    With ``partial`` a read covers a random contiguous run of its window's CpGs (at least one),
    the rest are 'no call', as for fragments that overlap a window only in part.
    """
    n_cpgs = panel.n_cpgs
    covered = np.flatnonzero(n_cpgs > 0)
    window_idx = rng.choice(covered, size=n_reads)
    width = max(panel.max_cpgs, 1)
    k = n_cpgs[window_idx]  # (R,)
    col = np.arange(width)[None, :]  # (1, K)
    methylated = rng.random((n_reads, width)) < beta_of_tissue[window_idx][:, None]  # (R, K)
    calls = np.where(methylated, 1, 0).astype(np.uint8)
    first = rng.integers(0, k) if partial else np.zeros(n_reads, np.int64)
    last = first + 1 + rng.integers(0, k - first) if partial else k
    inside = (col >= first[:, None]) & (col < (last if partial else k)[:, None])
    calls[~inside] = 2
    return window_idx.astype(np.uint32), calls


def build_marker_store(root: str | Path, *, tissues: tuple[str, ...] = ("blood", "liver"), n_windows: int = 20,
                       reads_per_sample: int = 1000, splits: dict[str, int | tuple[int, ...]] | None = None,
                       marker_beta: float = 0.0, background_beta: float = 1.0, beta: np.ndarray | None = None, seed: int = 0,
                       partial: bool = True) -> Store:
    """Write a complete, valid store of ``splits[split]`` samples per tissue per split; returns it opened.

    A split's count is per tissue, or a tuple with one count per tissue (unbalanced cohorts).
    ``beta`` (T, W) replaces the marker layout of :func:`marker_beta_matrix` when given.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    panel = random_panel(n_windows, rng)
    ensure_panel(root, panel)
    if beta is None:
        beta = marker_beta_matrix(len(tissues), n_windows, marker_beta=marker_beta, background_beta=background_beta)
    beta = np.asarray(beta, dtype=np.float64)
    if beta.shape != (len(tissues), n_windows):
        raise ValueError(f"beta must be (tissues, windows) = ({len(tissues)}, {n_windows}), got {beta.shape}")
    sample_ids = []
    for split, per_tissue in (splits or DEFAULT_SPLITS).items():
        for tissue_id, tissue in enumerate(tissues):
            count = per_tissue[tissue_id] if isinstance(per_tissue, (tuple, list)) else per_tissue
            for rep in range(count):
                sid = f"{tissue}_{split}_{rep}"
                window_idx, calls = simulate_reads(panel, beta[tissue_id], reads_per_sample, rng, partial=partial)
                record = SampleRecord(sample_id=sid, tissue=tissue, tissue_id=tissue_id, split=split, file="",
                                      n_reads=0, n_windows_covered=0, sha256="", source="synthetic")
                add_sample(root, panel=panel, record=record, window_idx=window_idx,
                           calls=pack_calls(calls, panel.call_bytes))
                sample_ids.append(sid)
    assemble_manifest(root, tissues=list(tissues), sample_ids=sample_ids, min_cpgs=1,
                      provenance={"generator": "tissuebert.testing.synthetic.build_marker_store", "seed": seed})
    return Store.open(root)

"""A tiny store with a known generative model, and a briefly trained tiny checkpoint, for the
evaluate / deconvolve / benchmark tests.

Layout (3 tissues, 12 windows of 6 CpGs at offsets 5, 25, ..., 105)::

    window w marks tissue w % 3: its reads are mostly unmethylated (p_M = 0.1) in that tissue
    and mostly methylated (p_M = 0.9) in the other two.

A read takes one fragment state (M with probability p_M[tissue, window], else U); each CpG then
shows the state's call with probability 0.9, and is uncalled (code 2) with probability 0.1. Because
the model is known, tests can compute every read's exact likelihood p(read | tissue).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tissuebert.config import config_to_dict, load_config
from tissuebert.constants import CKPT, METH_M, METH_NONE, METH_U
from tissuebert.data.tokens import TokenTables
from tissuebert.inference.checkpoint import save_checkpoint
from tissuebert.model.tissuebert import build_model
from tissuebert.prepare.encode import cpg_offsets, window_tokens
from tissuebert.store.builder import add_sample, assemble_manifest, ensure_panel
from tissuebert.store.manifest import SampleRecord
from tissuebert.store.panel import Panel
from tissuebert.store.sample import pack_calls
from tissuebert.store.store import Store

TISSUES = ["Blood", "Liver", "Lung"]
N_WINDOWS = 12
OFFSETS = (5, 25, 45, 65, 85, 105)
P_AGREE = 0.9  # a CpG shows its fragment's state
P_MISSING = 0.1  # a CpG is not called


def make_panel(seed: int = 0) -> Panel:
    rng = np.random.default_rng(seed)
    dna, cpg_off = [], []
    for w in range(N_WINDOWS):
        # windows marking the same tissue share a base composition, so a tiny model trained for a
        # few seconds can tell which tissue a window marks from its mean-pooled DNA tokens
        share_a = (0.9, 0.1, 0.5)[w % len(TISSUES)]
        seq = rng.choice(list("AT"), size=150, p=[share_a, 1 - share_a])  # no accidental CpGs ...
        for off in OFFSETS:  # ... except the planted ones
            seq[off], seq[off + 1] = "C", "G"
        text = "".join(seq)
        dna.append(window_tokens(text))
        cpg_off.append(cpg_offsets(text))
    counts = np.array([len(o) for o in cpg_off])
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    starts = np.arange(N_WINDOWS, dtype=np.int64) * 1000
    return Panel(chroms=["chr1"], chrom_lengths=np.array([N_WINDOWS * 1000 + 500]),
                 win_chrom=np.zeros(N_WINDOWS, np.int32), win_start=starts,
                 win_region=np.arange(N_WINDOWS, dtype=np.int32), dna=np.stack(dna), cpg_ptr=ptr,
                 cpg_offset=np.concatenate(cpg_off).astype(np.uint8),
                 cpg_index=np.arange(1, ptr[-1] + 1, dtype=np.int64),
                 reg_chrom=np.zeros(N_WINDOWS, np.int32), reg_start=starts, reg_end=starts + 150,
                 reg_name=[f"marker{w}" for w in range(N_WINDOWS)])


def p_methylated() -> np.ndarray:
    """(T, W) probability that a fragment of tissue t in window w is in the M state."""
    p = np.full((len(TISSUES), N_WINDOWS), 0.9)
    for w in range(N_WINDOWS):
        p[w % len(TISSUES), w] = 0.1
    return p


def draw_reads(rng: np.random.Generator, tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reads of the given tissues (one per entry): (R,) window index, (R, 6) call codes."""
    n_reads = tissue.shape[0]
    window = rng.integers(0, N_WINDOWS, size=n_reads)
    state_m = rng.random(n_reads) < p_methylated()[tissue, window]
    agree = rng.random((n_reads, len(OFFSETS))) < P_AGREE
    meth = np.where(agree, state_m[:, None], ~state_m[:, None])
    calls = np.where(meth, METH_M, METH_U).astype(np.uint8)
    calls[rng.random(calls.shape) < P_MISSING] = METH_NONE
    return window, calls


def oracle_loglik(window: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """(R,) windows + (R, 6) codes -> (R, T) exact log p(calls | tissue) (missingness cancels)."""
    n_m = (calls == METH_M).sum(axis=1)
    n_u = (calls == METH_U).sum(axis=1)
    lik_m = P_AGREE ** n_m * (1 - P_AGREE) ** n_u  # (R,) given state M
    lik_u = P_AGREE ** n_u * (1 - P_AGREE) ** n_m
    p = p_methylated()[:, window].T  # (R, T)
    return np.log(p * lik_m[:, None] + (1 - p) * lik_u[:, None])


@dataclass
class TinyCohort:
    root: Path
    store: Store
    checkpoint: Path  # briefly trained tiny model (per-read accuracy well above chance)
    random_checkpoint: Path  # untrained model, same config


def build_store(root: Path, seed: int = 0, reads_per_sample: int = 600) -> Store:
    panel = make_panel(seed)
    ensure_panel(root, panel)
    rng = np.random.default_rng(seed + 1)
    ids = []
    for tissue_id, tissue in enumerate(TISSUES):
        for split, n_samples in (("train", 2), ("val", 1), ("test", 1)):
            for k in range(n_samples):
                sid = f"{tissue}_{split}{k}"
                window, calls = draw_reads(rng, np.full(reads_per_sample, tissue_id))
                rec = SampleRecord(sample_id=sid, tissue=tissue, tissue_id=tissue_id, split=split, file="",
                                   n_reads=0, n_windows_covered=0, sha256="")
                add_sample(root, panel=panel, record=rec, window_idx=window,
                           calls=pack_calls(calls, panel.call_bytes))
                ids.append(sid)
    assemble_manifest(root, tissues=TISSUES, sample_ids=ids, min_cpgs=1)
    return Store.open(root)


def tiny_config():
    return load_config("tiny", overrides=["model.n_layers=1", "model.hidden=32", "model.n_heads=2",
                                          "model.ffn=64", "model.head_hidden=32", "model.dropout=0.0",
                                          "eval.bootstrap=20"])


def checkpoint_state(model, config, store: Store, steps: int) -> dict:
    return {CKPT.MODEL: model.state_dict(), CKPT.CONFIG: config_to_dict(config), CKPT.TISSUES: list(store.tissues),
            CKPT.PANEL_HASH: store.panel_hash, CKPT.EPOCH: 1, CKPT.GLOBAL_STEP: steps,
            CKPT.PANEL_WINDOWS: store.panel.coordinates(), CKPT.CLASS_PRIOR: np.full(len(store.tissues), 1 / len(store.tissues))}


def train_tiny(store: Store, steps: int = 500, seed: int = 0):
    """A few plain Adam steps on the training split: enough to learn the marker windows."""
    torch.manual_seed(seed)
    config = tiny_config()
    model = build_model(config.model, len(store.tissues), store.panel)
    tables = TokenTables(store.panel)
    windows, calls, labels = [], [], []
    for rec in store.samples("train"):
        reads = store.reads(rec)
        windows.append(reads.window_idx.astype(np.int64))
        calls.append(reads.calls)
        labels.append(np.full(reads.n_reads, rec.tissue_id))
    windows, calls, labels = np.concatenate(windows), np.concatenate(calls), np.concatenate(labels)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        idx = rng.integers(0, len(labels), size=64)
        dna, meth = tables.batch(windows[idx], calls[idx])
        logits = model(torch.from_numpy(dna.astype(np.int64)), torch.from_numpy(meth.astype(np.int64)),
                       torch.from_numpy(windows[idx]))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), config


@functools.lru_cache(maxsize=None)
def tiny_cohort() -> TinyCohort:
    """Built once per test process (training takes a few seconds) and removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="tissuebert-tiny-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    store = build_store(root / "store")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the trained weights (and so the asserted metrics) do not depend on the core count
    try:
        model, config = train_tiny(store)
    finally:
        torch.set_num_threads(threads)
    ckpt = root / "trained.pt"
    save_checkpoint(ckpt, checkpoint_state(model, config, store, 500))
    torch.manual_seed(1)
    untrained = build_model(config.model, len(store.tissues), store.panel).eval()
    rand = root / "random.pt"
    save_checkpoint(rand, checkpoint_state(untrained, config, store, 0))
    return TinyCohort(root, store, ckpt, rand)

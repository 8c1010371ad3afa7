"""Every string key, file name and vocabulary constant of tissuebert lives here.

Other modules refer to ``STORE.CALLS`` or ``CKPT.MODEL``, never to bare strings, so that a
renamed key is changed in one place and a typo is an ``AttributeError`` rather than a silent
``KeyError`` in a file written months ago.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

# --------------------------------------------------------------------------------------------
# Encoding: 150 bp window -> 148 overlapping 3-mers
# --------------------------------------------------------------------------------------------
WINDOW_BP = 150
KMER = 3
N_TOKENS = WINDOW_BP - KMER + 1  # 148 DNA tokens per window

BASES = "ACGT"
KMERS = tuple("".join(p) for p in itertools.product(BASES, repeat=KMER))  # 64, lexicographic
DNA_PAD = 0  # position outside the chromosome (never produced for in-bounds windows)
DNA_NKMER = 1  # a k-mer holding N or any non-ACGT base
DNA_KMER_OFFSET = 2  # k-mer ``KMERS[i]`` has token ``i + DNA_KMER_OFFSET``
DNA_VOCAB = len(KMERS) + DNA_KMER_OFFSET  # 66

METH_U = 0  # unmethylated call (T in a .pat pattern)
METH_M = 1  # methylated call (C in a .pat pattern)
METH_NONE = 2  # no CpG at this token, or the read gives no call there
METH_VOCAB = 4  # the three codes above and one row no read writes: the embedding shape checkpoints carry

# .pat pattern characters (wgbs_tools): C methylated, T unmethylated, . unknown
PAT_METHYLATED = "C"
PAT_UNMETHYLATED = "T"
PAT_UNKNOWN = "."

# Calls are stored 2 bits per CpG, 4 CpGs per byte, CpG j in byte j // 4 at bit 2 * (j % 4).
CALL_BITS = 2
CALLS_PER_BYTE = 4

# --------------------------------------------------------------------------------------------
# Store layout (docs/store_format.md is the spec)
# --------------------------------------------------------------------------------------------
STORE_SCHEMA_VERSION = 1
STORE = SimpleNamespace(
    MANIFEST="manifest.json",
    PANEL="panel.h5",
    SAMPLES_DIR="samples",
    SHARDS_DIR="shards",
    # panel.h5 datasets
    CHROMS="chroms",  # (n_chroms,) names, index = chrom_id
    CHROM_LENGTHS="chrom_lengths",
    WIN_CHROM="windows/chrom_id",  # (W,) int32
    WIN_START="windows/start",  # (W,) int64, 0-based
    WIN_REGION="windows/region_id",  # (W,) int32
    DNA="dna_tokens",  # (W, 148) uint8
    CPG_PTR="cpg_ptr",  # (W + 1,) int64: CpGs of window w are cpg_ptr[w]:cpg_ptr[w+1]
    CPG_OFFSET="cpg_offset",  # (C,) uint8 base offset of the CpG's C inside its window
    CPG_INDEX="cpg_index",  # (C,) int64 genome-wide 1-based CpG index (wgbs_tools)
    CPG_RANGE="cpg_range",  # (n_chroms, 2) int64 first and last CpG index of each chromosome (optional)
    REG_CHROM="regions/chrom_id",
    REG_START="regions/start",
    REG_END="regions/end",
    REG_NAME="regions/name",
    # samples/<id>.h5 datasets
    READ_WINDOW="reads/window_idx",  # (R,) uint32, sorted
    CALLS="reads/calls",  # (R, B) uint8, packed 2-bit calls
    WINDOW_PTR="reads/window_ptr",  # (W + 1,) int64: reads of window w are rows ptr[w]:ptr[w+1]
    # HDF5 attributes
    ATTR_SCHEMA="schema_version",
    ATTR_PANEL_HASH="panel_hash",
    ATTR_MAX_CPGS="max_cpgs",
    ATTR_CALL_BYTES="call_bytes",
    ATTR_SAMPLE_ID="sample_id",
    ATTR_PSEUDO="pseudo_reads",
)

# manifest.json keys
MANIFEST = SimpleNamespace(
    SCHEMA="schema_version",
    TISSUES="tissues",
    PANEL_HASH="panel_hash",
    PANEL_SHA256="panel_sha256",
    WINDOW="window_bp",
    MIN_CPGS="min_cpgs",
    MAX_CPGS="max_cpgs",
    CALL_BYTES="call_bytes",
    N_WINDOWS="n_windows",
    VOCAB="vocab",
    SAMPLES="samples",
    PROVENANCE="provenance",
)

SPLITS = ("train", "val", "test")

# Sample sheet columns (TSV with header)
SHEET_COLUMNS = ("sample_id", "tissue", "split", "path", "format")
SHEET_OPTIONAL = ("donor",)
PROVENANCE_WARNINGS = "warnings"  # provenance key: what prepare found suspicious but not fatal

# --------------------------------------------------------------------------------------------
# Checkpoints (inference/checkpoint.py)
# --------------------------------------------------------------------------------------------
CKPT = SimpleNamespace(
    EPOCH="epoch",
    GLOBAL_STEP="global_step",
    MODEL="model_state_dict",
    OPTIMIZER="optimizer_state_dict",
    SCHEDULER="scheduler_state_dict",
    SCALER="scaler_state_dict",
    SAMPLER="sampler_state",
    RNG="rng_state",
    BEST_LOSS="best_val_loss",
    BEST_ACC="best_val_acc",
    RESUME_COUNT="resume_count",
    CONFIG="config",
    VAL_METRICS="val_metrics",
    TISSUES="tissues",
    PANEL_HASH="panel_hash",
    PANEL_WINDOWS="panel_windows",  # chroms + (chrom_id, start) of every window, for deconvolve
    CLASS_PRIOR="class_prior",
    TEMPERATURE="temperature",
    CLASS_BIAS="class_bias",  # dict: temperature + per-tissue bias of bias-corrected calibration (deconvolution)
    CALIBRATION="calibration",  # dict: split, n_reads, nll/ece before and after temperature scaling
    VERSION="tissuebert_version",
    MID_EPOCH="mid_epoch",
    NONFINITE="nonfinite_steps",  # steps skipped (non-finite or exploding) since the run began
    EPOCH_SET="epoch_set",  # the names an epoch end writes this state under (last.pt last)
    INIT_FROM="init_from",  # the checkpoint whose weights a run started from (train --init-from), or None
)
# Keys of Panel.coordinates(), the panel description a checkpoint carries (CKPT.PANEL_WINDOWS)
COORDS = SimpleNamespace(
    CHROMS="chroms",
    CHROM_ID="chrom_id",
    START="start",
    CPG_INDEX="cpg_index",  # the training panel's CpG ordinals (older checkpoints lack it)
    CPG_RANGE="cpg_range",
)
CKPT_LAST = "last.pt"
CKPT_BEST_LOSS = "best_loss.pt"
CKPT_BEST_ACC = "best_acc.pt"
CKPT_EPOCH_FMT = "epoch_{:04d}.pt"
CKPT_MID_EPOCH = "mid_epoch.pt"

RUN = SimpleNamespace(
    CHECKPOINTS="checkpoints",
    LOGS="logs",
    PLOTS="plots",
    TENSORBOARD="tensorboard",
    CONFIG="config.yaml",
    EPOCHS_CSV="epochs.csv",
    PER_TISSUE_CSV="per_tissue.csv",
    STEPS_CSV="steps.csv",
    STOP="STOP",  # touch RUN/STOP to make a running `train` checkpoint and stop at the next step
    LOCK=".lock",  # held (flock) by the one process that writes the run
    RESUMES="resumes.json",  # every resume: global step, checkpoint, time (the resume cap counts these)
)

# A fitted logistic regression's saved state (inference/logreg.py)
LOGREG = SimpleNamespace(
    METHOD="logreg",  # its name in evaluate / deconvolve / benchmark outputs
    MODULE="module_state_dict",
    N_CPGS="n_cpgs",
    TISSUES="tissues",
    PANEL_HASH="panel_hash",
    CLASS_PRIOR="class_prior",
    SETTINGS="settings",
)

# Output file names of `tissuebert lr-find`
LR_FIND = SimpleNamespace(CSV="lr_find.csv", PNG="lr_find.png", JSON="lr_find.json")

# Output file names of evaluate / deconvolve
OUT = SimpleNamespace(
    METRICS="metrics.json",
    PER_TISSUE="per_tissue.tsv",
    CONFUSION_TSV="confusion.tsv",
    CONFUSION_PNG="confusion.png",
    PROPORTIONS="proportions.tsv",
    PROPORTIONS_PNG="proportions.png",
    POSTERIORS="posteriors.tsv.gz",
    CONFIG="config.yaml",
    RELIABILITY_PNG="reliability.png",
    PER_SAMPLE="per_sample.tsv",
    BENCHMARK_JSON="benchmark.json",
    BENCHMARK_HTML="report.html",
    BENCHMARK_TSV="estimates.tsv",
    RUN_INFO="run.json",  # inputs, methods and settings of a deconvolve / benchmark run
    COHORT_PROPORTIONS="cohort_proportions.tsv",  # deconvolve: sample, method, tissue, proportion, ci, reads
    VS_TRUTH="vs_truth.tsv",  # deconvolve --truth: sample, method, tissue, truth, proportion, error
    COHORT_MATRIX="cohort_matrix.tsv",  # deconvolve: one row per (sample, method), one column per tissue
    MULTIQC="tissuebert_mqc.tsv",  # deconvolve: MultiQC custom-content bar graph of the first method
)

# deconvolve --shard I/N: one file per shard of the cohort's unique rows (docs/deconvolution.md)
SHARD = SimpleNamespace(
    FILE="shard-{index:04d}-of-{count:04d}.npz",
    GLOB="shard-*.npz",
    KIND="tissuebert deconvolve shard",  # the identity's "kind": refuses any other .npz
    VERSION=1,
    LOGLIK="loglik",  # (stop - start, T) float32 log-likelihoods of the shard's rows
    IDENTITY="identity",  # JSON: the run (checkpoint, panel, inputs, rows) and the shard
)

# Environment variable naming the shared real-data folder for tests
ENV_SHARED_DATA = "TISSUEBERT_SHARED_DATA"

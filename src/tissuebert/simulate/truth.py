"""The generative truth of a simulated cohort: what every read was drawn from.

``truth/model.npz`` is the machine-readable truth (loaded by :func:`load_truth`, used by the
oracle); ``truth/blocks.tsv`` and ``truth/samples.tsv`` repeat it for people. docs/simulation.md
is the spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tissuebert.atomic import atomic_path, atomic_write_text
from tissuebert.errors import InputFormatError

TRUTH_DIR = "truth"
MODEL_NPZ = "model.npz"
BLOCKS_TSV = "blocks.tsv"
SAMPLES_TSV = "samples.tsv"
STATES = ("U", "X", "M")  # fragment states: unmethylated, intermediate, methylated
SAMPLE_COLUMNS = ("sample_id", "tissue", "split", "donor", "depth", "purity", "contamination",
                  "n_reads", "n_pat_lines")


@dataclass
class Truth:
    """Parameters every read of a cohort was drawn from.

    Each panel region (BED line) is cut into methylation blocks (``block_bp`` long; one block
    per region in ``--atlas`` mode). A fragment from tissue ``t`` takes, independently for every
    block ``b`` it overlaps, a state ``s`` (U, X, M) with probability ``pi[b, t, s]``; each CpG
    ``j`` of the block it covers is then methylated with probability ``q[j, s]``. Background
    CpGs (``cpg_block == -1``) have the same value in all three columns of ``q``: they depend
    on neither tissue nor state. Bisulfite non-conversion and sequencing error act last.

    With latent fragment structure (``simulate/structure.py``) a fragment of tissue ``t`` first
    draws a cell subtype ``k`` (probability ``subtype_weight[t, k]``) and an allele ``a``
    (probability 1 / A), and the block states are independent given them, with probabilities
    ``latent_pi[b, t, k, a]``; ``pi`` is then their mixture (the tissue profile). Truth files
    written before the structure existed have neither array: one subtype, one allele.
    """

    tissues: list[str]  # sorted
    chroms: list[str]
    chrom_lengths: np.ndarray  # (n_chroms,) int64
    reg_chrom: np.ndarray  # (R,) int32
    reg_start: np.ndarray  # (R,) int64, 0-based
    reg_end: np.ndarray  # (R,) int64, exclusive
    reg_name: list[str]
    blk_region: np.ndarray  # (B,) int32 region of each block (blocks in genome order)
    blk_start: np.ndarray  # (B,) int64, 0-based on the region's chromosome
    blk_end: np.ndarray  # (B,) int64
    blk_type: list[str]  # tissue_u, group_u, shared_u, tissue_m, group_m, background, atlas_*
    blk_target: list[str]  # tissue, lineage group or '+'-joined tissue set; "" for background
    pi: np.ndarray  # (B, T, 3) float64 state probabilities U, X, M
    cpg_chrom: np.ndarray  # (C,) int32; CpG j has genome-wide index j + 1
    cpg_pos: np.ndarray  # (C,) int64, 0-based position of the C
    cpg_region: np.ndarray  # (C,) int32, -1 outside every region
    cpg_block: np.ndarray  # (C,) int32, -1 outside every block
    q: np.ndarray  # (C, 3) float64 P(methylated | state)
    nonconversion: float
    seq_error: float
    samples: list[dict] = field(default_factory=list)
    subtype_weight: np.ndarray | None = None  # (T, K) float64; None = one subtype
    latent_pi: np.ndarray | None = None  # (B, T, K, A) + (3,) float64; None = pi, one subtype and allele
    region_asm: np.ndarray | None = None  # (R,) bool: region with allele-specific methylation

    @property
    def n_cpgs(self) -> int:
        return int(self.cpg_pos.shape[0])

    @property
    def n_blocks(self) -> int:
        return int(self.blk_region.shape[0])

    @property
    def has_latent(self) -> bool:
        """Whether fragments draw a latent subtype/allele (block states dependent on a fragment)."""
        return self.latent_pi is not None

    def latent(self) -> tuple[np.ndarray, np.ndarray]:
        """Latent classes flattened: (T, L) class probabilities and (B, T, L, 3) state
        probabilities, L = K * A (class k * A + a); one class equal to ``pi`` without structure."""
        if self.latent_pi is None:
            return np.ones((len(self.tissues), 1)), self.pi[:, :, None, :]
        n_blocks, n_tissues, n_sub, n_alleles, _ = self.latent_pi.shape
        weight = np.repeat(self.subtype_weight, n_alleles, axis=1) / n_alleles
        return weight, self.latent_pi.reshape(n_blocks, n_tissues, n_sub * n_alleles, 3)

    def tissue_id(self, name: str) -> int:
        try:
            return self.tissues.index(name)
        except ValueError:
            raise InputFormatError(f"unknown tissue {name!r}", hint=f"known tissues: {', '.join(self.tissues)}") from None

    def chrom_offsets(self) -> np.ndarray:
        """(n_chroms,) start of every chromosome on one concatenated genome axis."""
        return np.concatenate([[0], np.cumsum(self.chrom_lengths)[:-1]]).astype(np.int64)

    def cpg_gpos(self) -> np.ndarray:
        """(C,) CpG positions on the concatenated axis (sorted, as CpG indices are)."""
        return self.chrom_offsets()[self.cpg_chrom] + self.cpg_pos

    def observed_meth_prob(self) -> np.ndarray:
        """(C, 3) P(call is M | state, a call is made) after non-conversion and sequencing error.

        A methylated C reads C unless a sequencing error turns it into T (1/3 of errors; the
        other 2/3 give a base that is no call). An unmethylated C reads T, or C when the
        bisulfite conversion failed. Conditioning on a call being made removes the no-call
        factor, which is the same for every tissue.
        """
        err = self.seq_error
        called = 1.0 - 2.0 * err / 3.0
        m_given_meth = (1.0 - err) / called
        m_given_unmeth = (self.nonconversion * (1.0 - err) + (1.0 - self.nonconversion) * err / 3.0) / called
        return self.q * m_given_meth + (1.0 - self.q) * m_given_unmeth


_ARRAYS = ("chrom_lengths", "reg_chrom", "reg_start", "reg_end", "blk_region", "blk_start", "blk_end", "pi",
           "cpg_chrom", "cpg_pos", "cpg_region", "cpg_block", "q")
_STRINGS = ("tissues", "chroms", "reg_name", "blk_type", "blk_target")
_LATENT = ("subtype_weight", "latent_pi", "region_asm")  # only in cohorts with latent structure


def save_truth(truth: Truth, cohort_dir: Path) -> None:
    out = Path(cohort_dir) / TRUTH_DIR
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / MODEL_NPZ) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: getattr(truth, k) for k in _ARRAYS},
                                **{k: np.array(getattr(truth, k), dtype=str) for k in _STRINGS},
                                **{k: getattr(truth, k) for k in _LATENT if getattr(truth, k) is not None},
                                rates=np.array([truth.nonconversion, truth.seq_error]),
                                samples=np.array(json.dumps(truth.samples)))
    _write_blocks_tsv(truth, out / BLOCKS_TSV)
    _write_samples_tsv(truth.samples, out / SAMPLES_TSV)


def _write_blocks_tsv(truth: Truth, path: Path) -> None:
    """One row per block: where, its region, type, target, CpGs, then P(U state) per tissue."""
    n_cpgs = np.bincount(truth.cpg_block[truth.cpg_block >= 0], minlength=truth.n_blocks)
    first_index = np.zeros(truth.n_blocks, dtype=np.int64)
    in_blk = np.flatnonzero(truth.cpg_block >= 0)
    # the CpGs of a block are consecutive: the first one has the smallest index
    first_index[truth.cpg_block[in_blk][::-1]] = in_blk[::-1] + 1
    header = ["chrom", "start", "end", "region", "type", "target", "first_cpg_index", "n_cpgs", "p_intermediate"]
    header += [f"pU:{t}" for t in truth.tissues]
    lines = ["\t".join(header)]
    for b in range(truth.n_blocks):
        region = int(truth.blk_region[b])
        row = [truth.chroms[truth.reg_chrom[region]], str(truth.blk_start[b]), str(truth.blk_end[b]),
               truth.reg_name[region], truth.blk_type[b], truth.blk_target[b] or ".",
               str(first_index[b]) if n_cpgs[b] else ".", str(n_cpgs[b]), f"{truth.pi[b, 0, 1]:.4f}"]
        row += [f"{v:.4f}" for v in truth.pi[b, :, 0]]
        lines.append("\t".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _write_samples_tsv(samples: list[dict], path: Path) -> None:
    lines = ["\t".join(SAMPLE_COLUMNS)]
    for rec in samples:
        lines.append("\t".join(_fmt(rec.get(col, "")) for col in SAMPLE_COLUMNS))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def load_truth(cohort_dir: str | Path) -> Truth:
    """Read ``cohort_dir/truth/model.npz`` written by ``simulate``."""
    path = Path(cohort_dir) / TRUTH_DIR / MODEL_NPZ
    if not path.is_file():
        raise InputFormatError("simulation truth not found", path=path,
                               hint="point at a directory written by `tissuebert simulate`")
    with np.load(path, allow_pickle=False) as z:
        rates = z["rates"]
        return Truth(**{k: z[k] for k in _ARRAYS}, **{k: [str(v) for v in z[k]] for k in _STRINGS},
                     **{k: z[k] for k in _LATENT if k in z.files},
                     nonconversion=float(rates[0]), seq_error=float(rates[1]), samples=json.loads(str(z["samples"])))

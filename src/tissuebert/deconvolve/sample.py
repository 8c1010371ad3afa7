"""One sample's reads (an input file or a store sample) on the model's panel; UXM against a
published atlas; `tissuebert predict`. A cohort's deconvolution is deconvolve/cohort.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tissuebert.atomic import check_output
from tissuebert.constants import CKPT, COORDS
from tissuebert.deconvolve.atlas_bam import bam_to_pat
from tissuebert.deconvolve.atlas_io import UXM_MIN_CPGS, pat_marker_counts, read_pat, read_uxm_atlas
from tissuebert.deconvolve.baselines import nnls_mixture
from tissuebert.deconvolve.bootstrap import bootstrap, multinomial_draw
from tissuebert.deconvolve.output import write_posteriors
from tissuebert.deconvolve.run import DeconvResult, score_reads
from tissuebert.errors import TissueBertError
from tissuebert.inference.checkpoint import Checkpoint
from tissuebert.io.formats import BAM_FORMATS, ORDINAL_FORMATS, infer_format
from tissuebert.progress import get_logger
from tissuebert.store.panel import Panel
from tissuebert.store.store import Store

log = get_logger("deconvolve")


@dataclass
class SampleInput:
    panel: Panel
    window_idx: np.ndarray  # (R,) int64
    calls: np.ndarray  # (R, B) packed
    counts: np.ndarray  # (R,) multiplicities
    source: str
    read_names: list[str] | None = None  # (R,) BAM read names per row, comma-joined (predict --read-names)


def load_sample(*, state: dict[str, Any] | None, input_path: Path | None, fmt: str | None, cpg_index: Path | None,
                reference: Path | None, store: Store | None, sample_id: str | None, min_cpgs: int = 1,
                panel: Panel | None = None, read_names: bool = False) -> SampleInput:
    """Reads of one sample projected onto the model's panel, identical reads collapsed.

    ``panel`` passes the panel already rebuilt from the checkpoint (a cohort rebuilds it once);
    ``read_names`` (BAM input only) keeps, per row, the names of the reads collapsed into it."""
    if store is not None and sample_id is not None:
        if input_path is not None:
            raise TissueBertError("give either --input or --sample, not both")
        if read_names:
            raise TissueBertError("--read-names needs a BAM --input: a store keeps reads without their names",
                                  path=store.root, hint="predict from the sample's BAM instead of --sample")
        reads = store.reads(store.sample(sample_id))
        # collapse identical (window, calls) rows: each is then scored once and weighted by its count
        rows = np.concatenate([reads.window_idx.astype(np.uint64)[:, None].view(np.uint8).reshape(-1, 8),
                               np.asarray(reads.calls)], axis=1)
        uniq, first, counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
        return SampleInput(store.panel, reads.window_idx[first].astype(np.int64), np.asarray(reads.calls)[first],
                           counts.astype(np.int64), f"{store.root}:{sample_id}")
    if input_path is None:
        raise TissueBertError("nothing to deconvolve: pass --input FILE, or --store STORE --sample ID")
    from tissuebert.prepare import panel_from_coordinates, read_sample_windows
    from tissuebert.prepare.reads import require_read_names

    fmt = fmt or infer_format(input_path)
    if read_names:
        require_read_names(input_path, fmt)  # before the panel is rebuilt
    if store is not None:
        panel = store.panel
    elif panel is None:  # else the caller rebuilt the panel and checked the CpG index already
        if state is None or CKPT.PANEL_WINDOWS not in state:
            raise TissueBertError("the checkpoint lacks its panel's window coordinates", hint="pass --store STORE")
        if reference is None:
            raise TissueBertError("--reference FASTA is needed to rebuild the model's panel", hint="or pass --store STORE")
        if fmt in ORDINAL_FORMATS and cpg_index is None:
            _no_cpg_index(state, input_path)
        panel = panel_from_coordinates(reference, state[CKPT.PANEL_WINDOWS], cpg_index)
    win = read_sample_windows(input_path, fmt, panel, reference=reference, min_cpgs=min_cpgs, collapse=True,
                              read_names=read_names)
    if win.n_rows == 0:
        raise TissueBertError("no read of the input overlaps the model's panel", path=input_path,
                              hint="check the reference build and chromosome names")
    return SampleInput(panel, win.window_idx.astype(np.int64), win.calls, win.counts.astype(np.int64), str(input_path),
                       win.read_names)


def _no_cpg_index(state: dict[str, Any], input_path: Path) -> None:
    """A .pat/.beta input is in CpG-index coordinates: read it through the model's own CpG
    indices (saved in the checkpoint), or refuse when the checkpoint predates them."""
    if COORDS.CPG_INDEX not in state[CKPT.PANEL_WINDOWS]:
        raise TissueBertError("a .pat/.beta input needs --cpg-index (the CpG index of the genome it was made with)",
                              path=input_path, hint="this checkpoint does not carry its training CpG indices")
    log.warning("%s: no --cpg-index given: reading it through the CpG indices the model was trained with; "
                "the file must come from the same CpG index (wgbs_tools genome)", input_path)


def _atlas_uxm(atlas_path: Path, input_path: Path | None, n_boot: int, ci_level: float, seed: int,
               fmt: str | None = None, cpg_index: Path | None = None, reference: Path | None = None) -> DeconvResult:
    """UXM against a published atlas from .pat reads (CpG-index coordinates, no FASTA), or from a
    BAM's fragments placed on the atlas's CpGs through ``cpg_index``."""
    if input_path is None:
        raise TissueBertError("--atlas needs a .pat(.gz) or BAM --input", path=atlas_path)
    fmt = fmt or infer_format(input_path)
    if fmt not in ("pat", *BAM_FORMATS):
        raise TissueBertError(f"uxm with --atlas counts fragments: it reads .pat(.gz) or BAM input, not {fmt}",
                              path=input_path, hint="per-CpG counts carry no fragments: use --method nnls with --store")
    atlas = read_uxm_atlas(atlas_path)
    if fmt == "pat":
        pat = read_pat(input_path)
    elif cpg_index is None:
        raise TissueBertError("a BAM on the --atlas route needs --cpg-index: the atlas names its CpGs by index",
                              path=input_path, hint="give the wgbs_tools CpG.bed.gz of the atlas's genome build")
    else:
        pat = bam_to_pat(input_path, fmt, atlas, atlas_path, cpg_index, reference=reference)
        log.info("%s: %d fragments over the atlas's markers (CpG positions from %s)", input_path.name,
                 int(pat.counts.sum()), Path(cpg_index).name)
    mc = pat_marker_counts(pat, atlas)
    usable = (mc.informative > 0) & np.all(np.isfinite(atlas.u_fraction), axis=1)
    if not usable.any():
        raise TissueBertError(f"no marker of the atlas {atlas_path.name} holds a fragment of this input with >= "
                              f"{UXM_MIN_CPGS} CpG calls", path=input_path,
                              hint="are the atlas and the input of the same genome build (hg19 vs hg38) and CpG index?")
    est = nnls_mixture(atlas.u_fraction, mc.u_fraction, weights=mc.informative)

    def refit(counts: np.ndarray) -> np.ndarray:  # the same fragments, redrawn multiplicities
        boot = pat_marker_counts(type(pat)(pat.start_cpg, pat.codes, pat.length, counts.astype(np.int64)), atlas)
        return nnls_mixture(atlas.u_fraction, boot.u_fraction, weights=boot.informative)

    low, high, _ = bootstrap(refit, multinomial_draw(pat.counts), n_out=len(atlas.tissues), n_boot=n_boot,
                             ci_level=ci_level, seed=seed, estimate=est)
    n_reads = int(round(mc.informative[usable].sum()))  # informative fragments (one across two markers counts twice)
    return DeconvResult(list(atlas.tissues), "uxm", est, low, high, est * n_reads, n_reads, ci_level)


def predict_sample(out: Path, *, checkpoint: Path, input_path: Path | None = None, fmt: str | None = None,
                   cpg_index: Path | None = None, reference: Path | None = None, store_root: Path | None = None,
                   sample_id: str | None = None, temperature: float | None = None, device: str | None = None,
                   precision: str = "auto", force: bool = False, read_names: bool = False) -> tuple[int, int]:
    """Write per-read posteriors of one sample to ``out`` (.tsv.gz); returns (rows, reads).
    ``read_names`` (BAM input): a last column with the names of each row's reads."""
    check_output(out, force=force)
    if read_names and input_path is not None:  # refused before the checkpoint is loaded
        from tissuebert.prepare.reads import require_read_names

        require_read_names(input_path, fmt or infer_format(input_path))
    loaded = Checkpoint.load(checkpoint)
    state, config = loaded.state, loaded.config
    store = Store.open(store_root) if store_root is not None else None
    sample = load_sample(state=state, input_path=input_path, fmt=fmt, cpg_index=cpg_index, reference=reference,
                         store=store, sample_id=sample_id, min_cpgs=config.data.min_cpgs, read_names=read_names)
    _, loglik = score_reads(state, sample.panel, sample.window_idx, sample.calls, temperature=temperature,
                            device=device, precision=precision)
    write_posteriors(out, sample.panel, list(state[CKPT.TISSUES]), sample.window_idx, loglik, sample.counts,
                     sample.calls, read_names=sample.read_names)
    return len(sample.counts), int(sample.counts.sum())

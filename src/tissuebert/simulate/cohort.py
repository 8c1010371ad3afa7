"""`simulate`: a complete cohort in the real input formats, plus its generative truth.

Layout of the output directory (docs/simulation.md is the spec):
genome.fa(+.fai), regions.bed, CpG.bed.gz(+.tbi), samples.tsv, samples_bam.tsv,
pat/<id>.pat.gz(+.csi), bam/<id>.bam(+.bai), truth/, simulate.json.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tissuebert import __version__
from tissuebert.atomic import atomic_dir, atomic_write_text
from tissuebert.constants import SPLITS, WINDOW_BP
from tissuebert.progress import get_logger, track
from tissuebert.simulate.bam import BamWriter
from tissuebert.simulate.formats import PatWriter, write_cpg_index, write_fasta, write_regions_bed
from tissuebert.simulate.genome import Genome, reference_genome, synthetic_genome
from tissuebert.simulate.markers import assign_states, cpg_meth_probs
from tissuebert.simulate.motifs import motifs_of, plant_motifs
from tissuebert.simulate.params import SimConfig, resolve
from tissuebert.simulate.reads import ReadSimulator
from tissuebert.simulate.structure import latent_structure, subtype_mix_regions
from tissuebert.simulate.tissues import ABUNDANCE, BLOOD_SHARES, is_blood
from tissuebert.simulate.truth import Truth, save_truth

log = get_logger("simulate")
GENOME_FA, REGIONS_BED, CPG_BED = "genome.fa", "regions.bed", "CpG.bed.gz"
SHEET_PAT, SHEET_BAM, PAT_DIR, BAM_DIR, SIM_JSON = "samples.tsv", "samples_bam.tsv", "pat", "bam", "simulate.json"


@dataclass
class SampleDesign:
    sample_id: str
    tissue: str
    split: str
    donor: str
    depth: float
    contamination: float


def design_samples(cfg: SimConfig, tissues: list[str], rng: np.random.Generator) -> list[SampleDesign]:
    """Sample counts by tissue abundance, per-tissue splits, depths, contamination, donors."""
    weights = np.array([ABUNDANCE.get(t, 1.0) for t in tissues])
    total = cfg.samples_per_tissue * len(tissues)
    exact = total * weights / weights.sum()
    counts = np.maximum(np.floor(exact).astype(int), cfg.min_samples_per_tissue)
    short = int(round(total)) - counts.sum()
    if short > 0:  # largest remainders first, as in apportionment
        counts[np.argsort(-(exact - np.floor(exact)))[:short]] += 1
    has_blood = any(is_blood(t) for t in tissues)
    # donors are split like samples, so no person's cells reach two splits
    donor_ids = [f"D{k + 1:03d}" for k in range(max(cfg.donors, len(SPLITS)))]
    cuts = np.round(np.cumsum(cfg.split_fractions)[:-1] * len(donor_ids)).astype(int)
    cuts = np.clip(cuts, np.arange(1, len(SPLITS)), len(donor_ids) - np.arange(len(SPLITS) - 1, 0, -1))
    pools = dict(zip(SPLITS, np.split(np.array(donor_ids), cuts)))
    out = []
    for tissue, n_samples in zip(tissues, counts.tolist()):
        n_val = int(round(n_samples * cfg.split_fractions[1]))
        n_test = int(round(n_samples * cfg.split_fractions[2]))
        if n_samples >= 3:  # every tissue in every split when it has the samples for it
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        n_train = max(n_samples - n_val - n_test, 0)
        splits = [SPLITS[0]] * n_train + [SPLITS[1]] * n_val + [SPLITS[2]] * n_test
        splits = [splits[k] for k in rng.permutation(len(splits))]
        for k, split in enumerate(splits):
            depth = float(np.exp(rng.uniform(np.log(cfg.depth_min), np.log(cfg.depth_max))))
            contam = float(rng.uniform(*cfg.contamination)) if has_blood and not is_blood(tissue) else 0.0
            donor = str(rng.choice(pools[split]))
            out.append(SampleDesign(f"{tissue}_{k + 1:02d}", tissue, split, donor, depth, contam))
    return out


def sample_sources(truth: Truth, design: SampleDesign, concentration: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """State probabilities of the sample's own cells (drawn around its tissue's values) and of
    the blood cells contaminating it, with each source's share of the fragments, and (with
    latent structure, else None) each source's latent class probabilities.

    The sample's U share at a region is Beta with mean equal to the tissue's, so a single read,
    averaged over samples, follows the tissue profile exactly (what the oracle uses).
    """
    if truth.has_latent:
        return _latent_sample_sources(truth, design, concentration, rng)
    tid = truth.tissue_id(design.tissue)
    pi_t = truth.pi[:, tid, :]
    p_x = pi_t[:, 1]
    u = np.clip(pi_t[:, 0] / np.maximum(pi_t[:, 0] + pi_t[:, 2], 1e-12), 1e-4, 1 - 1e-4)
    u_sample = rng.beta(concentration * u, concentration * (1 - u))
    own = np.stack([(1 - p_x) * u_sample, p_x, (1 - p_x) * (1 - u_sample)], axis=-1)
    sources, weights = [own], [1.0 - design.contamination]
    blood = [(truth.tissues.index(t), share) for t, share in BLOOD_SHARES.items() if t in truth.tissues]
    if design.contamination > 0 and blood:
        norm = sum(share for _, share in blood)
        for blood_id, share in blood:
            sources.append(truth.pi[:, blood_id, :])
            weights.append(design.contamination * share / norm)
    return np.stack(sources), np.asarray(weights), None


def _latent_sample_sources(truth: Truth, design: SampleDesign, concentration: float,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`sample_sources`, per latent class: sources (S, B, L, 3), latent weights (S, L).

    The sample's own cells vary around the tissue twice, both with the tissue's values as the
    mean: each subtype's U share per block is Beta (as without structure), and the subtype
    weights are Dirichlet (cell composition differs between samples). Blocks and classes are
    drawn independently, so the expected read likelihood is still the truth's (what the oracle
    uses). Alleles stay 50/50.
    """
    tid = truth.tissue_id(design.tissue)
    class_w, class_pi = truth.latent()  # (T, L), (B, T, L, 3)
    n_alleles = truth.latent_pi.shape[3]
    own_pi = class_pi[:, tid]  # (B, L, 3)
    p_x = own_pi[..., 1]
    u = np.clip(own_pi[..., 0] / np.maximum(own_pi[..., 0] + own_pi[..., 2], 1e-12), 1e-4, 1 - 1e-4)
    u_sample = rng.beta(concentration * u, concentration * (1 - u))
    own = np.stack([(1 - p_x) * u_sample, p_x, (1 - p_x) * (1 - u_sample)], axis=-1)
    sub_w = truth.subtype_weight[tid]
    own_w = rng.dirichlet(concentration * sub_w) if sub_w.size > 1 else sub_w
    sources, weights, latent = [own], [1.0 - design.contamination], [np.repeat(own_w, n_alleles) / n_alleles]
    blood = [(truth.tissues.index(t), share) for t, share in BLOOD_SHARES.items() if t in truth.tissues]
    if design.contamination > 0 and blood:
        norm = sum(share for _, share in blood)
        for blood_id, share in blood:
            sources.append(class_pi[:, blood_id])
            weights.append(design.contamination * share / norm)
            latent.append(class_w[blood_id])
    return np.stack(sources), np.asarray(weights), np.stack(latent)


def _build_truth(cfg: SimConfig, rng: np.random.Generator, reference: Path | None,
                 atlas: Path | None, structure_rng: np.random.Generator | None = None) -> tuple[Truth, Genome]:
    """Genome, panel, tissue profiles and per-CpG levels from ``rng``; the latent fragment
    structure (cfg.subtypes, subtype_regions, asm_fraction) from ``structure_rng``."""
    structure_rng = structure_rng if structure_rng is not None else rng
    names, table_cpgs = None, None
    if atlas is not None:
        from tissuebert.simulate.atlas_table import atlas_states

        tissues, pi, types, targets, names, table_cpgs = atlas_states(atlas, cfg, rng)
        cfg = cfg.model_copy(update={"regions": pi.shape[0]})
    else:
        tissues = cfg.tissue_list()
    if reference is not None:
        genome = reference_genome(cfg, rng, reference)
    else:
        genome = synthetic_genome(cfg, rng, table_cpgs)
    n_regions = genome.reg_start.shape[0]
    # an atlas row describes a whole region: one block (one state) per region there
    blk_region, blk_start, blk_end = genome.blocks(None if atlas is not None else cfg.block_bp)
    if atlas is None:
        pi, types, targets = assign_states(cfg, rng, tissues, blk_region.size)
    else:  # a reference may hold fewer regions than the table has rows
        pi, types, targets, names = pi[:n_regions], types[:n_regions], targets[:n_regions], names[:n_regions]
    if cfg.subtype_regions > 0:  # before the motifs: these blocks are no tissue's marker any more
        pi, types, targets, _ = subtype_mix_regions(pi, types, targets, blk_region, n_regions, cfg.subtype_regions,
                                                    structure_rng)
    if cfg.motifs and reference is None:
        motifs = motifs_of(tissues)
        plant_motifs(genome.seqs, genome.reg_chrom[blk_region], blk_start, blk_end, targets, motifs, rng)
    cpg_chrom, cpg_pos = genome.cpgs()
    cpg_region = genome.region_of_cpgs(cpg_chrom, cpg_pos)
    cpg_block = np.full(cpg_pos.size, -1, dtype=np.int32)
    inside = np.flatnonzero(cpg_region >= 0)
    if inside.size:  # blocks of a region tile it in order: find the last block start <= the CpG
        first_blk = np.searchsorted(blk_region, cpg_region[inside], side="left")
        last_blk = np.searchsorted(blk_region, cpg_region[inside], side="right") - 1
        step = cfg.block_bp if atlas is None else np.iinfo(np.int64).max
        k = np.minimum((cpg_pos[inside] - genome.reg_start[cpg_region[inside]]) // step, last_blk - first_blk)
        cpg_block[inside] = first_blk + k
    reg_names = names or [f"R{r + 1:06d}" for r in range(n_regions)]
    truth = Truth(tissues=tissues, chroms=genome.chroms, chrom_lengths=genome.chrom_lengths,
                  reg_chrom=genome.reg_chrom, reg_start=genome.reg_start, reg_end=genome.reg_end, reg_name=reg_names,
                  blk_region=blk_region, blk_start=blk_start, blk_end=blk_end, blk_type=types, blk_target=targets,
                  pi=pi, cpg_chrom=cpg_chrom, cpg_pos=cpg_pos, cpg_region=cpg_region, cpg_block=cpg_block,
                  q=cpg_meth_probs(rng, cpg_region), nonconversion=cfg.nonconversion, seq_error=cfg.seq_error)
    if cfg.subtypes > 1 or cfg.asm_fraction > 0:
        truth.subtype_weight, truth.latent_pi, truth.region_asm = latent_structure(
            truth.pi, truth.blk_region, n_regions, subtypes=cfg.subtypes, contrast=cfg.subtype_contrast,
            asm_fraction=cfg.asm_fraction, rng=structure_rng)
    return truth, genome


def region_labels(truth: Truth) -> list[str]:
    """BED label of each region: its blocks' type:target, '|'-joined (repeats collapsed), then
    `asm` for a region with allele-specific methylation."""
    labels: list[list[str]] = [[] for _ in truth.reg_name]
    for b, region in enumerate(truth.blk_region.tolist()):
        tag = f"{truth.blk_type[b]}:{truth.blk_target[b]}" if truth.blk_target[b] else truth.blk_type[b]
        if tag not in labels[region]:
            labels[region].append(tag)
    if truth.region_asm is not None:
        for region in np.flatnonzero(truth.region_asm).tolist():
            labels[region].append("asm")
    return ["|".join(tags) for tags in labels]


_WORKER: tuple | None = None  # (cfg, truth, flat_genome, out) of a --threads worker process


def _init_worker(cfg: SimConfig, truth: Truth, flat_genome: np.ndarray, out: Path) -> None:
    global _WORKER
    _WORKER = (cfg, truth, flat_genome, out)


def _sample_in_worker(job: tuple[SampleDesign, np.random.SeedSequence]) -> dict:
    assert _WORKER is not None
    cfg, truth, flat_genome, out = _WORKER
    return _simulate_sample(cfg, truth, flat_genome, job[0], np.random.default_rng(job[1]), out)


def simulate_cohort(out_dir: str | Path, *, preset: str = "demo", seed: int = 0, force: bool = False,
                    reference: str | Path | None = None, atlas: str | Path | None = None, threads: int = 1,
                    **overrides: Any) -> Path:
    """Simulate a cohort into ``out_dir`` (refused if it exists, unless ``force``); returns it.

    ``threads`` > 1 simulates samples in that many processes; each sample has its own seed, so the
    files are the same as with one.

    ``overrides`` are :class:`SimConfig` fields (e.g. ``tissues=4, regions=50, write_bam=False``).
    """
    cfg = resolve(preset, **overrides)
    out_dir = Path(out_dir)
    # the 4th stream (latent structure) leaves the first three, hence unstructured cohorts, as before
    streams = np.random.SeedSequence(seed).spawn(4)
    panel_rng, design_rng = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])
    with atomic_dir(out_dir, force=force) as tmp:
        truth, genome = _build_truth(cfg, panel_rng, Path(reference) if reference else None,
                                     Path(atlas) if atlas else None, np.random.default_rng(streams[3]))
        log.info("simulate: %d tissues, %d regions (%d blocks), %d CpGs on %d contigs", len(truth.tissues),
                 len(truth.reg_name), truth.n_blocks, truth.n_cpgs, len(truth.chroms))
        write_fasta(tmp / GENOME_FA, genome.chroms, genome.seqs)
        labels = region_labels(truth)
        write_regions_bed(tmp / REGIONS_BED, truth.chroms, truth.reg_chrom, truth.reg_start, truth.reg_end,
                          truth.reg_name, labels)
        write_cpg_index(tmp / CPG_BED, truth.chroms, truth.cpg_chrom, truth.cpg_pos)
        designs = design_samples(cfg, truth.tissues, design_rng)
        flat_genome = np.concatenate(genome.seqs)
        sample_seeds = streams[2].spawn(len(designs))
        jobs = list(zip(designs, sample_seeds))
        if threads <= 1 or len(jobs) <= 1:
            for design, sample_seed in track(jobs, "simulating samples"):
                rec = _simulate_sample(cfg, truth, flat_genome, design, np.random.default_rng(sample_seed), tmp)
                truth.samples.append(rec)
        else:
            with ProcessPoolExecutor(max_workers=threads, initializer=_init_worker,
                                     initargs=(cfg, truth, flat_genome, tmp)) as pool:
                truth.samples.extend(track(pool.map(_sample_in_worker, jobs), "simulating samples", total=len(jobs)))
        save_truth(truth, tmp)
        _write_sheets(tmp, truth.samples)
        meta = {"tissuebert_version": __version__, "seed": seed, "preset": preset,
                "reference": str(reference) if reference else None, "atlas": str(atlas) if atlas else None,
                "tissues": truth.tissues, "n_samples": len(designs), "n_regions": len(truth.reg_name),
                "n_windows": int(((truth.reg_end - truth.reg_start + WINDOW_BP - 1) // WINDOW_BP).sum()),
                "n_cpgs": truth.n_cpgs, "config": cfg.model_dump(mode="json"),
                "motifs": motifs_of(truth.tissues) if cfg.motifs and reference is None else {}}
        atomic_write_text(tmp / SIM_JSON, json.dumps(meta, indent=2) + "\n")
    log.info("simulate: wrote %d samples to %s", len(designs), out_dir)
    return out_dir


def _simulate_sample(cfg: SimConfig, truth: Truth, flat_genome: np.ndarray, design: SampleDesign,
                     rng: np.random.Generator, out: Path) -> dict:
    sources, weights, latent_weights = sample_sources(truth, design, cfg.sample_concentration, rng)
    sim = ReadSimulator(truth, sources=sources, weights=weights, latent_weights=latent_weights, depth=design.depth,
                        frag_mode=cfg.frag_mode, frag_max=cfg.frag_max, rng=rng)
    (out / PAT_DIR).mkdir(exist_ok=True)
    pat = PatWriter(out / PAT_DIR / f"{design.sample_id}.pat.gz", truth.chroms)
    bam = None
    if cfg.write_bam:
        (out / BAM_DIR).mkdir(exist_ok=True)
        bam = BamWriter(out / BAM_DIR / f"{design.sample_id}.bam", truth.chroms, truth.chrom_lengths,
                        flat_genome, truth.chrom_offsets(), sim.cpg_gpos, nonconversion=truth.nonconversion,
                        seq_error=truth.seq_error, rng=rng, read_prefix=design.sample_id)
    try:
        for chunk in sim.chunks():
            pat.write(chunk)
            if bam is not None:
                bam.write(chunk)
        pat.close()
        if bam is not None:
            bam.close()
    except BaseException:
        pat.abort()
        if bam is not None:
            bam.abort()
        raise
    return {"sample_id": design.sample_id, "tissue": design.tissue, "split": design.split,
            "donor": design.donor, "depth": design.depth, "purity": 1.0 - design.contamination,
            "contamination": design.contamination, "n_reads": pat.n_reads, "n_pat_lines": pat.n_lines}


def _write_sheets(out: Path, samples: list[dict]) -> None:
    for sheet, fmt, sub, ext in ((SHEET_PAT, "pat", PAT_DIR, ".pat.gz"), (SHEET_BAM, "bismark", BAM_DIR, ".bam")):
        if fmt == "bismark" and not (out / BAM_DIR).is_dir():
            continue
        lines = ["sample_id\ttissue\tsplit\tpath\tformat\tdonor"]
        lines += [f"{s['sample_id']}\t{s['tissue']}\t{s['split']}\t{sub}/{s['sample_id']}{ext}\t{fmt}\t{s['donor']}"
                  for s in samples]
        atomic_write_text(out / sheet, "\n".join(lines) + "\n")

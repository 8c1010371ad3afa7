"""Parameters of a simulated cohort: one pydantic model, four presets, CLI-style overrides.

Every field has a description; `simulate.json` holds the resolved values so a cohort can be
regenerated exactly from its seed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tissuebert.errors import ConfigError
from tissuebert.simulate.tissues import DEFAULT_TISSUES


class SimConfig(BaseModel):
    """Everything that shapes a simulated cohort besides the seed."""

    model_config = ConfigDict(extra="forbid")

    tissues: int = Field(22, ge=2, le=len(DEFAULT_TISSUES), description="Number of tissue classes, taken in catalog order (the first 8 are the demo set).")
    tissue_names: list[str] | None = Field(None, description="Explicit tissue names (overrides `tissues`); names outside the catalog form their own lineage.")
    samples_per_tissue: float = Field(5.0, gt=0, description="Mean samples per tissue; the total is split by each tissue's relative abundance (blood ~27% with 22 tissues).")
    min_samples_per_tissue: int = Field(3, ge=1, description="Every tissue gets at least this many samples (3 puts one in every split).")
    split_fractions: tuple[float, float, float] = Field((0.595, 0.176, 0.229), description="train/val/test share of each tissue's samples (the design's 455/135/175 of 765).")
    regions: int = Field(1000, ge=1, description="Number of panel regions (each 1-4 windows of 150 bp).")
    windows_per_region: tuple[float, float, float, float] = Field((0.55, 0.25, 0.13, 0.07), description="Probability that a region spans 1, 2, 3 or 4 windows (mean ~1.7; 51,000 windows ~ 30,000 regions).")
    block_bp: int = Field(50, ge=20, le=2000, description="Regions are cut into methylation blocks of this length, each with its own tissue-specific state; a read spanning two blocks carries two states (ignored with --atlas: one block per region).")
    cpgs_per_window: tuple[int, int] = Field((3, 15), description="Range of CpGs per 150 bp window inside a region (CpG-island density).")
    background_cpg_per_kb: float = Field(9.0, ge=0, description="CpG density outside regions (the human genome averages ~10 per kb).")
    gap_bp: tuple[int, int] = Field((900, 3000), description="Range of the distance between neighbouring regions; at least twice the longest fragment so a fragment meets at most one region.")
    marker_mix: dict[str, float] = Field({"tissue_u": 0.25, "group_u": 0.15, "shared_u": 0.4, "tissue_m": 0.05, "group_m": 0.03, "background": 0.12}, description="Share of regions by type: U-marker of one tissue, of a lineage group or of a random set of tissues; M-marker of one tissue or group; uninformative background.")
    depth_min: float = Field(20.0, gt=0, description="Lowest per-sample mean depth (reads per CpG); depths are log-uniform between min and max.")
    depth_max: float = Field(60.0, gt=0, description="Highest per-sample mean depth.")
    frag_mode: int = Field(167, ge=60, le=300, description="Mode of the cfDNA-like fragment length distribution (mono-nucleosome ~167 bp).")
    frag_max: int = Field(400, ge=100, le=1000, description="Fragments are truncated to [50, frag_max] bp.")
    nonconversion: float = Field(0.005, ge=0, lt=0.5, description="Bisulfite non-conversion rate: an unmethylated C still reads as C.")
    seq_error: float = Field(0.005, ge=0, lt=0.5, description="Per-base sequencing error rate (a third of errors turn C<->T, the rest give no call).")
    intermediate: tuple[float, float] = Field((0.02, 0.1), description="Range of the per-region probability of an intermediate (50%) fragment state, the same in all tissues.")
    sample_concentration: float = Field(40.0, gt=0, description="Between-sample variation: a sample's U-state probability at a region is Beta with the tissue's value as mean and this concentration.")
    contamination: tuple[float, float] = Field((0.01, 0.05), description="Range of the blood-cell fraction in solid-tissue samples (blood samples are pure).")
    donors: int = Field(30, ge=1, description="Number of donors the samples are drawn from (optional donor column); donors are split like samples, so a donor's samples share one split.")
    motifs: bool = Field(True, description="Plant a fixed 10-bp lineage motif per tissue / lineage group in the blocks that are markers of it (synthetic genomes only).")
    write_bam: bool = Field(True, description="Also write a Bismark-style BAM per sample.")
    subtypes: int = Field(1, ge=1, le=8, description="Cell subtypes per tissue (1 = none). A fragment comes from one cell, so it draws one subtype of its source tissue (weights ~ Dirichlet(3) per tissue) and all the blocks it spans take their states from that subtype's profile: block states on one fragment become dependent. Subtype profiles split the tissue's U fragments between subtypes without changing the tissue profile (see `subtype_contrast`; docs/simulation.md).")
    subtype_contrast: float = Field(1.0, ge=0, le=1, description="How unevenly a block's U fragments are split between a tissue's subtypes: 0 = every subtype has the tissue's U share (no structure), 1 = the most polarised split with the same mean (subtypes filled to fully U one after the other, in a random order per block and tissue).")
    subtype_regions: float = Field(0.0, ge=0, le=1, description="Share of regions turned into regions of intermediate methylation carried by cell subtypes (block type `subtype_mix`): every block's U share is 0.35-0.65, the same in every tissue, so bulk levels there are uninformative; with `subtypes` > 1 the split of each block's U fragments between a tissue's subtypes (random per block and tissue) makes the pattern of blocks unmethylated together on one read tissue-specific.")
    asm_fraction: float = Field(0.0, ge=0, le=1, description="Share of regions with allele-specific methylation, as at imprinted loci (IGF2/H19): a fragment comes from one of two alleles (50/50), and in these regions the U fragments of every block come from the first allele as far as possible (U share min(1, 2u) on it, max(0, 2u - 1) on the other), in every tissue.")

    @model_validator(mode="after")
    def _check(self) -> "SimConfig":
        if self.depth_max < self.depth_min:
            raise ValueError(f"depth_max ({self.depth_max}) must be >= depth_min ({self.depth_min})")
        if self.cpgs_per_window[0] < 1 or self.cpgs_per_window[1] < self.cpgs_per_window[0] or self.cpgs_per_window[1] > 40:
            raise ValueError(f"cpgs_per_window must be 1 <= lo <= hi <= 40, got {self.cpgs_per_window}")
        if self.gap_bp[0] < 2 * self.frag_max or self.gap_bp[1] < self.gap_bp[0]:
            raise ValueError(f"gap_bp must start at >= 2 * frag_max ({2 * self.frag_max}), got {self.gap_bp}")
        if abs(sum(self.split_fractions) - 1) > 1e-6:
            raise ValueError("split_fractions must sum to 1")
        unknown = set(self.marker_mix) - {"tissue_u", "group_u", "shared_u", "tissue_m", "group_m", "background"}
        if unknown or sum(self.marker_mix.values()) <= 0:
            raise ValueError(f"marker_mix keys must be tissue_u/group_u/shared_u/tissue_m/group_m/background, got {sorted(self.marker_mix)}")
        if self.tissue_names is not None and len(set(self.tissue_names)) != len(self.tissue_names):
            raise ValueError("tissue_names has duplicates")
        return self

    def tissue_list(self) -> list[str]:
        """The selected tissue names, sorted (the store's tissue axis)."""
        names = self.tissue_names if self.tissue_names is not None else list(DEFAULT_TISSUES[: self.tissues])
        return sorted(names)


PRESETS: dict[str, dict[str, Any]] = {
    # Trains the tiny model above chance in ~5 minutes on 2 CPU threads; simulates in seconds.
    # Few, strong markers (one methylation block per window, mostly single-tissue and lineage
    # U-markers): per-read signal is an interaction of sequence and methylation, and the fewer
    # windows a small model must tell apart, the sooner it leaves its initial plateau.
    "demo": dict(tissues=8, samples_per_tissue=5.0, regions=60, depth_min=20.0, depth_max=60.0, block_bp=150,
                 marker_mix={"tissue_u": 0.5, "group_u": 0.25, "shared_u": 0.1, "tissue_m": 0.05,
                             "group_m": 0.05, "background": 0.05}),
    # All 22 classes, enough markers per class for a meaningful test set.
    "small": dict(tissues=22, samples_per_tissue=5.0, regions=1000, depth_min=10.0, depth_max=100.0),
    # The design's size: 765 samples (~35 per tissue), ~51,000 windows, depth 10-500x.
    # BAMs are off here: at ~35,000 reads/s they would take days for the ~7 G reads (--bam to force).
    # Data where a read-level model can matter: 8 tissues as in demo, 300 regions cut into 30-bp
    # blocks (~5 per window, each a regulatory element with its own state), 3 cell subtypes per
    # tissue with the most polarised split, half the regions intermediate in every tissue with the
    # tissue told only by which blocks its subtypes leave unmethylated together on one fragment,
    # and 10% allele-specific regions. Simulates in seconds.
    "structured": dict(tissues=8, samples_per_tissue=5.0, regions=300, depth_min=20.0, depth_max=60.0, block_bp=30,
                       subtypes=3, subtype_contrast=1.0, subtype_regions=0.5, asm_fraction=0.1, write_bam=False,
                       marker_mix={"tissue_u": 0.3, "group_u": 0.15, "shared_u": 0.2, "tissue_m": 0.05,
                                   "group_m": 0.05, "background": 0.25}),
    "atlas": dict(tissues=22, samples_per_tissue=765 / 22, regions=30000, depth_min=10.0, depth_max=500.0, donors=200,
                  write_bam=False),
}


def resolve(preset: str = "demo", **overrides: Any) -> SimConfig:
    """Preset values updated with ``overrides`` (None values are ignored), validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown simulate preset {preset!r}", hint=f"choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SimConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err.get("loc", ())) or "simulate"
        raise ConfigError(f"simulate.{key}: {err['msg']}", hint="fix this simulate option") from None

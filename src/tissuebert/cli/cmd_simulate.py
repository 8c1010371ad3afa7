"""`tissuebert simulate` and `tissuebert simulate-mixture`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import ForceOpt, OutOpt, require_at_least


def simulate(
    out: OutOpt,
    preset: Annotated[str, typer.Option("--preset", help="Cohort size: demo (8 tissues, seconds), small (22 tissues), atlas (the design's 765 samples), structured (demo-sized, with cell subtypes and allele-specific methylation: reads carry structure an additive per-CpG model cannot use).")] = "demo",
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed and options give identical files.")] = 0,
    tissues: Annotated[Optional[int], typer.Option("--tissues", help="Number of tissue classes (2-22, in catalog order).")] = None,
    samples_per_tissue: Annotated[Optional[float], typer.Option("--samples-per-tissue", help="Mean samples per tissue (split by tissue abundance; at least 3 each).")] = None,
    regions: Annotated[Optional[int], typer.Option("--regions", help="Number of panel regions (1-4 windows of 150 bp each).")] = None,
    depth_min: Annotated[Optional[float], typer.Option("--depth-min", help="Lowest per-sample depth (reads per CpG).")] = None,
    depth_max: Annotated[Optional[float], typer.Option("--depth-max", help="Highest per-sample depth.")] = None,
    frag_mode: Annotated[Optional[int], typer.Option("--frag-mode", help="Mode of the fragment length distribution (bp).")] = None,
    nonconversion: Annotated[Optional[float], typer.Option("--nonconversion", help="Bisulfite non-conversion rate.")] = None,
    seq_error: Annotated[Optional[float], typer.Option("--seq-error", help="Per-base sequencing error rate.")] = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", help="Place regions on this FASTA's CpG-rich windows instead of synthetic chromosomes.")] = None,
    atlas: Annotated[Optional[Path], typer.Option("--atlas", help="Take marker levels per tissue from a table: UXM Atlas.U25 (U fractions) or nanomix 39Bisulfite.tsv (betas).")] = None,
    bam: Annotated[Optional[bool], typer.Option("--bam/--no-bam", help="Also write Bismark-style BAMs (bam/, samples_bam.tsv); default: yes, except for the atlas preset.")] = None,
    threads: Annotated[int, typer.Option("--threads", help="Samples simulated in parallel (processes); the files do not depend on it.")] = 1,
    force: ForceOpt = False,
) -> int:
    """Simulate a methylome cohort in real file formats, with its generative truth.

    Writes OUT/genome.fa(+.fai), regions.bed, CpG.bed.gz(+.tbi), samples.tsv (.pat) and samples_bam.tsv (BAM),
    pat/<id>.pat.gz(+.csi), bam/<id>.bam(+.bai), truth/ and simulate.json. See docs/simulation.md.

    Example: tissuebert simulate --out cohort --preset demo --seed 1
    """
    from tissuebert.simulate import simulate_cohort

    overrides = dict(tissues=tissues, samples_per_tissue=samples_per_tissue, regions=regions, depth_min=depth_min,
                     depth_max=depth_max, frag_mode=frag_mode, nonconversion=nonconversion, seq_error=seq_error,
                     write_bam=bam)
    require_at_least(threads, 1, "--threads")
    path = simulate_cohort(out, preset=preset, seed=seed, force=force, reference=reference, atlas=atlas,
                           threads=threads, **overrides)
    sheets = [str(path / name) for name in ("samples.tsv", "samples_bam.tsv") if (path / name).is_file()]
    typer.echo(f"cohort written to {path} (sample sheets: {', '.join(sheets)})")
    return 0


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def simulate_mixture(
    cohort: Annotated[Path, typer.Option("--cohort", help="A directory written by `tissuebert simulate`.")],
    out: OutOpt,
    proportions: Annotated[Optional[str], typer.Option("--proportions", help="TISSUE=FRACTION pairs, e.g. 'Liver-Hep=0.1,Blood-T=0.9'.")] = None,
    random: Annotated[Optional[int], typer.Option("--random", help="Instead of --proportions: this many random sparse Dirichlet mixtures.")] = None,
    depth: Annotated[float, typer.Option("--depth", help="Mean reads per CpG of each mixture.")] = 30.0,
    name: Annotated[str, typer.Option("--name", help="File name of the --proportions mixture (OUT/NAME.pat.gz).")] = "mixture",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    force: ForceOpt = False,
) -> int:
    """Simulate cfDNA-like mixtures of a simulated cohort's tissues, with the true proportions.

    Writes OUT/<name>.pat.gz(+.csi) per mixture and OUT/truth.tsv (mixture, tissue, proportion).

    Example: tissuebert simulate-mixture --cohort cohort --proportions "Liver-Hep=0.1,Blood-T=0.9" --depth 30 --out mix
    """
    import numpy as np

    from tissuebert.errors import ConfigError
    from tissuebert.simulate.mixture import parse_proportions, random_proportions, simulate_mixtures
    from tissuebert.simulate.truth import load_truth

    if (proportions is None) == (random is None):
        raise ConfigError("give exactly one of --proportions or --random")
    if not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(f"--name {name!r} must be a plain file name (letters, digits, . _ -), written inside --out")
    if not depth > 0:
        raise ConfigError(f"--depth must be > 0 reads per CpG, got {depth}")
    if random is not None:
        if random < 1:
            raise ConfigError(f"--random must be >= 1, got {random}")
        truth = load_truth(cohort)
        rng = np.random.default_rng(seed)
        mixtures = {f"mix_{k + 1:03d}": random_proportions(truth, rng) for k in range(random)}
    else:
        mixtures = {name: parse_proportions(proportions)}
    path = simulate_mixtures(cohort, mixtures, depth=depth, seed=seed, out_dir=out, force=force)
    typer.echo(f"{len(mixtures)} mixture(s) written to {path} (truth: {path / 'truth.tsv'})")
    return 0


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("simulate-mixture")(simulate_mixture)

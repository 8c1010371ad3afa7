"""`tissuebert markers`: select tissue-informative regions (a panel BED for `prepare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tissuebert.cli.common import ForceOpt, parse_shard, require_at_least
from tissuebert.errors import TissueBertError


def markers(
    out: Annotated[Path, typer.Option("--out", "-o", help="Marker BED to write; the summary goes beside it (NAME.summary.tsv).")],
    samples: Annotated[Optional[Path], typer.Option("--samples", help="Sample sheet of .pat/.beta files; only its 'train' rows are read.")] = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="Instead of --samples: a store; its training samples are read and its windows are the candidates.")] = None,
    blocks: Annotated[Optional[Path], typer.Option("--blocks", help="Candidate blocks: BED 'chrom start end [startCpG endCpG]' (wgbs_tools blocks), sorted, not overlapping.")] = None,
    one_based: Annotated[bool, typer.Option("--one-based", help="--blocks starts are 1-based C positions (wgbs_tools/UXM tables): subtract 1 to make BED.")] = False,
    tile_bp: Annotated[Optional[int], typer.Option("--tile-bp", help="Instead of --blocks: cut the genome (--cpg-index) into windows of this many bp.")] = None,
    min_block_cpgs: Annotated[int, typer.Option("--min-block-cpgs", help="With --tile-bp: keep windows with at least this many CpGs.")] = 4,
    cpg_index: Annotated[Optional[Path], typer.Option("--cpg-index", help="wgbs_tools CpG.bed.gz: for --tile-bp, blocks without CpG columns, and the .beta size check.")] = None,
    tissue_map: Annotated[Optional[Path], typer.Option("--tissue-map", help="TSV 'label<TAB>class' or a shipped map by name (atlas22).")] = None,
    groups: Annotated[Optional[Path], typer.Option("--groups", help="TSV 'group<TAB>class': group-vs-rest targets (e.g. blood vs the rest), or a shipped hierarchy by name (atlas22).")] = None,
    per_class: Annotated[int, typer.Option("--per-class", help="Markers kept per target and direction (hypo U and hyper M each).")] = 100,
    min_cpgs: Annotated[int, typer.Option("--min-cpgs", help="A fragment counts in a block with at least this many CpG calls there (UXM: 4).")] = 4,
    u_max: Annotated[float, typer.Option("--u-max", help="A fragment is U when its methylated fraction is <= this.")] = 0.25,
    m_min: Annotated[float, typer.Option("--m-min", help="A fragment is M when its methylated fraction is >= this.")] = 0.75,
    score: Annotated[str, typer.Option("--score", help="fragments (U/M fragment fractions; needs .pat or a store) or beta (mean methylation; .beta files).")] = "fragments",
    min_coverage: Annotated[float, typer.Option("--min-coverage", help="Informative fragments (calls with --score beta) a sample needs in a block to count there.")] = 5.0,
    min_delta: Annotated[float, typer.Option("--min-delta", help="Lowest target class value minus highest other class value must be at least this.")] = 0.15,
    max_pval: Annotated[float, typer.Option("--max-pval", help="One-sided p-value of --test (target samples vs the others) at most this.")] = 0.01,
    test: Annotated[str, typer.Option("--test", help="mannwhitney (scipy mannwhitneyu) or welch (scipy ttest_ind, unequal variances); a one-sample class uses ttest_1samp.")] = "mannwhitney",
    min_bg_classes: Annotated[float, typer.Option("--min-bg-classes", help="Share of the other classes that must be covered in a block.")] = 0.8,
    min_class_samples: Annotated[int, typer.Option("--min-class-samples", help="Training samples every class needs (1: the others are tested against the one sample).")] = 2,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Warn instead of failing when a class gets no marker.")] = False,
    threads: Annotated[int, typer.Option("--threads", help="Samples counted in parallel (processes).")] = 1,
    chunk_blocks: Annotated[Optional[int], typer.Option("--chunk-blocks", help="Blocks scored at a time (memory ~ samples x chunk x 64 bytes); default: sized for ~0.5 GiB.", show_default=False)] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Only the i-th of N equal slices of the blocks (i/N), e.g. in a SLURM array; then --assemble.")] = None,
    assemble: Annotated[bool, typer.Option("--assemble", help="Merge the finished --shard outputs of --out into the final BED and summary.")] = False,
    truth: Annotated[Optional[Path], typer.Option("--truth", help="A `tissuebert simulate` cohort (or its truth/ folder): print the panel's precision and recall against its true marker blocks.")] = None,
    force: ForceOpt = False,
) -> None:
    """Select tissue-informative blocks from the training split: a region BED for `prepare`.

    Example: tissuebert markers --samples cohort/samples.tsv --tile-bp 50 --cpg-index cohort/CpG.bed.gz --out markers.bed
    """
    from tissuebert.markers import FragmentRule, SelectRule
    from tissuebert.markers.select import SCORES, TESTS

    require_at_least(per_class, 1, "--per-class")
    require_at_least(min_cpgs, 1, "--min-cpgs")
    require_at_least(threads, 1, "--threads")
    require_at_least(chunk_blocks, 1, "--chunk-blocks")
    require_at_least(min_class_samples, 1, "--min-class-samples")
    require_at_least(min_block_cpgs, 1, "--min-block-cpgs")
    if not 0 <= u_max < m_min <= 1:
        raise TissueBertError(f"need 0 <= --u-max < --m-min <= 1, got {u_max} and {m_min}")
    if score not in SCORES:
        raise TissueBertError(f"--score must be one of {', '.join(SCORES)}, got {score!r}")
    if test not in TESTS:
        raise TissueBertError(f"--test must be one of {', '.join(TESTS)}, got {test!r}")
    if not 0 < max_pval <= 1 or not 0 <= min_bg_classes <= 1:
        raise TissueBertError("--max-pval must be in (0, 1] and --min-bg-classes in [0, 1]")
    if truth is not None:
        _truth_dir(truth)  # before the long run, not after it
    select_rule = SelectRule(score=score, min_coverage=min_coverage, min_delta=min_delta, max_pval=max_pval,
                             min_bg_classes=min_bg_classes, per_target=per_class, test=test)
    if assemble:
        from tissuebert.markers import assemble as assemble_shards

        written = assemble_shards(out, per_class, allow_empty, force)
    else:
        written = _run(out, samples, store, blocks, one_based, tile_bp, min_block_cpgs, cpg_index, tissue_map, groups,
                       FragmentRule(min_cpgs, u_max, m_min), select_rule, min_class_samples, allow_empty, threads,
                       chunk_blocks, parse_shard(shard), force)
    typer.echo(f"markers written: {', '.join(str(p) for p in written)}")
    if truth is not None and not (shard and not assemble):
        typer.echo(_truth_line(out, truth, groups, min_cpgs))


def _truth_dir(truth: Path) -> Path:
    """The cohort folder (load_truth reads COHORT/truth/model.npz); its truth/ folder is accepted too."""
    cohort = truth.parent if truth.name == "truth" and (truth / "model.npz").is_file() else truth
    if not (cohort / "truth" / "model.npz").is_file():
        raise TissueBertError("not a simulated cohort (no truth/model.npz)", path=truth,
                              hint="--truth takes the folder `tissuebert simulate --out` wrote")
    return cohort


def _truth_line(out: Path, truth: Path, groups: Optional[Path], min_cpgs: int) -> str:
    """The panel scored against a simulated cohort's true marker blocks (markers/truth.py)."""
    from tissuebert.io.sheet import shipped_file
    from tissuebert.markers import read_groups, read_selection
    from tissuebert.markers.truth import score_panel
    from tissuebert.simulate import load_truth

    sim = load_truth(_truth_dir(truth))
    group_sets = {}
    if groups is not None:
        classes = list(sim.tissues)
        group_sets = {t.name: frozenset(classes[m] for m in t.members)
                      for t in read_groups(shipped_file(groups, "groups"), classes)}
    score = score_panel(read_selection(out), sim, group_sets, min_cpgs=min_cpgs)
    return (f"panel vs simulated truth: precision {score.precision:.3f} ({score.n_correct}/{score.n_selected}), "
            f"recall {score.recall:.3f} ({score.n_found}/{score.n_true} true marker blocks with >= {min_cpgs} CpGs)")


def _run(out, samples, store, blocks, one_based, tile_bp, min_block_cpgs, cpg_index, tissue_map, groups, fragment_rule,
         select_rule, min_class_samples, allow_empty, threads, chunk_blocks, shard, force) -> list[Path]:
    import numpy as np

    from tissuebert.io.sheet import shipped_file
    from tissuebert.markers import Target, read_blocks, read_groups, run_markers, tile_blocks
    from tissuebert.markers.run import check_classes
    from tissuebert.markers.sources import sheet_samples, store_samples

    if (samples is None) == (store is None):
        raise TissueBertError("give exactly one of --samples (a sheet of .pat/.beta files) or --store")
    store_root = None
    if store is not None:
        if blocks is not None or tile_bp is not None:
            raise TissueBertError("--store uses the store's windows as candidates; drop --blocks/--tile-bp")
        classes, inputs, candidates = store_samples(store)
        store_root, where = store, store
    else:
        if (blocks is None) == (tile_bp is None):
            raise TissueBertError("give exactly one of --blocks (a block BED) or --tile-bp (with --cpg-index)")
        classes, inputs = sheet_samples(samples, tissue_map)
        where = samples
        if tile_bp is not None:
            require_at_least(tile_bp, 2, "--tile-bp")
            if cpg_index is None:
                raise TissueBertError("--tile-bp needs --cpg-index (the genome's CpG.bed.gz)")
            candidates = tile_blocks(cpg_index, tile_bp, min_block_cpgs)
        else:
            candidates = read_blocks(blocks, cpg_index)
            if one_based:
                candidates.start -= 1
        formats = {s.format for s in inputs}
        if "beta" in formats and select_rule.score != "beta":
            raise TissueBertError(f"{samples}: .beta files hold no fragments; pass --score beta (mean methylation)")
    sample_class = np.asarray([s.class_id for s in inputs])
    check_classes(classes, sample_class, min_class_samples, where, select_rule)
    if len(classes) < 2:
        raise TissueBertError(f"{where}: markers needs at least 2 training classes, got {len(classes)}")
    targets = [Target(name, "class", (k,)) for k, name in enumerate(classes)]
    if groups is not None:
        targets += read_groups(shipped_file(groups, "groups"), classes)
    n_genome = _genome_cpgs(cpg_index) if cpg_index is not None and "beta" in {s.format for s in inputs} else None
    return run_markers(inputs, classes, candidates, targets, out=out, fragment_rule=fragment_rule,
                       select_rule=select_rule, threads=threads, chunk_blocks=chunk_blocks, shard=shard,
                       allow_empty=allow_empty, n_genome_cpgs=n_genome, store_root=store_root, force=force)


def _genome_cpgs(cpg_index: Path) -> int:
    """The highest CpG index of the genome's CpG.bed.gz (its last line)."""
    from tissuebert.io.text import open_text

    last = ""
    with open_text(cpg_index) as fh:
        for line in fh:
            if line.strip():
                last = line
    return int(last.split()[2])


def register(app: typer.Typer) -> None:
    app.command("markers")(markers)

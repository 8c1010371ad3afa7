"""``prepare_store``: sample sheet + reference + regions -> a validated store directory.

Unsharded, the whole store is built under a temporary name and renamed into place at the end,
so a failure leaves nothing behind. Sharded (``shard=(i, n)``, e.g. a SLURM array), every task
writes the shared panel and its own samples (each file atomic) straight into ``out``; the task
that finds every sample present assembles ``manifest.json`` (``assemble_store`` does the same by
hand). A rerun of a shard skips samples already written, so a requeued task resumes.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tissuebert.atomic import atomic_dir, atomic_write_text
from tissuebert.constants import PROVENANCE_WARNINGS, STORE
from tissuebert.errors import OutputExistsError, StoreError, TissueBertError
from tissuebert.io.formats import FORMATS
from tissuebert.io.sheet import SheetRow, read_sheet, read_tissue_map, shipped_file, tissue_list
from tissuebert.prepare.panel import build_panel
from tissuebert.prepare.project import PanelIndex
from tissuebert.prepare.reads import ReadFilters, read_sample_windows
from tissuebert.progress import get_logger, track
from tissuebert.store.builder import add_sample, assemble_manifest, ensure_panel
from tissuebert.store.manifest import SampleRecord, default_provenance
from tissuebert.store.panel import Panel
from tissuebert.store.validate import validate_store

log = get_logger("prepare")
SKIPPED_SUFFIX = ".skipped.json"
OPTIONS_FILE = "options.json"


@dataclass(frozen=True)
class _Job:
    row: SheetRow
    tissue_id: int
    root: str
    reference: str
    min_cpgs: int
    max_reads_per_window: int | None
    filters: ReadFilters
    skip_bad: bool


def _prepare_one(job: _Job, panel: Panel, index: PanelIndex | None = None) -> tuple[str, str | None, dict]:
    """Read one sample into ``root``; returns (sample_id, error or None, stats)."""
    row = job.row
    try:
        reads = read_sample_windows(row.path, row.format, panel, reference=job.reference, min_cpgs=job.min_cpgs,
                                    filters=job.filters, max_reads_per_window=job.max_reads_per_window,
                                    index=index)
        if reads.n_rows == 0:
            raise TissueBertError(f"sample {row.sample_id!r} has no read with >= {job.min_cpgs} CpG call(s) in any window",
                                  path=row.path, hint="check the file is for this genome build and overlaps --regions")
        record = SampleRecord(sample_id=row.sample_id, tissue=row.tissue, tissue_id=job.tissue_id, split=row.split,
                              file="", n_reads=0, n_windows_covered=0, sha256="", format=row.format,
                              source=str(row.path), donor=row.donor, original_label=row.original_label,
                              pseudo_reads=reads.pseudo)
        add_sample(job.root, panel=panel, record=record, window_idx=reads.window_idx, calls=reads.calls)
        return row.sample_id, None, reads.stats
    except TissueBertError as exc:
        if not job.skip_bad:
            raise
        atomic_write_text(Path(job.root) / STORE.SAMPLES_DIR / f"{row.sample_id}{SKIPPED_SUFFIX}",
                          json.dumps({"sample_id": row.sample_id, "error": str(exc)}) + "\n")
        return row.sample_id, str(exc), {}


_WORKER_PANEL: tuple[Panel, PanelIndex] | None = None


def _init_worker(panel: Panel) -> None:
    global _WORKER_PANEL
    _WORKER_PANEL = (panel, PanelIndex(panel))


def _run_in_worker(job: _Job) -> tuple[str, str | None, dict]:
    assert _WORKER_PANEL is not None
    return _prepare_one(job, *_WORKER_PANEL)


def _run_jobs(jobs: list[_Job], panel: Panel, threads: int) -> list[tuple[str, str | None, dict]]:
    if threads <= 1 or len(jobs) <= 1:
        index = PanelIndex(panel)
        return [_prepare_one(job, panel, index) for job in track(jobs, "prepare samples", total=len(jobs))]
    with ProcessPoolExecutor(max_workers=threads, initializer=_init_worker, initargs=(panel,)) as pool:
        return list(track(pool.map(_run_in_worker, jobs), "prepare samples", total=len(jobs)))


def _load_sheet(sheet: str | Path, tissue_map: str | Path | None) -> list[SheetRow]:
    mapping = read_tissue_map(tissue_map) if tissue_map is not None else None
    return read_sheet(sheet, mapping, map_path=tissue_map)


def prepare_store(sheet: str | Path, reference: str | Path, regions: str | Path, out: str | Path, *,
                  cpg_index: str | Path | None = None, tissue_map: str | Path | None = None, min_cpgs: int = 1,
                  max_reads_per_window: int | None = None, shard: tuple[int, int] | None = None, threads: int = 1,
                  force: bool = False, skip_bad_samples: bool = False, filters: ReadFilters | None = None) -> Path:
    """Build (or, with ``shard=(i, n)``, contribute to) the store at ``out``; returns ``out``.

    Returns after writing the manifest when the store is complete; a shard whose siblings are
    still running returns without one (``assemble_store`` or the last shard writes it).
    """
    out = Path(out)
    if min_cpgs < 1:
        raise TissueBertError(f"--min-cpgs must be >= 1, got {min_cpgs}")
    if max_reads_per_window is not None and max_reads_per_window < 1:
        raise TissueBertError(f"--max-reads-per-window must be >= 1, got {max_reads_per_window}")
    rows = _load_sheet(sheet, tissue_map)
    tissues = tissue_list(rows)
    warnings: list[str] = []
    for tissue in tissues:
        lacking = [split for split in ("train", "val") if not any(r.tissue == tissue and r.split == split for r in rows)]
        if lacking:
            warnings.append(f"tissue {tissue!r} has no {' or '.join(lacking)} sample in {Path(sheet).name}: "
                            "`train` refuses such a store unless given --allow-missing-tissues")
            log.warning("%s", warnings[-1])
    if cpg_index is None and any(FORMATS[r.format].needs_cpg_index for r in rows):
        warnings.append("no --cpg-index: CpG indices are counted from the FASTA, which matches wgbs_tools' "
                        "only if the FASTA holds exactly the contigs it indexed, in the same order")
        log.warning("%s", warnings[-1])
    options = {"min_cpgs": min_cpgs, "max_reads_per_window": max_reads_per_window, "sheet": str(Path(sheet).resolve()),
               "reference": str(Path(reference).resolve()), "regions": str(Path(regions).resolve()),
               "cpg_index": None if cpg_index is None else str(Path(cpg_index).resolve()),
               "tissue_map": None if tissue_map is None else str(shipped_file(tissue_map).resolve())}
    filters = filters or ReadFilters()

    def jobs_for(root: Path, selected: list[SheetRow]) -> list[_Job]:
        return [_Job(r, tissues.index(r.tissue), str(root), str(reference), min_cpgs, max_reads_per_window,
                     filters, skip_bad_samples) for r in selected]

    if shard is None:
        panel = build_panel(reference, regions, cpg_index)
        options[PROVENANCE_WARNINGS] = warnings + panel.warnings
        with atomic_dir(out, force=force) as tmp:
            ensure_panel(tmp, panel)
            results = _run_jobs(jobs_for(tmp, rows), panel, threads)
            _finish(tmp, rows, tissues, min_cpgs, options, results)
        return out

    shard_i, n_shards = shard
    if not (n_shards >= 1 and 0 <= shard_i < n_shards):
        raise TissueBertError(f"--shard must be i/N with 0 <= i < N, got {shard_i}/{n_shards}")
    if (out / STORE.MANIFEST).exists() and not force:
        raise OutputExistsError("store is already complete (manifest.json exists)", path=out,
                                hint="choose another --out or pass --force to rebuild these samples")
    # sibling shards may be creating the panel right now: only foreign files make --out unusable
    ours = {STORE.PANEL, STORE.SAMPLES_DIR, STORE.SHARDS_DIR, STORE.MANIFEST}
    if out.exists() and any(p.name not in ours and not p.name.startswith(".") for p in out.iterdir()):
        raise OutputExistsError("output exists and is not a store in progress", path=out,
                                hint="choose another --out")
    panel = build_panel(reference, regions, cpg_index)
    options[PROVENANCE_WARNINGS] = warnings + panel.warnings
    out.mkdir(parents=True, exist_ok=True)
    ensure_panel(out, panel)
    shards_dir = out / STORE.SHARDS_DIR
    _check_options(shards_dir, options)
    mine = rows[shard_i::n_shards]
    todo = [r for r in mine if force or not (out / STORE.SAMPLES_DIR / f"{r.sample_id}.json").exists()]
    if len(todo) < len(mine):
        log.info("shard %d/%d: %d sample(s) already prepared, skipping them", shard_i, n_shards, len(mine) - len(todo))
    for r in todo:
        (out / STORE.SAMPLES_DIR / f"{r.sample_id}{SKIPPED_SUFFIX}").unlink(missing_ok=True)
    results = _run_jobs(jobs_for(out, todo), panel, threads)
    _log_results(results)
    if _all_present(out, rows):
        log.info("every sample of the sheet is present: assembling the manifest")
        assemble_store(out, sheet, tissue_map=tissue_map)
    else:
        log.info("shard %d/%d done; the manifest is written once every shard has finished", shard_i, n_shards)
    return out


def _check_options(shards_dir: Path, options: dict) -> None:
    path = shards_dir / OPTIONS_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        for key in ("min_cpgs", "max_reads_per_window", "cpg_index"):
            if saved.get(key) != options[key]:
                raise StoreError(f"this shard's {key} = {options[key]!r} differs from the other shards' {saved.get(key)!r}",
                                 path=path, hint="run every shard with the same options")
        return
    shards_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(options, indent=2) + "\n")


def _all_present(root: Path, rows: list[SheetRow]) -> bool:
    samples = root / STORE.SAMPLES_DIR
    return all((samples / f"{r.sample_id}.json").exists() or (samples / f"{r.sample_id}{SKIPPED_SUFFIX}").exists()
               for r in rows)


def _log_results(results: list[tuple[str, str | None, dict]]) -> None:
    for sample_id, error, stats in results:
        if error:
            log.warning("skipped sample %s: %s", sample_id, error)
        elif "cpgs_covered" in stats:  # per-CpG counts: no reads came in, pseudo-reads were drawn
            log.info("%s: per-CpG counts at %d panel CpGs, %d pseudo-read rows stored", sample_id,
                     stats["cpgs_covered"], stats.get("rows", 0))
        else:
            log.info("%s: %d reads in, %d rows stored", sample_id, stats.get("reads_in", 0), stats.get("rows", 0))


def _finish(root: Path, rows: list[SheetRow], tissues: list[str], min_cpgs: int, options: dict,
            results: list[tuple[str, str | None, dict]]) -> None:
    _log_results(results)
    skipped = {sid: err for sid, err, _ in results if err}
    kept = [r.sample_id for r in rows if r.sample_id not in skipped]
    if not kept:
        raise TissueBertError("every sample was skipped; no store written", path=options["sheet"])
    provenance = default_provenance(**options, skipped_samples=skipped)
    assemble_manifest(root, tissues=tissues, sample_ids=kept, min_cpgs=min_cpgs, provenance=provenance)
    validate_store(root, verify_checksums=True)


def skipped_samples(root: str | Path) -> dict[str, str]:
    """{sample_id: error} of the samples a ``--skip-bad-samples`` run left out."""
    out: dict[str, str] = {}
    for path in sorted((Path(root) / STORE.SAMPLES_DIR).glob(f"*{SKIPPED_SUFFIX}")):
        data = json.loads(path.read_text())
        out[data["sample_id"]] = data["error"]
    return out


def assemble_store(out: str | Path, sheet: str | Path, *, tissue_map: str | Path | None = None) -> Path:
    """Write manifest.json of a store filled by sharded ``prepare`` runs, then validate it."""
    out = Path(out)
    if not (out / STORE.PANEL).exists():
        raise StoreError("no panel.h5: nothing prepared here yet", path=out, hint="run the prepare shards first")
    rows = _load_sheet(sheet, tissue_map)
    options_path = out / STORE.SHARDS_DIR / OPTIONS_FILE
    options = json.loads(options_path.read_text()) if options_path.exists() else {"min_cpgs": 1}
    skipped = skipped_samples(out)
    kept = [r.sample_id for r in rows if r.sample_id not in skipped]
    if not kept:
        raise StoreError("every sample was skipped", path=out)
    provenance = default_provenance(**options, skipped_samples=skipped)
    assemble_manifest(out, tissues=tissue_list(rows), sample_ids=kept, min_cpgs=int(options["min_cpgs"]),
                      provenance=provenance)
    validate_store(out, verify_checksums=True)
    return out

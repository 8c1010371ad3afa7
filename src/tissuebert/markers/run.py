"""`tissuebert markers`: training samples -> per-block counts -> selection -> panel BED + summary.

Memory stays bounded: each sample is counted by one worker (``threads`` at a time) into a
``(B, 5)`` array written to a temporary folder, and the selection then reads ``chunk_blocks``
blocks of every sample at a time (plain reads, no memory map). Peak memory is about
``threads * B * 40 B + S * chunk_blocks * 64 B`` plus the blocks themselves; by default the chunk
is sized to keep the second term near 0.5 GiB (:func:`auto_chunk_blocks`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tissuebert.atomic import atomic_write_text, check_output
from tissuebert.constants import SPLITS
from tissuebert.errors import InputFormatError, TissueBertError
from tissuebert.markers.blocks import Blocks
from tissuebert.markers.counts import FragmentRule, count_beta, count_pat, count_store_sample
from tissuebert.markers.output import best_rows, read_selection, rows_from_results, summary_rows, write_bed, write_summary
from tissuebert.markers.select import DIRECTIONS, Selected, SelectRule, Target, select_chunk
from tissuebert.progress import get_logger, track

log = get_logger("markers")
COUNTING_FORMATS = ("pat", "beta")
TRAIN = SPLITS[0]


@dataclass(frozen=True)
class SampleInput:
    sample_id: str
    class_id: int
    path: Path
    format: str  # pat, beta or store


def read_groups(path: str | Path, classes: list[str]) -> list[Target]:
    """``group<TAB>class`` lines (a class may sit in several groups) -> group targets."""
    from tissuebert.io.sheet import _rows

    path = Path(path)
    if not path.is_file():
        raise TissueBertError("groups file not found", path=path, hint="check --groups")
    header, rows = _rows(path)
    if [h.lower() for h in header[:2]] != ["group", "class"]:
        rows = [(1, header)] + rows
    members: dict[str, list[int]] = {}
    unknown: set[str] = set()
    for line_no, cols in rows:
        if len(cols) < 2 or not cols[0] or not cols[1]:
            raise InputFormatError("a groups line needs 'group<TAB>class'", path=path, line=line_no)
        if cols[0] in classes:
            raise InputFormatError(f"group {cols[0]!r} has the name of a class", path=path, line=line_no)
        members.setdefault(cols[0], [])
        if cols[1] in classes:
            members[cols[0]].append(classes.index(cols[1]))
        else:
            unknown.add(cols[1])
    if unknown:  # a hierarchy of all 22 classes serves a cohort of a few of them
        log.warning("markers: %d class(es) of %s are not training classes and are left out: %s", len(unknown), path,
                    ", ".join(sorted(unknown)[:10]))
    out: list[Target] = []
    for name, ids in members.items():
        ids = sorted(set(ids))
        same = [t.name for t in out if t.members == tuple(ids)]
        if len(ids) < 2 or len(ids) >= len(classes) or same:
            log.info("markers: group %s left out (%s)", name,
                     f"same classes as {same[0]}" if same else f"{len(ids)} of the {len(classes)} classes")
            continue
        out.append(Target(name, "group", tuple(ids)))
    return out


def check_classes(classes: list[str], sample_class: np.ndarray, min_samples: int, where: str | Path,
                  rule: SelectRule | None = None) -> None:
    counts = np.bincount(sample_class, minlength=len(classes))
    if rule is not None and rule.test == "mannwhitney":
        from math import comb

        for name, n in zip(classes, counts.tolist()):
            # a rank test cannot go below 1 / C(n_all, n_target): with few samples nothing passes
            if n > 1 and 1 / comb(int(counts.sum()), n) > rule.max_pval:
                log.warning("markers: class %s has %d training samples: Mann-Whitney's smallest p is %.3g > --max-pval "
                            "%g; use --test welch or a larger --max-pval", name, n, 1 / comb(int(counts.sum()), n),
                            rule.max_pval)
    for name, n in zip(classes, counts.tolist()):
        if n < min_samples:
            raise InputFormatError(f"class {name!r} has {n} training sample(s); markers needs >= {min_samples} per class",
                                   path=where, hint="add training samples, merge the class in the tissue map, or lower "
                                                    "--min-class-samples (1 tests the others against the one sample)")


_WORKER_BLOCKS: Blocks | None = None  # the candidate blocks, sent once per worker process


def _init_worker(blocks: Blocks | None) -> None:
    global _WORKER_BLOCKS
    _WORKER_BLOCKS = blocks


def _count_one(job: tuple[SampleInput, FragmentRule, int | None, Path, object, bool]) -> str:
    sample, rule, n_genome_cpgs, out_dir, store_root, ranged = job
    blocks = _WORKER_BLOCKS
    if sample.format == "pat":
        counts = count_pat(sample.path, blocks, rule, ranged=ranged)
    elif sample.format == "beta":
        counts = count_beta(sample.path, blocks, n_genome_cpgs)
    else:
        from tissuebert.store.store import Store

        store = Store.open(store_root)
        counts = count_store_sample(store.reads(sample.sample_id, mmap=True), store.panel.n_cpgs, rule)
    path = out_dir / f"{sample.sample_id}.npy"
    np.save(path, counts.astype(np.float32))
    return str(path)


def count_samples(samples: list[SampleInput], blocks: Blocks | None, rule: FragmentRule, work: Path, threads: int,
                  n_genome_cpgs: int | None = None, store_root: Path | None = None, ranged: bool = False) -> list[Path]:
    jobs = [(s, rule, n_genome_cpgs, work, store_root, ranged) for s in samples]
    if threads <= 1 or len(jobs) <= 1:
        _init_worker(blocks)
        return [Path(_count_one(j)) for j in track(jobs, "counting samples")]
    # the blocks (up to millions) go to each worker once, not with every sample
    with ProcessPoolExecutor(max_workers=threads, initializer=_init_worker, initargs=(blocks,)) as pool:
        return [Path(p) for p in track(pool.map(_count_one, jobs), "counting samples", total=len(jobs))]


# bytes per (sample, block) while a chunk is scored: the (S, b, 5) float64 stack (40 B) and the
# per-sample beta and value arrays beside it (measured: 4.8 GB -> 2.5 GB peak for 455 samples when
# the chunk went from 100,000 to 20,000 blocks: ~63 B each)
CHUNK_BYTES_PER_CELL = 64
CHUNK_MEMORY = 512 * 2**20  # the automatic chunk keeps the scoring under ~0.5 GiB


def auto_chunk_blocks(n_samples: int, n_blocks: int) -> int:
    """Blocks per chunk so that ``n_samples`` samples' scoring stays within ``CHUNK_MEMORY``."""
    fit = CHUNK_MEMORY // (CHUNK_BYTES_PER_CELL * max(n_samples, 1))
    return int(min(max(1_000, fit), max(n_blocks, 1)))


class _CountFile:
    """Reads row ranges of one sample's (B, 5) ``.npy`` counts with plain reads: a memory map kept
    open over the whole selection would count every page it ever touched in the process's RSS
    (all samples' files in full, 2.6 GB for 455 samples x 145,000 blocks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as fh:
            major, _minor = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            self.shape, fortran, self.dtype = read_header(fh)
            if fortran or len(self.shape) != 2:
                raise ValueError(f"{path}: unexpected count array layout")
            self.offset = fh.tell()

    def rows(self, lo: int, hi: int) -> np.ndarray:
        hi = min(hi, self.shape[0])
        width = self.shape[1]
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + lo * width * self.dtype.itemsize)
            return np.fromfile(fh, dtype=self.dtype, count=(hi - lo) * width).reshape(hi - lo, width)


def select(count_files: list[Path], sample_class: np.ndarray, n_classes: int, targets: list[Target], rule: SelectRule,
           chunk_blocks: int | None = None) -> dict[tuple[str, str], Selected]:
    files = [_CountFile(p) for p in count_files]
    n_blocks = files[0].shape[0]
    if not chunk_blocks:
        chunk_blocks = auto_chunk_blocks(len(files), n_blocks)
    log.info("selecting over %d blocks, %d at a time (~%.1f GB for %d samples)", n_blocks, chunk_blocks,
             len(files) * min(chunk_blocks, n_blocks) * CHUNK_BYTES_PER_CELL / 1e9, len(files))
    results: dict[tuple[str, str], Selected] = {(t.name, d): Selected() for t in targets for d in DIRECTIONS}
    for lo in track(range(0, n_blocks, chunk_blocks), "selecting", total=-(-n_blocks // chunk_blocks)):
        chunk = np.empty((len(files), min(chunk_blocks, n_blocks - lo), files[0].shape[1]))  # (S, b, 5)
        for k, f in enumerate(files):
            chunk[k] = f.rows(lo, lo + chunk_blocks)
        select_chunk(chunk, sample_class, n_classes, targets, rule, lo, results)
    return results


def shard_slice(n_blocks: int, shard: tuple[int, int] | None) -> slice:
    if shard is None:
        return slice(0, n_blocks)
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise TissueBertError(f"--shard {i}/{n}: need 0 <= i < N")
    bounds = np.linspace(0, n_blocks, n + 1).round().astype(int)
    return slice(int(bounds[i]), int(bounds[i + 1]))


def run_markers(samples: list[SampleInput], classes: list[str], blocks: Blocks, targets: list[Target], *,
                out: Path, fragment_rule: FragmentRule, select_rule: SelectRule, threads: int = 1,
                chunk_blocks: int | None = None, shard: tuple[int, int] | None = None, allow_empty: bool = False,
                n_genome_cpgs: int | None = None, store_root: Path | None = None, force: bool = False,
                meta: dict | None = None) -> list[Path]:
    """Count, select and write; returns the files written."""
    sub = shard_slice(blocks.n_blocks, shard)
    blocks = blocks.subset(sub)
    outputs = shard_paths(out, shard) if shard else (out, summary_path(out))
    for path in outputs:
        check_output(path, force=force)
    sample_class = np.asarray([s.class_id for s in samples], dtype=np.int64)
    log.info("markers: %d training samples, %d classes, %d targets, %d candidate blocks%s", len(samples), len(classes),
             len(targets), blocks.n_blocks, f" (shard {shard[0]}/{shard[1]})" if shard else "")
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # as every other command: --out may name a new folder
    work = Path(tempfile.mkdtemp(prefix=".markers.", dir=Path(out).parent))
    try:
        count_blocks = None if store_root is not None else blocks
        # a shard reads only its slice of each indexed .pat, not the whole file
        files = count_samples(samples, count_blocks, fragment_rule, work, threads, n_genome_cpgs, store_root,
                              ranged=shard is not None)
        if store_root is not None:  # a store's windows: keep the shard's slice
            files = _slice_counts(files, sub)
        results = select(files, sample_class, len(classes), targets, select_rule, chunk_blocks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n_samples = np.bincount(sample_class, minlength=len(classes))
    info = {"targets": [[t.name, t.kind, int(n_samples[list(t.members)].sum())] for t in targets],
            "passing": {f"{k[0]}\t{k[1]}": v.n_passing for k, v in results.items()}, **(meta or {})}
    if shard:
        write_bed(outputs[0], rows_from_results(blocks, results, targets), precise=True)
        atomic_write_text(outputs[1], json.dumps(info, indent=1) + "\n")
        return list(outputs)
    return finish(rows_from_results(blocks, results, targets), info, out, select_rule.per_target, allow_empty)


def _slice_counts(files: list[Path], sub: slice) -> list[Path]:
    for path in files:
        arr = np.load(path)[sub]
        np.save(path, arr)
    return files


def finish(rows: list[dict], info: dict, out: Path, per_target: int, allow_empty: bool) -> list[Path]:
    """Keep the best ``per_target`` per (target, direction), check no class is empty, write."""
    rows = best_rows(rows, per_target)
    chosen = {r["target"] for r in rows}
    empty = [name for name, kind, _ in info["targets"] if kind == "class" and name not in chosen]
    if empty and not allow_empty:
        raise TissueBertError(f"no marker passed the thresholds for class(es) {', '.join(empty)}; nothing written",
                              hint="lower --min-delta / --min-coverage, raise --max-pval, add samples, "
                                   "or pass --allow-empty")
    for name in empty:
        log.warning("markers: no marker for class %s", name)
    write_bed(out, rows)
    write_summary(summary_path(out), summary_rows(rows, info))
    return [out, summary_path(out)]


def summary_path(out: Path) -> Path:
    name = out.name[:-4] if out.name.endswith(".bed") else out.name
    return out.with_name(name + ".summary.tsv")


def shard_dir(out: Path) -> Path:
    return out.with_name(out.name + ".shards")


def shard_paths(out: Path, shard: tuple[int, int]) -> tuple[Path, Path]:
    folder = shard_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{shard[0]:04d}-of-{shard[1]:04d}"
    return folder / f"{stem}.bed", folder / f"{stem}.json"


def assemble(out: Path, per_target: int, allow_empty: bool, force: bool) -> list[Path]:
    """Merge the shards of ``out`` (``OUT.shards/*-of-N.bed``) into the final BED and summary."""
    for path in (out, summary_path(out)):
        check_output(path, force=force)
    folder = shard_dir(out)
    beds = sorted(folder.glob("*-of-*.bed")) if folder.is_dir() else []
    if not beds:
        raise TissueBertError("no shard outputs to assemble", path=folder, hint="run markers --shard i/N first")
    n_total = int(beds[0].stem.split("-of-")[1])
    done = {int(p.stem.split("-of-")[0]) for p in beds if int(p.stem.split("-of-")[1]) == n_total}
    missing = sorted(set(range(n_total)) - done)
    if missing:
        raise TissueBertError(f"shard(s) {', '.join(map(str, missing[:10]))} of {n_total} have not finished", path=folder,
                              hint="run the missing --shard i/N jobs, then --assemble again")
    rows: list[dict] = []
    info: dict = {}
    for bed in beds:
        rows += read_selection(bed)
        part = json.loads(bed.with_suffix(".json").read_text())
        if not info:
            info = part
        else:
            for key, n in part["passing"].items():
                info["passing"][key] = info["passing"].get(key, 0) + n
    return finish(rows, info, out, per_target, allow_empty)

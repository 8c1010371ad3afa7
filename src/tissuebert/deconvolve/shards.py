"""A cohort's scoring split into the tasks of a SLURM array, gathered by a final step.

``deconvolve --shard I/N --out SHARDS`` scores shard I of the cohort's unique (window, pattern)
rows -- whole batches of the one-process order (:func:`cohort.shard_bounds`), so every logit is
the one a single process computes -- and writes ``SHARDS/shard-000I-of-000N.npz`` atomically.
``deconvolve --from-shards SHARDS --out OUT`` loads the same inputs, checks that the folder
holds every shard, once, of this very run, and fits and writes as one process would.

A shard names its run (:func:`run_identity`): the checkpoint file's sha256, the panel hash, the
temperature and batch size, every sample's id with a fingerprint of the reads it contributed
(sha256 of its collapsed rows and counts) and a fingerprint of the cohort's unique rows. Any
difference, and a missing, duplicated or damaged shard, is one error naming the file (exit 2)
before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tissuebert.atomic import atomic_path, check_output
from tissuebert.constants import CKPT, SHARD
from tissuebert.errors import TissueBertError
from tissuebert.progress import get_logger
from tissuebert.store.sample import sha256_file

log = get_logger("deconvolve")

RERUN_HINT = "score the cohort again into an empty folder (sbatch --array=0-(N-1) ... --shard I/N) and gather from it"


def rows_fingerprint(window_idx: np.ndarray, calls: np.ndarray, counts: np.ndarray | None = None) -> str:
    """sha256 of (window, packed calls[, count]) rows: the reads as the model sees them."""
    h = hashlib.sha256()
    calls = np.ascontiguousarray(calls, np.uint8)
    h.update(np.asarray(calls.shape, "<i8").tobytes())
    h.update(np.ascontiguousarray(window_idx, "<i8").tobytes())
    h.update(calls.tobytes())
    if counts is not None:
        h.update(np.ascontiguousarray(counts, "<i8").tobytes())
    return h.hexdigest()


def run_identity(checkpoint: Path, state: dict[str, Any], panel_hash: str, specs, samples, rows, *,
                 temperature: float | None, batch_size: int) -> dict[str, Any]:
    """What makes a shard's scores belong to this run (the keys are compared one by one)."""
    return {"checkpoint_sha256": sha256_file(checkpoint), "panel_hash": panel_hash,
            "tissues": list(state[CKPT.TISSUES]), "temperature": temperature, "batch_size": int(batch_size),
            "samples": [[spec.sample_id, rows_fingerprint(s.window_idx, s.calls, s.counts)]
                        for spec, s in zip(specs, samples)],
            "unique_rows": rows.n_unique, "rows_sha256": rows_fingerprint(rows.window_idx, rows.calls)}


def shard_bounds(n_rows: int, batch_size: int, world_size: int) -> list[tuple[int, int]]:
    """Each rank's (or array task's) [start, stop) of the unique rows: whole batches of the
    one-process order, as even as the batches allow, so every row is scored in the very batch a
    single process would put it in (the same logits, bit for bit, whatever the number of shards)."""
    n_batches = -(-n_rows // batch_size)
    edges = [min(n_rows, (r * n_batches // world_size) * batch_size) for r in range(world_size)] + [n_rows]
    return [(edges[r], edges[r + 1]) for r in range(world_size)]


def check_shard_spec(shard: tuple[int, int]) -> None:
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise TissueBertError(f"--shard must be i/N with 0 <= i < N, got {index}/{count}")


def shard_path(folder: Path, index: int, count: int) -> Path:
    return Path(folder) / SHARD.FILE.format(index=index, count=count)


def write_shard(folder: Path, shard: tuple[int, int], bounds: tuple[int, int], loglik: np.ndarray,
                run: dict[str, Any], *, precision: str, device: str, sources: list[str], checkpoint: Path,
                force: bool) -> Path:
    """``folder/shard-I-of-N.npz``: the shard's (rows, T) log-likelihoods and its identity, atomically."""
    index, count = shard
    final = shard_path(folder, index, count)
    check_output(final, force=force)
    identity = {"kind": SHARD.KIND, "version": SHARD.VERSION, "run": run,
                "shard": {"index": index, "count": count, "start": bounds[0], "stop": bounds[1],
                          "precision": precision, "device": device},
                "checkpoint": str(checkpoint), "inputs": sources}
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{SHARD.LOGLIK: np.ascontiguousarray(loglik, np.float32),
                            SHARD.IDENTITY: np.array(json.dumps(identity))})
    return final


@dataclass
class _Shard:
    path: Path
    identity: dict[str, Any]
    loglik: np.ndarray

    @property
    def index(self) -> int:
        return int(self.identity["shard"]["index"])

    @property
    def count(self) -> int:
        return int(self.identity["shard"]["count"])


def _read_shard(path: Path) -> _Shard:
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as npz:
            identity = json.loads(str(npz[SHARD.IDENTITY]))
            loglik = np.asarray(npz[SHARD.LOGLIK])
        if identity.get("kind") != SHARD.KIND:
            raise ValueError("not a shard")
        _ = identity["shard"]["index"], identity["shard"]["count"], identity["run"]
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:  # damaged or foreign
        raise TissueBertError(f"not a readable deconvolve shard ({type(exc).__name__}: {exc})", path=path,
                              hint="remove it, or " + RERUN_HINT) from None
    if identity.get("version") != SHARD.VERSION:
        raise TissueBertError(f"shard format version {identity.get('version')}, this tissuebert reads "
                              f"{SHARD.VERSION}", path=path, hint=RERUN_HINT)
    return _Shard(path, identity, loglik)


# the run's keys in the order they are checked, each with what a difference means
_RUN_KEYS = (("checkpoint_sha256", "was scored with another checkpoint"),
             ("tissues", "was scored with a checkpoint of other tissues"),
             ("panel_hash", "was scored on another panel"),
             ("temperature", "was scored with another --temperature"),
             ("batch_size", "was scored with another batch size (the checkpoint's eval.batch_size)"),
             ("samples", "was scored for other inputs"),
             ("unique_rows", "was scored for other reads"),
             ("rows_sha256", "was scored for other reads"))


def _mismatch(path: Path, theirs: dict[str, Any], ours: dict[str, Any]) -> TissueBertError | None:
    for key, what in _RUN_KEYS:
        if theirs.get(key) == ours[key]:
            continue
        detail = f"{theirs.get(key)!r}, this run {ours[key]!r}"
        if key == "checkpoint_sha256":
            detail = f"sha256 {str(theirs.get(key))[:12]}..., this run's --checkpoint {ours[key][:12]}..."
        elif key == "temperature":
            their_t, our_t = ("the checkpoint's" if t is None else t for t in (theirs.get(key), ours[key]))
            detail = f"{their_t}, this run {our_t}"
        elif key == "samples":
            detail = _samples_detail(theirs.get(key) or [], ours[key])
        return TissueBertError(f"this shard {what} ({detail}): it belongs to another run", path=path,
                               hint="gather with the same --checkpoint, inputs and options as the --shard step, "
                                    "or " + RERUN_HINT)
    return None


def _samples_detail(theirs: list, ours: list) -> str:
    their_ids, our_ids = [s[0] for s in theirs], [s[0] for s in ours]
    if their_ids != our_ids:
        return f"samples {', '.join(their_ids)}; this run {', '.join(our_ids)}"
    changed = [o[0] for t, o in zip(theirs, ours) if t[1] != o[1]]
    return f"the reads of {', '.join(changed)} differ from those it scored"


def score_shard(out: Path, shard: tuple[int, int], state: dict[str, Any], panel, rows, run: dict[str, Any], *,
                checkpoint: Path, sources: list[str], temperature: float | None, device: str | None,
                precision: str, force: bool) -> Path:
    """Score shard ``shard`` = (I, N) of the cohort's unique rows and write it under ``out``."""
    from tissuebert.deconvolve.run import score_reads
    from tissuebert.inference.device import resolve_device

    index, count = shard
    start, stop = shard_bounds(rows.n_unique, run["batch_size"], count)[index]
    log.info("shard %d of %d: unique rows %d-%d of %d", index, count, start, stop, rows.n_unique)
    loglik = np.zeros((0, len(run["tissues"])), np.float32)
    if stop > start:
        _, loglik = score_reads(state, panel, rows.window_idx[start:stop], rows.calls[start:stop],
                                temperature=temperature, device=device, precision=precision,
                                batch_size=run["batch_size"])
    return write_shard(out, shard, (start, stop), loglik, run, precision=precision,
                       device=str(resolve_device(device)), sources=sources, checkpoint=checkpoint, force=force)


def gather_shards(folder: Path, run: dict[str, Any], n_unique: int) -> tuple[np.ndarray, str, int]:
    """The cohort's (U, T) log-likelihoods from every shard of ``folder``, the precision they were
    scored at and the number of shards; refuses (naming the file) a shard of another run, a duplicate, a gap, a damaged one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TissueBertError("--from-shards: no such folder", path=folder,
                              hint="give the --out folder of the `deconvolve --shard I/N` runs")
    paths = sorted(folder.glob(SHARD.GLOB))
    if not paths:
        raise TissueBertError(f"--from-shards: no shard file ({SHARD.GLOB}) in the folder", path=folder,
                              hint="run the `deconvolve --shard I/N --out FOLDER` steps first")
    shards = [_read_shard(p) for p in paths]
    for shard in shards:
        error = _mismatch(shard.path, shard.identity["run"], run)
        if error is not None:
            raise error
    count = shards[0].count
    by_index: dict[int, _Shard] = {}
    for shard in shards:
        if shard.count != count:
            raise TissueBertError(f"shard {shard.index} of {shard.count}, but {shards[0].path.name} is one of "
                                  f"{count}: shards of two splits of the cohort in one folder", path=shard.path,
                                  hint="keep one split's shards: " + RERUN_HINT)
        if shard.index in by_index:
            raise TissueBertError(f"a second copy of shard {shard.index}/{count} (the other is "
                                  f"{by_index[shard.index].path.name})", path=shard.path,
                                  hint="remove one of the two files and gather again")
        by_index[shard.index] = shard
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        raise TissueBertError(f"--from-shards: shard {missing[0]}/{count} is missing ({len(missing)} of {count} "
                              f"missing)", path=shard_path(folder, missing[0], count),
                              hint=f"rerun that array task (--shard {missing[0]}/{count}) and gather again")
    bounds = shard_bounds(n_unique, run["batch_size"], count)
    n_tissues = len(run["tissues"])
    precision = by_index[0].identity["shard"]["precision"]
    for i in range(count):
        shard, (start, stop) = by_index[i], bounds[i]
        meta = shard.identity["shard"]
        if (meta["start"], meta["stop"]) != (start, stop) or shard.loglik.shape != (stop - start, n_tissues):
            raise TissueBertError(f"shard {i}/{count} holds rows {meta['start']}-{meta['stop']} "
                                  f"{shard.loglik.shape}, this run expects rows {start}-{stop} "
                                  f"({stop - start}, {n_tissues})", path=shard.path, hint=RERUN_HINT)
        if meta["precision"] != precision:
            raise TissueBertError(f"scored at {meta['precision']}, but {by_index[0].path.name} at {precision}",
                                  path=shard.path, hint="pass one --precision to every task (e.g. fp32) and "
                                                        "rerun the tasks that differ")
    log.info("gathered %d shards of %d unique rows from %s", count, n_unique, folder)
    loglik = np.concatenate([by_index[i].loglik.astype(np.float32, copy=False) for i in range(count)])
    return loglik, precision, count

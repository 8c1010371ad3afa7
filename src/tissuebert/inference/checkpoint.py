"""Checkpoints: atomic save, load with clear errors, and checks against a store or panel.

On disk a checkpoint is a dict keyed by ``constants.CKPT``; it carries its config, tissue list,
panel hash and panel window coordinates so predict/deconvolve need nothing but the checkpoint and
the reference genome, and so a mismatched input is refused on load. :class:`Checkpoint` is the
typed view inference works with; the functions below it are what training writes and resumes
with. The module lives in ``inference/`` because rebuilding the model from its config is all
inference needs, and it must never pull in the training loop (nanoGPT's ``sample.py`` rule).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from tissuebert import __version__
from tissuebert.atomic import atomic_path
from tissuebert.config import Config, config_from_dict
from tissuebert.constants import CKPT
from tissuebert.errors import CheckpointError
from tissuebert.model.tissuebert import TissueBERT, build_model

REQUIRED_KEYS = (CKPT.MODEL, CKPT.CONFIG, CKPT.TISSUES, CKPT.PANEL_HASH, CKPT.EPOCH, CKPT.GLOBAL_STEP)


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its on-disk dict and the name its errors give (the path, usually).

    The dict stays the format (old checkpoints load unchanged, and the training code writes and
    resumes from plain dicts); this class only gathers what inference asks of it in one place.
    """

    state: dict[str, Any]
    """The dict ``torch.save`` wrote, keyed by ``constants.CKPT``."""
    name: str = "checkpoint"
    """What messages call it: the file it came from, or "checkpoint"."""

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        return cls(load_checkpoint(path), str(path))

    @classmethod
    def of(cls, source: "str | Path | dict[str, Any] | Checkpoint", name: str | None = None) -> "Checkpoint":
        """A Checkpoint from a path (loaded), a loaded dict or a Checkpoint (returned as it is)."""
        if isinstance(source, Checkpoint):
            return source
        if isinstance(source, dict):
            return cls(source, name or "checkpoint")
        return cls.load(source)

    def save(self, path: str | Path, *, before_rename: Callable[[], None] | None = None) -> None:
        save_checkpoint(path, self.state, before_rename=before_rename)

    @property
    def tissues(self) -> list[str]:
        return list(self.state[CKPT.TISSUES])

    @property
    def panel_hash(self) -> str:
        return str(self.state[CKPT.PANEL_HASH])

    @cached_property
    def config(self) -> Config:
        """The resolved config the model was trained with (validated once, then kept)."""
        return checkpoint_config(self.state, self.name)

    def check_compatible(self, *, tissues: list[str], panel_hash: str, against: str = "store") -> None:
        check_compatible(self.state, tissues=tissues, panel_hash=panel_hash, path=self.name, against=against)

    def model(self) -> TissueBERT:
        """A fresh model rebuilt from the config and loaded with the weights, in eval mode, on the CPU."""
        return model_from_checkpoint(self.state, self.name)


def save_checkpoint(path: str | Path, state: dict[str, Any], *,
                    before_rename: Callable[[], None] | None = None) -> None:
    """Write ``state`` atomically and durably (tmp file, fsync, rename, fsync of the folder).

    Adds the package version. ``before_rename`` runs once the temporary file is complete (the
    fault-injection tests kill the process there).
    """
    state = dict(state)
    state[CKPT.VERSION] = __version__
    buffer = io.BytesIO()  # serialise in memory: a full disk is then one OSError, not a torch RuntimeError
    torch.save(state, buffer)
    with atomic_path(path, durable=True) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())
        if before_rename is not None:
            before_rename()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint onto the CPU; raise a clear error if it is missing or not ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path=path, hint="pass a .pt file from RUN/checkpoints/")
    _check_crc(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(f"cannot read checkpoint ({type(exc).__name__}: {exc})", path=path,
                              hint="the file is truncated or not a tissuebert checkpoint") from None
    if not isinstance(state, dict):
        raise CheckpointError("not a tissuebert checkpoint (not a dict)", path=path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"not a tissuebert checkpoint: lacks {', '.join(missing)}", path=path)
    return state


def _check_crc(path: Path) -> None:
    """torch.load does not check the CRC32 of the records in its zip archive: damaged tensor bytes would
    load as wrong weights. Read every record once and compare (about 1 s per GB)."""
    if not zipfile.is_zipfile(path):
        return  # truncated (torch.load then fails) or a legacy, non-zip checkpoint
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"cannot read checkpoint ({exc})", path=path,
                              hint="the file is damaged; use another checkpoint") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint is damaged: record {bad.split('/', 1)[-1]} fails its CRC check", path=path,
                              hint="the file changed after it was written; use another checkpoint")


def checkpoint_config(state: dict[str, Any], path: str | Path = "checkpoint") -> Config:
    return config_from_dict(state[CKPT.CONFIG], source=str(path))


_PANEL_ROWS = ("cpg_emb.weight", "cpg_logit.weight", "states.emission.weight", "counts.tally")


def model_from_checkpoint(state: dict[str, Any], path: str | Path = "checkpoint") -> TissueBERT:
    """Rebuild the model from the checkpoint's config and load its weights (eval mode)."""
    config = checkpoint_config(state, path)
    weights = state[CKPT.MODEL]
    # a panel-bound model carries its panel layout as buffers: rebuild it from them
    panel = None
    if "panel.cpg_first" in weights:
        # every panel table has one row per (panel CpG, call) plus the padding row
        table = next((weights[k] for k in _PANEL_ROWS if k in weights), None)
        if table is None:
            raise CheckpointError(f"the checkpoint's weights hold a panel layout but none of {', '.join(_PANEL_ROWS)}",
                                  path=path, hint="it was not written by tissuebert train")
        panel = {"cpg_first": weights["panel.cpg_first"], "cpg_offsets": weights["panel.cpg_offsets"],
                 "n_cpgs": table.shape[0] // 2}
    try:
        model = build_model(config.model, len(state[CKPT.TISSUES]), panel)
    except ValueError as exc:
        raise CheckpointError(f"the checkpoint's model cannot be rebuilt: {exc}", path=path) from None
    try:
        model.load_state_dict(state[CKPT.MODEL])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(f"weights do not fit the model its config describes: {first}", path=path) from None
    return model.eval()


def check_compatible(state: dict[str, Any], *, tissues: list[str], panel_hash: str,
                     path: str | Path = "checkpoint", against: str = "store") -> None:
    """Refuse a checkpoint trained on another tissue list or panel, saying what differs."""
    ck_tissues = list(state[CKPT.TISSUES])
    if ck_tissues != list(tissues):
        only_ck = [t for t in ck_tissues if t not in tissues]
        only_other = [t for t in tissues if t not in ck_tissues]
        if only_ck or only_other:
            detail = f"only in checkpoint: {only_ck or '-'}; only in {against}: {only_other or '-'}"
        else:
            detail = "same tissues in a different order"
        raise CheckpointError(f"tissue list differs from the {against}'s ({detail})", path=path,
                              hint=f"use a checkpoint trained on this {against}")
    if state[CKPT.PANEL_HASH] != panel_hash:
        raise CheckpointError(f"panel hash {state[CKPT.PANEL_HASH]} differs from the {against}'s {panel_hash}",
                              path=path, hint="the model was trained on another region panel, reference or CpG index "
                              "(checkpoints of tissuebert <= 0.1.0 hashed panels without their CpG indices)")

"""What `train` refuses before it starts, and the run folder a failed start must not leave."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from tissuebert.constants import RUN, STORE
from tissuebert.errors import TissueBertError
from tissuebert.store.store import Store


def missing_tissue_splits(store: Store) -> dict[str, list[str]]:
    """{tissue: the splits among train/val without any sample of it}."""
    out: dict[str, list[str]] = {}
    for tissue in store.tissues:
        lacking = [split for split in ("train", "val")
                   if not any(s.tissue == tissue for s in store.samples(split))]
        if lacking:
            out[tissue] = lacking
    return out


def check_tissue_splits(store_root: str | Path) -> None:
    """A tissue without a training sample is never learned; without a validation sample it is never
    checked. Refuse, naming them, unless the user says so (--allow-missing-tissues)."""
    missing = missing_tissue_splits(Store.open(store_root))
    if missing:
        shown = "; ".join(f"{t}: no {' or '.join(splits)} sample" for t, splits in list(missing.items())[:5])
        raise TissueBertError(f"{len(missing)} tissue(s) cannot be trained and validated ({shown})",
                              path=Path(store_root) / STORE.MANIFEST,
                              hint="give each tissue a train and a val sample in the sheet and re-run prepare, "
                                   "or pass --allow-missing-tissues")


@contextlib.contextmanager
def removed_if_failed_start(out: str | Path) -> Iterator[None]:
    """Remove ``out`` if it did not exist and the run fails before its first checkpoint."""
    out = Path(out)
    existed = out.exists()
    try:
        yield
    except BaseException:
        checkpoints = out / RUN.CHECKPOINTS
        if not existed and out.is_dir() and not any(checkpoints.glob("*.pt")):
            shutil.rmtree(out, ignore_errors=True)
        raise


RUN_SUMMARY = "summary.json"  # RUN/summary.json: final validation metrics, chance level, warnings
CHANCE_MARGIN = 0.01  # "within a point of chance"


def end_of_run_warnings(metrics: dict, n_tissues: int) -> list[str]:
    """Sentences on a finished run's final validation metrics: a balanced accuracy within a point of
    chance (1 / tissues) means the model learned (almost) nothing."""
    chance = 1.0 / n_tissues
    balanced = metrics.get("balanced_accuracy")
    if balanced is not None and balanced <= chance + CHANCE_MARGIN:
        return [f"validation balanced accuracy {balanced:.4f} is within a point of chance (1/{n_tissues} = "
                f"{chance:.4f}): the model has learned (almost) nothing; train longer, check the learning rate "
                f"(`tissuebert lr-find`), or check that the store's labels carry signal"]
    return []


def write_run_summary(run_dir: str | Path, metrics: dict, n_tissues: int) -> list[str]:
    """Write RUN/summary.json (metrics, chance level, warnings); returns the warnings."""
    import json
    import math

    from tissuebert import __version__
    from tissuebert.atomic import atomic_write_text

    warnings = end_of_run_warnings(metrics, n_tissues)
    plain = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) and
             not (isinstance(v, float) and not math.isfinite(v))}
    summary = {"version": __version__, "validation": plain, "n_tissues": n_tissues,
               "chance_accuracy": 1.0 / n_tissues, "warnings": warnings}
    atomic_write_text(Path(run_dir) / RUN_SUMMARY, json.dumps(summary, indent=2) + "\n")
    return warnings

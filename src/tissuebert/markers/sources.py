"""Where markers reads its training samples: a sample sheet of .pat/.beta files, or a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissuebert.errors import InputFormatError
from tissuebert.markers.blocks import Blocks
from tissuebert.markers.run import COUNTING_FORMATS, TRAIN, SampleInput


def sheet_samples(sheet: str | Path, tissue_map: str | Path | None) -> tuple[list[str], list[SampleInput]]:
    """Training rows of a sample sheet (other splits are never read); classes = all training classes."""
    from tissuebert.io.sheet import read_sheet, read_tissue_map

    mapping = read_tissue_map(tissue_map) if tissue_map is not None else None
    rows = read_sheet(sheet, mapping, map_path=tissue_map)
    train = [r for r in rows if r.split == TRAIN]
    if not train:
        raise InputFormatError("the sample sheet has no training samples (split 'train')", path=sheet,
                               hint="markers is selected on the training split only")
    for row in train:
        if row.format not in COUNTING_FORMATS:
            raise InputFormatError(f"sample {row.sample_id!r} is {row.format!r}; markers reads .pat and .beta files "
                                   "(or a store: --store)", path=sheet, line=row.line,
                                   hint="prepare a store from these files and run markers --store on it")
    classes = sorted({r.tissue for r in train})
    return classes, [SampleInput(r.sample_id, classes.index(r.tissue), r.path, r.format) for r in train]


def store_samples(root: str | Path) -> tuple[list[str], list[SampleInput], Blocks]:
    """A store's training samples; the candidate blocks are its panel windows."""
    from tissuebert.constants import WINDOW_BP
    from tissuebert.store.store import Store

    store = Store.open(root)
    train = store.samples(TRAIN)
    if not train:
        raise InputFormatError("the store has no training samples", path=root)
    classes = sorted({s.tissue for s in train})
    samples = [SampleInput(s.sample_id, classes.index(s.tissue), Path(root) / s.file, "store") for s in train]
    panel = store.panel
    n_cpgs = panel.n_cpgs
    first = np.zeros(panel.n_windows, dtype=np.int64)
    has = n_cpgs > 0
    first[has] = panel.cpg_index[panel.cpg_ptr[:-1][has]]
    start = np.asarray(panel.win_start, dtype=np.int64)
    blocks = Blocks(list(panel.chroms), np.asarray(panel.win_chrom, dtype=np.int32), start, start + WINDOW_BP, first,
                    np.where(has, first + n_cpgs, 0))
    return classes, samples, blocks

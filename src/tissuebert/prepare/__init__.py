"""prepare: input files -> panel + per-sample reads -> store."""

from tissuebert.prepare.build import assemble_store, prepare_store, skipped_samples
from tissuebert.prepare.panel import build_panel, panel_from_coordinates, tile_region
from tissuebert.prepare.project import PanelIndex, WindowReads
from tissuebert.prepare.reads import ReadFilters, read_sample_windows

__all__ = ["PanelIndex", "ReadFilters", "WindowReads", "assemble_store", "build_panel", "panel_from_coordinates",
           "prepare_store", "read_sample_windows", "skipped_samples", "tile_region"]

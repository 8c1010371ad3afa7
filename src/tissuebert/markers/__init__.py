"""Marker selection: tissue-informative blocks from the training split (`tissuebert markers`)."""

from tissuebert.markers.blocks import Blocks, read_blocks, tile_blocks
from tissuebert.markers.counts import COUNT_COLUMNS, FragmentRule, count_beta, count_pat
from tissuebert.markers.output import BED_COLUMNS, read_selection
from tissuebert.markers.run import SampleInput, assemble, read_groups, run_markers
from tissuebert.markers.select import DIRECTIONS, SelectRule, Target

__all__ = ["BED_COLUMNS", "Blocks", "COUNT_COLUMNS", "DIRECTIONS", "FragmentRule", "SampleInput", "SelectRule",
           "Target", "assemble", "count_beta", "count_pat", "read_blocks", "read_groups", "read_selection",
           "run_markers", "tile_blocks"]

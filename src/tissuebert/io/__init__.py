"""io: readers of the input formats (FASTA, region BED, CpG index, sample sheet, .pat, BAMs,
per-CpG count tables). They parse and validate; projecting reads onto windows is prepare's job."""

from tissuebert.io.bed import Region, read_regions
from tissuebert.io.cpg_index import load_cpg_index
from tissuebert.io.fasta import Reference, naming_hint
from tissuebert.io.pat import format_pat_line, iter_pat, pattern_codes
from tissuebert.io.sheet import SheetRow, read_sheet, read_tissue_map, tissue_list

__all__ = ["Reference", "Region", "SheetRow", "format_pat_line", "iter_pat", "load_cpg_index", "naming_hint",
           "pattern_codes", "read_regions", "read_sheet", "read_tissue_map", "tissue_list"]

"""BAM inputs -> ordinal reads -> :class:`Projector`.

Reads are fetched window cluster by window cluster through the BAM index, so memory holds one
cluster's fragments at a time. Mates of a pair fetched together are merged into one fragment
(a CpG both mates call differently becomes 'no call').
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pysam

from tissuebert.constants import METH_NONE
from tissuebert.errors import InputFormatError
from tissuebert.io.bam import bisulfite_calls, modification_calls, open_bam
from tissuebert.io.bam_index import check_bai_matches
from tissuebert.io.fasta import naming_hint
from tissuebert.prepare.project import PanelIndex, Projector

BATCH = 20000  # fragments projected per vectorised batch


def filter_reason(read: pysam.AlignedSegment, filters) -> str | None:
    """Why an alignment is dropped (None if kept); defaults follow wgbs_tools bam2pat."""
    if read.is_unmapped:
        return "unmapped"
    if filters.drop_secondary and read.is_secondary:
        return "secondary"
    if filters.drop_supplementary and read.is_supplementary:
        return "supplementary"
    if filters.drop_duplicates and read.is_duplicate:
        return "duplicate"
    if filters.drop_qcfail and read.is_qcfail:
        return "qcfail"
    if read.mapping_quality < filters.min_mapq:
        return "low_mapq"
    if filters.drop_unpaired_mates and read.is_paired and read.mate_is_unmapped:
        return "mate_unmapped"
    return None


def merge_mates(calls: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Union of the mates' calls; a CpG called differently by the two mates gets no call."""
    if len(calls) == 1:
        return calls[0]
    pos = np.concatenate([p for p, _ in calls])
    code = np.concatenate([c for _, c in calls])
    # a mate without a call at a CpG the other calls does not conflict
    called = code != METH_NONE
    uniq = np.unique(pos)
    out = np.full(uniq.shape[0], METH_NONE, dtype=np.uint8)
    for k, p in enumerate(uniq):
        values = set(code[(pos == p) & called].tolist())
        if len(values) == 1:
            out[k] = values.pop()
    return uniq, out


class _FragmentBuffer:
    """Fragments of one chromosome, each tagged with its cluster's window ranks, projected in batches."""

    def __init__(self, chrom: str, index: PanelIndex, proj: Projector) -> None:
        self.chrom, self.index, self.proj = chrom, index, proj
        self.pos: list[np.ndarray] = []
        self.code: list[np.ndarray] = []
        self.bounds: list[tuple[int, int]] = []
        self.ids: list[int] = []  # with proj.track_reads: each fragment's read id
        self.n_fragments = 0

    def add_cluster(self, fragments: dict, rank_lo: int, rank_hi: int) -> None:
        # a dict keeps its fragments in the order their first alignment came: file order
        for key, calls in fragments.items():
            pos, code = merge_mates(calls)
            if pos.size:
                self.pos.append(pos)
                self.code.append(code)
                self.bounds.append((rank_lo, rank_hi))
                if self.proj.track_reads:  # a pair's template name once; a single read's own name
                    self.ids.append(self.proj.new_read(key.split("\t", 1)[0]))
        if len(self.pos) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Turn the buffered fragments into ordinal reads (vectorised) and project them."""
        if not self.pos:
            return
        sizes = np.fromiter((p.shape[0] for p in self.pos), np.int64, len(self.pos))
        pos, code = np.concatenate(self.pos), np.concatenate(self.code)
        ords = self.index.cpg_ord[self.chrom][np.searchsorted(self.index.cpg_pos[self.chrom], pos)]
        bounds = np.cumsum(sizes) - sizes
        first = np.minimum.reduceat(ords, bounds)
        length = np.maximum.reduceat(ords, bounds) - first + 1
        ptr = np.zeros(sizes.shape[0] + 1, np.int64)
        np.cumsum(length, out=ptr[1:])
        frag = np.repeat(np.arange(sizes.shape[0]), sizes)
        flat = np.full(int(ptr[-1]), METH_NONE, dtype=np.uint8)
        flat[ptr[frag] + ords - first[frag]] = code
        ranks = np.asarray(self.bounds, np.int64)
        self.proj.add(self.chrom, first, flat, ptr, np.ones(sizes.shape[0], np.int64), ranks[:, 0], ranks[:, 1],
                      read_ids=np.asarray(self.ids, np.int64) if self.proj.track_reads else None)
        self.n_fragments += sizes.shape[0]
        self.pos, self.code, self.bounds, self.ids = [], [], [], []


# Fetching by index costs a BGZF block per cluster; below this many reads per cluster one pass
# over the chromosome is cheaper (a small BAM against a large panel).
READS_PER_FETCH = 200


def _cluster_reads(bam: pysam.AlignmentFile, chrom: str, clusters: list[tuple[int, int, int, int]], n_mapped: int,
                   buffer: _FragmentBuffer) -> Iterator[tuple[list[dict], pysam.AlignedSegment]]:
    """Yield (fragment dicts of the clusters the read overlaps, read); a finished cluster's
    fragments go to ``buffer``. Fetches each cluster, or streams the chromosome once."""
    if not clusters:
        return
    if n_mapped >= READS_PER_FETCH * len(clusters):
        for start, end, rank_lo, rank_hi in clusters:
            fragments: dict[str, list] = {}
            for read in bam.fetch(chrom, start, end):
                yield [fragments], read
            buffer.add_cluster(fragments, rank_lo, rank_hi)
        return
    ends = [c[1] for c in clusters]
    open_clusters: dict[int, dict] = {}
    for read in bam.fetch(chrom):
        read_start, read_end = read.reference_start, read.reference_end
        if read_end is None:
            continue
        if open_clusters and min(open_clusters) < len(ends) and ends[min(open_clusters)] <= read_start:
            for k in [k for k in open_clusters if ends[k] <= read_start]:  # sorted input: finished
                buffer.add_cluster(open_clusters.pop(k), clusters[k][2], clusters[k][3])
        k = bisect_right(ends, read_start)
        hits = []
        while k < len(clusters) and clusters[k][0] < read_end:
            hits.append(open_clusters.setdefault(k, {}))
            k += 1
        if hits:
            yield hits, read
    for k in sorted(open_clusters):
        buffer.add_cluster(open_clusters[k], clusters[k][2], clusters[k][3])


def _check_lengths(bam: pysam.AlignmentFile, panel, path: Path, reference) -> None:
    ref_name = Path(reference).name if reference is not None else "the reference FASTA"
    check_contig_lengths(bam, dict(zip(panel.chroms, (int(n) for n in panel.chrom_lengths))), path, ref_name)


def check_contig_lengths(bam: pysam.AlignmentFile, lengths: dict[str, int], path: Path, ref_name: str) -> None:
    """A contig of another length is another genome build, even under the same name: its
    reads would be called at positions that are not the reference's CpGs."""
    for chrom, ref_len in lengths.items():
        if chrom not in bam.references:
            continue
        bam_len = bam.get_reference_length(chrom)
        if bam_len != ref_len:
            raise InputFormatError(f"contig {chrom} is {bam_len:,} bp in the BAM header but {ref_len:,} bp in {ref_name}",
                                   path=path, hint="the BAM was aligned to another genome build: align it to "
                                   "--reference, or give the reference it was aligned to")


def read_bam(path: Path, fmt: str, index: PanelIndex, proj: Projector, *, filters, reference=None) -> dict:
    """Stream a Bismark / bwa-meth / MM-ML BAM over the panel's windows.

    Calls are made at the panel's CpGs (taken from the FASTA when the panel was built), so no
    reference is needed here; ``reference`` is accepted for symmetry with other readers.
    """
    bam = open_bam(path)
    dropped: Counter[str] = Counter()
    n_alignments = n_fragments = 0
    try:
        contigs = set(bam.references)
        panel_chroms = [c for c in index.panel.chroms if c in contigs]
        if not panel_chroms:
            example = index.panel.chroms[0]
            hint = naming_hint(example, contigs, "the BAM") or "is the BAM aligned to the same genome as --reference?"
            raise InputFormatError(f"none of the panel's chromosomes ({example}, ...) is in the BAM header", path=path,
                                   hint=hint)
        _check_lengths(bam, index.panel, path, reference)
        check_bai_matches(bam, Path(path), panel_chroms)
        saw_tags = False
        mapped = {st.contig: st.mapped for st in bam.get_index_statistics()}
        for chrom in panel_chroms:
            cpg_pos = index.cpg_pos[chrom]
            cpg_list = index.cpg_pos_list[chrom]
            buffer = _FragmentBuffer(chrom, index, proj)
            clusters = index.clusters(chrom)
            for cluster, read in _cluster_reads(bam, chrom, clusters, mapped.get(chrom, 0), buffer):
                n_alignments += 1
                reason = filter_reason(read, filters)
                if reason:
                    dropped[reason] += 1
                    continue
                if fmt == "mmml":
                    saw_tags = saw_tags or read.has_tag("MM") or read.has_tag("Mm")
                    calls = modification_calls(read, cpg_pos, filters.mod_threshold)
                else:
                    calls = bisulfite_calls(read, fmt, cpg_list)
                key = read.query_name if read.is_paired else f"{read.query_name}\t{n_alignments}"
                for fragments in cluster:
                    fragments.setdefault(key, []).append(calls)
            buffer.flush()
            n_fragments += buffer.n_fragments
        if fmt == "mmml" and n_alignments and not saw_tags:
            raise InputFormatError("no read carries MM/ML modification tags", path=path,
                                   hint="use format 'bismark' or 'bwameth' for bisulfite BAMs")
    except InputFormatError as exc:
        if exc.path is None:
            raise InputFormatError(str(exc), path=path) from None
        raise
    except (OSError, ValueError) as exc:
        raise InputFormatError(f"cannot read BAM: {exc}", path=path, hint="is the file truncated?") from None
    finally:
        try:
            bam.close()
        except OSError:  # htslib reports an earlier read error again on close; that one was raised already
            pass
    return {"alignments": n_alignments, "fragments": n_fragments, "dropped": dict(dropped)}

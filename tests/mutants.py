"""Hand-written mutants of core code, each with the tests that must turn red on it (issue 17).

Each entry is one small, realistic bug: a file, an exact source fragment and its replacement, and
the pytest node ids that must fail when the bug is in. The first eight are the bugs that once
survived the suite; the others guard neighbouring mistakes. Run from the repository root:

    python tests/mutants.py              # every mutant: apply, run its tests, expect red, restore
    python tests/mutants.py --list       # the list
    python tests/mutants.py bootstrap-90 # some of them, by name

It edits the source files in place and always restores them (even on Ctrl-C); do not run it in a
tree with uncommitted edits to these files. Exit code 0 only if every mutant was killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = "src/tissuebert/"
PROPERTY = "tests/io/test_parsers_property.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to src/tissuebert/
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    # --- the survivors of the first mutation run ---
    Mutant("pat-count-zero", "io/pat.py", "if start < 1 or count < 1:", "if start < 1 or count < 0:",
           ("tests/prepare/test_bad_input.py::test_bad_input[pat count of zero]",
            f"{PROPERTY}::test_pat_line_with_a_bad_count_is_refused")),
    Mutant("em-no-squarem", "deconvolve/em.py", "if np.isfinite(ll_ext) and ll_ext >= ll0:", "if False:",
           ("tests/deconvolve/test_deconv_em.py::test_squarem_acceleration_is_on",)),
    Mutant("bootstrap-unique-rows", "deconvolve/em.py",
           "counts = rng.multinomial(n_total, probs).astype(np.float64)",
           "counts = w * rng.multinomial(len(w), np.full(len(w), 1.0 / len(w)))",
           ("tests/deconvolve/test_deconv_em.py::test_bootstrap_width_is_the_same_for_collapsed_and_expanded_reads",)),
    Mutant("bootstrap-90", "deconvolve/em.py", "alpha = (1.0 - ci_level) / 2.0", "alpha = (1.0 - ci_level)",
           ("tests/deconvolve/test_deconv_em.py::test_bootstrap_coverage_is_near_the_nominal_level",)),
    Mutant("compat-tissue-order", "inference/checkpoint.py", "if ck_tissues != list(tissues):",
           "if sorted(ck_tissues) != sorted(tissues):",
           ("tests/train/test_checkpoint_compat.py::test_a_reordered_tissue_list_is_refused",)),
    Mutant("deconvolve-other-panel", "deconvolve/run.py", "panel_hash=panel.panel_hash(),",
           "panel_hash=model_state[CKPT.PANEL_HASH],",
           ("tests/deconvolve/test_deconv_reads.py::test_a_checkpoint_of_another_panel_is_refused",)),
    Mutant("train-ignores-precision", "train/loop.py", "with autocast_context(info.device, cfg.precision):",
           'with autocast_context(info.device, "fp32"):',
           ("tests/train/test_nonfinite_and_compat.py::test_bf16_and_fp16_on_cpu",)),
    Mutant("report-mae-as-rmse", "benchmark/report.py", "<td>{_fmt(v['rmse'])}</td>", "<td>{_fmt(v['mae'])}</td>",
           ("tests/benchmark/test_bench_report.py::test_report_columns_show_their_own_metric",)),
    # --- neighbours ---
    Mutant("bootstrap-ignores-weights", "deconvolve/em.py", "probs = w / w.sum()",
           "probs = np.full(len(w), 1.0 / len(w))",
           ("tests/deconvolve/test_deconv_em.py::test_bootstrap_width_is_the_same_for_collapsed_and_expanded_reads",)),
    Mutant("bam-bottom-edge-cpg", "io/bam.py", "lo, hi = bisect_left(cpg_pos, start - 1)", "lo, hi = bisect_left(cpg_pos, start)",
           (f"{PROPERTY}::test_edge_cpgs_of_both_strands",)),
    Mutant("bam-bottom-strand-at-the-c", "io/bam.py", "shift = 1 if bottom else 0", "shift = 0",
           (f"{PROPERTY}::test_calls_project_onto_the_cpgs_the_read_aligns",)),
    Mutant("md-deletion-lost", "io/bam.py", "ref[deletions[k_deleted]] = base", "ref[deletions[k_deleted]] = 'N'",
           (f"{PROPERTY}::test_md_rebuild_equals_the_reference",)),
    Mutant("pack-bit-order", "store/sample.py", "quads << shifts,", "quads << shifts[::-1],",
           (f"{PROPERTY}::test_call_packing_round_trip_and_layout",)),
    Mutant("pat-foreign-character", "io/pat.py", 'pattern.strip("CT.")', 'pattern.strip("CT.N")',
           (f"{PROPERTY}::test_pat_pattern_with_a_foreign_character_is_refused",)),
]


def run_mutant(mutant: Mutant) -> bool:
    """Apply, run its tests, restore. True when the tests failed (the mutant was killed)."""
    path = REPO / SRC / mutant.path
    original = path.read_text()
    if original.count(mutant.old) != 1:
        raise SystemExit(f"{mutant.name}: {mutant.old!r} occurs {original.count(mutant.old)} times in {path}; "
                         "update the mutant")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    try:
        path.write_text(original.replace(mutant.old, mutant.new))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutant.tests],
                              cwd=REPO, env=env, capture_output=True, text=True)
    finally:
        path.write_text(original)
    if proc.returncode not in (0, 1):  # 2-5: interrupted, internal or usage error, nothing collected
        raise SystemExit(f"{mutant.name}: pytest exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.returncode == 1


def main(argv: list[str]) -> int:
    if "--list" in argv:
        for m in MUTANTS:
            print(f"{m.name:28s} {m.path}: {m.old!r} -> {m.new!r}")
        return 0
    chosen = [m for m in MUTANTS if not argv or m.name in argv]
    unknown = set(argv) - {m.name for m in MUTANTS}
    if unknown:
        print(f"unknown mutant(s): {', '.join(sorted(unknown))} (see --list)", file=sys.stderr)
        return 2
    survivors = []
    for m in chosen:
        killed = run_mutant(m)
        print(f"{'killed  ' if killed else 'SURVIVED'} {m.name}", flush=True)
        if not killed:
            survivors.append(m.name)
    print(f"{len(chosen) - len(survivors)}/{len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

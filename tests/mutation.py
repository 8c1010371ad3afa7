"""`make mutation`: cosmic-ray over the core modules, one module at a time, each with the tests that
cover it; prints the share of mutants killed per module (docs/testing.md records the numbers).

    python tests/mutation.py                 # every module below
    python tests/mutation.py io/pat.py       # some, by path under src/tissuebert/
    python tests/mutation.py --list

Sessions are kept in .mutation/ (git-ignored) so an interrupted run resumes where it stopped.
cosmic-ray mutates the files in place (and restores them); run it on a clean checkout, and
expect hours on two cores (every mutant runs its test command once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".mutation"
PYTEST = f"{sys.executable} -m pytest -x -q -p no:cacheprovider"
COSMIC_RAY = str(Path(sys.executable).parent / "cosmic-ray")  # installed beside this Python (.[mutation])

# module (under src/tissuebert/) -> the tests that must kill its mutants
MODULES = {
    "io/pat.py": "tests/io/test_parsers_property.py tests/prepare/test_pat_golden.py tests/prepare/test_bad_input.py",
    "io/bam.py": "tests/io/test_parsers_property.py tests/prepare/test_bam_golden.py",
    "store/sample.py": "tests/io/test_parsers_property.py tests/store tests/core/test_core_store.py",
    "store/validate.py": "tests/store",
    "data/sampler.py": "tests/data/test_sampler.py",
    "deconvolve/em.py": "tests/deconvolve/test_deconv_em.py",
    "inference/checkpoint.py": "tests/train/test_checkpoint_compat.py tests/train/test_nonfinite_and_compat.py",
    "benchmark/metrics.py": "tests/benchmark/test_bench_metrics.py tests/benchmark/test_bench_report.py",
}


def _config(module: str, tests: str) -> Path:
    WORK.mkdir(exist_ok=True)
    name = module.replace("/", "_").removesuffix(".py")
    path = WORK / f"{name}.toml"
    path.write_text(f"""[cosmic-ray]
module-path = "src/tissuebert/{module}"
timeout = 600.0
excluded-modules = []
test-command = "{PYTEST} {tests}"

[cosmic-ray.distributor]
name = "local"
""")
    return path


def run_module(module: str, tests: str) -> tuple[int, int]:
    """(killed, total) mutants of one module."""
    config = _config(module, tests)
    session = config.with_suffix(".sqlite")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if not session.exists():
        subprocess.run([COSMIC_RAY, "init", str(config), str(session)], cwd=REPO, env=env, check=True)
    subprocess.run([COSMIC_RAY, "exec", str(config), str(session)], cwd=REPO, env=env, check=True)
    dump = subprocess.run([COSMIC_RAY, "dump", str(session)], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True).stdout
    outcomes = [json.loads(line)[1] for line in dump.splitlines() if line.strip()]
    done = [o for o in outcomes if o]
    killed = sum(1 for o in done if o.get("test_outcome") == "killed")
    return killed, len(done)


def main(argv: list[str]) -> int:
    if "--list" in argv:
        for module, tests in MODULES.items():
            print(f"{module:24s} {tests}")
        return 0
    chosen = {m: t for m, t in MODULES.items() if not argv or m in argv}
    for module, tests in chosen.items():
        killed, total = run_module(module, tests)
        print(f"{module:24s} {killed}/{total} mutants killed ({100 * killed / max(total, 1):.0f}%)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

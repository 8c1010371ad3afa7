"""Run every benchmark script in this folder and write benchmarks/RESULTS.md.

Each script prints its own measured numbers and ratios against a baseline run in the same
process; this runner records that output with the date, the machine and the command.

Usage: python benchmarks/run_all.py [--only NAME ...] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from tissuebert.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent

# (script, arguments): the order runs the cheap ones first
AUTO_START = "<!-- measured:start (written by benchmarks/run_all.py) -->"
AUTO_END = "<!-- measured:end -->"

SCRIPTS = [
    ("bench_loader.py", []),
    ("bench_prepare.py", []),
    ("bench_simulate.py", []),
    ("bench_model.py", ["--preset", "paper", "--batch", "32", "--steps", "4"]),
    ("bench_deconvolve.py", []),
    ("bench_cohort.py", []),
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores{mem}, {gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def _sections(block: str) -> dict[str, str]:
    """The measured block's per-script sections, keyed by script name ("## name" headings)."""
    out: dict[str, str] = {}
    parts = block.split("\n## ")
    for part in parts[1:]:
        name = part.split("\n", 1)[0].strip()
        out[name] = "## " + part.rstrip() + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="script names (without .py) to run; the other "
                        "scripts' sections of the measured block are kept")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    fresh: dict[str, str] = {}
    failed = 0
    for script, extra in SCRIPTS:
        name = script.removesuffix(".py")
        if args.only and name not in args.only:
            continue
        path = HERE / script
        if not path.exists():
            print(f"[bench] {script}: not present, skipped", file=sys.stderr)
            continue
        cmd = [sys.executable, str(path), *extra]
        print(f"[bench] $ {' '.join(cmd)}", file=sys.stderr)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        took = time.perf_counter() - t0
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failed += 1
            sys.stderr.write(proc.stderr[-4000:])
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        rel_cmd = " ".join(["python", f"benchmarks/{script}", *extra])
        when = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
        fresh[name] = f"## {name}\n\n`{rel_cmd}` — {status}, {took:.0f} s, {when}\n\n```text\n{proc.stdout.strip()}\n```\n"
    # read the file only now: hand edits made while the benchmarks ran are kept
    old = out.read_text() if out.exists() else ""
    has_block = AUTO_START in old and AUTO_END in old
    sections = _sections(old.split(AUTO_START, 1)[1].split(AUTO_END, 1)[0]) if has_block else {}
    sections.update(fresh)
    order = [s.removesuffix(".py") for s, _ in SCRIPTS]
    ordered = [sections[n] for n in order if n in sections] + [v for k, v in sections.items() if k not in order]
    header = ("### Latest measured run\n\nWritten by `make bench` (`python benchmarks/run_all.py`; each section "
              f"carries its own date).\n\nMachine: {machine()}.\n\n")
    body = header + "\n".join(ordered)
    # keep the hand-written analysis outside the markers; replace only the measured block
    if has_block:
        before, rest = old.split(AUTO_START, 1)
        after = rest.split(AUTO_END, 1)[1]
        text = f"{before}{AUTO_START}\n{body}\n{AUTO_END}{after}"
    else:
        text = f"{old}\n{AUTO_START}\n{body}\n{AUTO_END}\n"
    atomic_write_text(out, text)
    print(f"[bench] wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

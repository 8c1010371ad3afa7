"""`make mutation`: cosmic-ray over the core modules, one module at a time, each with the tests that
cover it; prints the share of mutants killed per module (docs/testing.md records the numbers).

    python tests/mutation.py                          # every module below, every mutant
    python tests/mutation.py io/pat.py                # some, by path under src/tissuebert/
    python tests/mutation.py --sample 150 --seed 1 deconvolve/em.py   # a seeded uniform sample
    python tests/mutation.py --report                 # re-read the sessions, run nothing
    python tests/mutation.py --rerun-survivors deconvolve/em.py   # after adding tests: survivors again
    python tests/mutation.py --list

Sessions are kept in .mutation/ (git-ignored) so an interrupted run resumes where it stopped; a
session's sample is drawn once, at its creation (delete the session to draw another).
cosmic-ray mutates the files in place (and restores them); run it on a clean checkout, and
expect hours on two cores for a full run (every mutant runs its test command once).

Outcomes, from `cosmic-ray dump` (cosmic-ray 8.x: one JSON line per work item, `[work_item, result]`,
result null while pending): `killed` (the tests failed), `timeout` (the test run passed its CPU-time
limit, 5x the clean run's, or cosmic-ray's wall-clock backstop; cosmic-ray reports both as killed;
counted as killed, shown apart), `survived`, `incompetent` (cosmic-ray could not apply the mutant or
start the test command, or the test worker was unreachable; left out of the score, shown apart),
`skipped` (not in the sample, or left out when a time-boxed run was closed). The score is
(killed + timeout) / (killed + timeout + survived); for a sample it comes with a 95% Wilson interval.
Survivors go to .mutation/survivors.tsv (module, line, column, operator, occurrence, mutated line).
The tests run in a forking worker (see "the test worker" below); a session's baseline (the clean run's
CPU time, which sets the limit) is kept beside it and reused while the test files are unchanged.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".mutation"
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "--no-header"]
COSMIC_RAY = str(Path(sys.executable).parent / "cosmic-ray")  # installed beside this Python (.[mutation])

# module (under src/tissuebert/) -> the tests that must kill its mutants (fast files first: with -x
# a mutant's run stops at the first failure, so a quick killer saves the slow tests' time)
MODULES = {
    "io/pat.py": "tests/io/test_pat_mutants.py tests/io/test_pat_index.py tests/io/test_parsers_property.py "
                 "tests/prepare/test_pat_golden.py tests/prepare/test_bad_input.py",
    "io/bam.py": "tests/io/test_bam_mutants.py tests/io/test_parsers_property.py tests/io/test_bam_real.py "
                 "tests/prepare/test_bam_golden.py tests/prepare/test_coordinates.py tests/prepare/test_bad_input.py",
    "store/sample.py": "tests/io/test_parsers_property.py tests/store tests/core/test_core_store.py",
    "store/validate.py": "tests/store",
    "data/sampler.py": "tests/data/test_sampler_mutants.py tests/data/test_sampler.py tests/data/test_sampler_split.py",
    # interval_around is tested in test_deconv_cohort; the bootstrap-coverage test (6 s) runs last
    "deconvolve/em.py": " ".join([
        "tests/deconvolve/test_em_mutants.py",
        "tests/deconvolve/test_deconv_em.py::test_em_exact_on_expected_counts_of_a_large_mixture",
        "tests/deconvolve/test_deconv_em.py::test_em_with_close_tissues_still_converges_to_the_truth",
        "tests/deconvolve/test_deconv_em.py::test_em_is_invariant_to_per_read_constants_and_matches_a_generic_optimiser",
        "tests/deconvolve/test_deconv_em.py::test_weights_equal_repeated_reads",
        "tests/deconvolve/test_deconv_em.py::test_likelihoods_from_logits_divides_out_the_training_prior",
        "tests/deconvolve/test_deconv_em.py::test_bootstrap_width_is_the_same_for_collapsed_and_expanded_reads",
        "tests/deconvolve/test_deconv_em.py::test_squarem_acceleration_is_on",
        "tests/deconvolve/test_deconv_em.py::test_bad_inputs_are_rejected",
        "tests/deconvolve/test_deconv_em.py::test_loglik_that_is_not_a_matrix_is_refused",
        "tests/deconvolve/test_deconv_em.py::test_max_iter_bounds_the_work",
        "tests/deconvolve/test_deconv_em.py::test_reads_processed_in_chunks_give_the_same_answer",
        "tests/deconvolve/test_deconv_em.py::test_weights_of_another_length_are_refused",
        "tests/deconvolve/test_deconv_em.py::test_without_an_estimate_the_interval_is_the_plain_percentiles",
        "tests/deconvolve/test_deconv_cohort.py::test_interval_around_contains_the_estimate_and_keeps_the_spread",
        "tests/deconvolve/test_deconv_em.py::test_bootstrap_coverage_is_near_the_nominal_level",
    ]),
    "inference/checkpoint.py": "tests/train/test_checkpoint_file.py tests/train/test_checkpoint_compat.py "
                               "tests/train/test_checkpoint_model.py tests/train/test_nonfinite_and_compat.py",
    "benchmark/metrics.py": "tests/benchmark/test_bench_metrics.py",  # test_bench_report stubs the metrics out
}


def _name(module: str) -> str:
    return module.replace("/", "_").removesuffix(".py")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def baseline_seconds(tests: str) -> tuple[float, float]:
    """(wall, CPU) seconds of the unmutated tests run by the worker; they must pass, or every mutant
    would read as killed."""
    start = time.monotonic()
    result = ask_worker(PYTEST_ARGS + shlex.split(tests), 3600)
    if result is None or result["rc"] != 0:
        raise SystemExit(f"the tests fail on unmutated code:\n{(result or {}).get('output', 'no worker')[-3000:]}")
    return time.monotonic() - start, result["cpu"]


# A hang is caught by a CPU-time limit (RLIMIT_CPU of the test run), not by wall time: on a machine shared with other
# jobs a niced test run can wait minutes for a core, and a wall-clock timeout would then "kill"
# mutants that were only starved. cosmic-ray's own (wall) timeout stays as a generous backstop.
CPU_LIMIT_MARK = "MUTANT-CPU-LIMIT"


def _config(module: str, tests: str, cpu_limit: int, wall_timeout: float) -> Path:
    WORK.mkdir(exist_ok=True)
    path = WORK / f"{_name(module)}.toml"
    command = shlex.join([sys.executable, str(Path(__file__).resolve()), "--client", str(cpu_limit), *PYTEST_ARGS,
                          *shlex.split(tests)])
    path.write_text(f"""[cosmic-ray]
module-path = "src/tissuebert/{module}"
timeout = {wall_timeout:.1f}
excluded-modules = []
test-command = {json.dumps(command)}

[cosmic-ray.distributor]
name = "local"
""")
    return path


# --- the test worker -------------------------------------------------------------------------
# Every mutant runs the module's tests once. A fresh `python -m pytest` spends ~3 s of CPU importing
# torch, scipy, matplotlib and torchmetrics before the first test; on two shared cores that is most
# of the cost. The worker imports those third-party libraries once and forks a child per mutant;
# the child imports tissuebert (the mutated source, never imported by the worker) and the tests
# afresh and runs pytest.main. The test command cosmic-ray runs is the small client below.
WORKER_DOWN_MARK = "MUTANT-WORKER-DOWN"
_PRELOAD = ("numpy", "scipy.optimize", "scipy.stats", "scipy.signal", "torch", "torchmetrics",
            "matplotlib.pyplot", "h5py", "pysam", "pytest")


def _socket_path() -> str:
    return str(WORK / "worker.sock")


def serve() -> int:
    """The worker: preload, then one forked pytest run per request, one request at a time."""
    import importlib
    import socket

    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.dont_write_bytecode = True  # as cosmic-ray's own runs: never a .pyc of a mutant
    for name in _PRELOAD:
        importlib.import_module(name)
    assert not any(m == "tissuebert" or m.startswith("tissuebert.") for m in sys.modules), "worker imported tissuebert"
    path = _socket_path()
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    while True:
        conn, _ = server.accept()
        with conn:
            request = json.loads(conn.makefile("r").readline())
            conn.sendall((json.dumps(_forked_pytest(request["args"], request["cpu_limit"])) + "\n").encode())


def _forked_pytest(args: list[str], cpu_limit: int) -> dict:
    import tempfile

    with tempfile.TemporaryFile() as log:
        pid = os.fork()
        if pid == 0:  # child: CPU limit, output to the log, pytest, exit with its status
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 5))
                os.chdir(REPO)
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                import pytest

                rc = int(pytest.main(args))
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(rc)
            except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the loop
                import traceback

                traceback.print_exc()
                sys.stderr.flush()
                os._exit(3)
        _, status, usage = os.wait4(pid, 0)
        log.seek(0)
        output = log.read().decode(errors="replace")[-20000:]
    cpu = usage.ru_utime + usage.ru_stime
    if os.WIFSIGNALED(status):
        return {"rc": 128 + os.WTERMSIG(status), "cpu": cpu,
                "output": f"{output}\n{CPU_LIMIT_MARK} signal {os.WTERMSIG(status)}"}
    return {"rc": os.WEXITSTATUS(status), "cpu": cpu, "output": output}


def ask_worker(args: list[str], cpu_limit: int) -> dict | None:
    """One pytest run by the worker: {rc, cpu, output}, or None when the worker cannot be reached."""
    import socket

    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(_socket_path())
    except OSError:
        return None
    try:
        with conn:
            conn.sendall((json.dumps({"args": args, "cpu_limit": cpu_limit}) + "\n").encode())
            reply = conn.makefile("r").readline()
    except OSError:  # a worker shutting down: not a test failure
        return None
    return json.loads(reply) if reply else None


def client(cpu_limit: int, args: list[str]) -> int:
    """cosmic-ray's test command: ask the worker for one pytest run; exit with its status."""
    result = ask_worker(args, cpu_limit)
    if result is None:
        print(WORKER_DOWN_MARK)
        return 1
    print(result["output"])
    return result["rc"]


def start_worker() -> subprocess.Popen | None:
    """Start the worker, or None when one already answers (started by hand: `tests/mutation.py --serve &`)."""
    if ask_worker(["--version"], 60) is not None:
        return None
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"], cwd=REPO, env=_env())
    deadline = time.monotonic() + 900
    while ask_worker(["--version"], 60) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the test worker did not start")
        time.sleep(2)
    return proc


def _mark_sample(session: Path, size: int, seed: int) -> None:
    """Keep a seeded uniform sample of `size` mutants; mark the rest skipped (cosmic-ray's filters do the same)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        items = sorted(db.pending_work_items,
                       key=lambda w: (w.mutations[0].operator_name, w.mutations[0].occurrence))
        if size >= len(items):
            return
        keep = {w.job_id for w in random.Random(seed).sample(items, size)}
        db.set_multiple_results([w.job_id for w in items if w.job_id not in keep],
                                WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


EQUIVALENT_MARK = "equivalent: function-signature annotation"


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) (line, column) of every function parameter and return annotation in `source`.

    A module with `from __future__ import annotations` never evaluates them: a mutant inside one
    (`str | None` made `str - None`) is equivalent by construction, and the suite cannot kill it.
    Empty for a module without that import (its annotations run at definition time)."""
    import ast

    tree = ast.parse(source)
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                 any(a.name == "annotations" for a in n.names) for n in tree.body)
    if not future:
        return []
    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        a = node.args
        notes = [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg)
                 if x is not None and x.annotation is not None]
        for n in [*notes, node.returns]:
            if n is not None:
                spans.append(((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)))
    return spans


def _mark_equivalent(session: Path, source: Path) -> int:
    """Mark the mutants inside signature annotations skipped, with EQUIVALENT_MARK; how many."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans = annotation_spans(source.read_text())
    with use_db(str(session), WorkDB.Mode.open) as db:
        inside = [w.job_id for w in db.pending_work_items
                  if any(lo <= tuple(w.mutations[0].start_pos) and tuple(w.mutations[0].end_pos) <= hi
                         for lo, hi in spans)]
        db.set_multiple_results(inside, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=EQUIVALENT_MARK))
    return len(inside)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes out of n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _mutated_line(module: str, diff: str | None) -> str:
    for line in (diff or "").splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            return line[1:].strip()
    return ""


def read_session(module: str) -> dict:
    """Counts of one module's session, from `cosmic-ray dump`, and its survivors."""
    session = WORK / f"{_name(module)}.sqlite"
    dump = subprocess.run([COSMIC_RAY, "dump", str(session)], cwd=REPO, env=_env(), check=True,
                          capture_output=True, text=True).stdout
    counts = dict(total=0, pending=0, skipped=0, equivalent=0, killed=0, timeout=0, survived=0, incompetent=0)
    survivors = []
    for line in dump.splitlines():
        if not line.strip():
            continue
        item, result = json.loads(line)
        counts["total"] += 1
        if result is None:
            counts["pending"] += 1
        elif result["worker_outcome"] == "skipped":
            counts["equivalent" if result.get("output") == EQUIVALENT_MARK else "skipped"] += 1
        elif result["test_outcome"] == "killed":
            output = result.get("output") or ""
            hung = output == "timeout" or CPU_LIMIT_MARK in output
            if WORKER_DOWN_MARK in output:
                counts["incompetent"] += 1
            else:
                counts["timeout" if hung else "killed"] += 1
        elif result["test_outcome"] == "survived":
            counts["survived"] += 1
            m = item["mutations"][0]
            survivors.append((module, m["start_pos"][0], m["start_pos"][1], m["operator_name"],
                              m["occurrence"], _mutated_line(module, result.get("diff"))))
        else:  # incompetent, or a worker that crashed before a test outcome
            counts["incompetent"] += 1
    counts["survivors"] = sorted(survivors)
    return counts


def forget_survivors(module: str) -> int:
    """Make a session's survivors pending again (so `exec` re-runs them against the current tests)."""
    import sqlite3

    with sqlite3.connect(WORK / f"{_name(module)}.sqlite") as db:
        return db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount


def _tests_key(tests: str) -> str:
    """The test command and a hash of its test files: an edited test file means a new baseline."""
    import hashlib

    digest = hashlib.sha256()
    for arg in shlex.split(tests):
        path = REPO / arg.split("::")[0]
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(f.read_bytes())
    return f"{tests} {digest.hexdigest()[:16]}"


def run_module(module: str, tests: str, sample: int | None, seed: int) -> dict:
    """Run (or resume) one module's session; its counts as read_session gives them."""
    source = f"src/tissuebert/{module}"
    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", source], cwd=REPO).returncode != 0:
        raise SystemExit(f"{source} differs from HEAD (a mutant left by an interrupted run?); restore it first")
    env = _env()
    worker = start_worker()
    try:
        saved = WORK / f"{_name(module)}.baseline.json"  # a resumed session keeps its first baseline
        if saved.exists() and json.loads(saved.read_text())["tests"] == _tests_key(tests):
            wall, cpu = json.loads(saved.read_text())["seconds"]
        else:
            wall, cpu = baseline_seconds(tests)
            saved.write_text(json.dumps({"tests": _tests_key(tests), "seconds": [wall, cpu]}))
        cpu_limit = int(max(20, 5 * cpu))  # a mutant that needs 5x the clean tests' CPU time is a hang
        config = _config(module, tests, cpu_limit, max(600.0, 20 * wall))
        session = config.with_suffix(".sqlite")
        if not session.exists():
            subprocess.run([COSMIC_RAY, "init", str(config), str(session)], cwd=REPO, env=env, check=True)
            print(f"{module}: {_mark_equivalent(session, REPO / source)} mutants inside signature annotations "
                  "left out as equivalent", flush=True)
            if sample:
                _mark_sample(session, sample, seed)
        print(f"{module}: baseline {wall:.1f} s wall, {cpu:.1f} s CPU; CPU limit {cpu_limit} s per mutant", flush=True)
        subprocess.run([COSMIC_RAY, "exec", str(config), str(session)], cwd=REPO, env=env, check=True)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait()
    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", source], cwd=REPO).returncode != 0:
        raise SystemExit(f"{source} was left mutated by cosmic-ray; restore it with git checkout")
    return read_session(module)


def summary(module: str, c: dict) -> str:
    done = c["killed"] + c["timeout"] + c["survived"]
    dead = c["killed"] + c["timeout"]
    score = 100 * dead / max(done, 1)
    text = (f"{module:22s} run {done + c['incompetent']}/{c['total']}  killed {c['killed']}  "
            f"timeout {c['timeout']}  survived {c['survived']}  incompetent {c['incompetent']}  "
            f"equivalent (annotations, not run) {c['equivalent']}  "
            f"score {score:.1f}%")
    if c["skipped"]:
        lo, hi = wilson(dead, done)
        text += f"  (sample; 95% CI {100 * lo:.1f}-{100 * hi:.1f}%)"
    if c["pending"]:
        text += f"  [{c['pending']} pending]"
    return text


def main(argv: list[str]) -> int:
    args = list(argv)
    if args[:1] == ["--serve"]:
        return serve()
    if args[:1] == ["--client"]:
        return client(int(args[1]), args[2:])
    if "--list" in args:
        for module, tests in MODULES.items():
            print(f"{module:24s} {tests}")
        return 0
    sample, seed, report_only = None, 0, False
    if "--sample" in args:
        i = args.index("--sample")
        sample = int(args[i + 1])
        del args[i:i + 2]
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    if "--report" in args:
        report_only = True
        args.remove("--report")
    rerun = "--rerun-survivors" in args
    if rerun:
        args.remove("--rerun-survivors")
    unknown = [a for a in args if a not in MODULES]
    if unknown:
        raise SystemExit(f"unknown module(s) {unknown}; see --list")
    chosen = {m: t for m, t in MODULES.items() if not args or m in args}
    WORK.mkdir(exist_ok=True)
    for module, tests in chosen.items():
        if report_only:
            if not (WORK / f"{_name(module)}.sqlite").exists():
                continue
            counts = read_session(module)
        else:
            if rerun:
                print(f"{module}: {forget_survivors(module)} survivors to run again", flush=True)
            counts = run_module(module, tests, sample, seed)
        print(summary(module, counts), flush=True)
    survivors = []  # of every session kept, not only this run's
    for module in MODULES:
        if (WORK / f"{_name(module)}.sqlite").exists():
            survivors += read_session(module)["survivors"]
    with open(WORK / "survivors.tsv", "w") as out:
        out.write("module\tline\tcolumn\toperator\toccurrence\tmutated line\n")
        for row in survivors:
            out.write("\t".join(str(x) for x in row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""benchmarks/run_all.py: the measured block of RESULTS.md is rewritten section by section."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_all(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, value in (("alpha", 1), ("beta", 2)):
        (tmp_path / f"bench_{name}.py").write_text(f"import sys\nprint('{name} rate', {value} * int(sys.argv[1]))\n")
    monkeypatch.setattr(module, "HERE", tmp_path)
    monkeypatch.setattr(module, "SCRIPTS", [("bench_alpha.py", ["10"]), ("bench_beta.py", ["10"])])
    return module


def test_only_replaces_its_own_section_and_keeps_hand_written_text(run_all, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nhand-written analysis\n")
    assert run_all.main(["--out", str(results)]) == 0
    text = results.read_text()
    assert text.startswith("# Results\n\nhand-written analysis\n")
    assert "alpha rate 10" in text and "beta rate 20" in text
    assert text.index("## bench_alpha") < text.index("## bench_beta")

    # a later --only run changes one section; the other section and the text outside stay
    run_all.SCRIPTS[1] = ("bench_beta.py", ["7"])
    results.write_text(results.read_text().replace("hand-written analysis", "edited analysis"))
    assert run_all.main(["--out", str(results), "--only", "bench_beta"]) == 0
    text = results.read_text()
    assert "edited analysis" in text
    assert "alpha rate 10" in text and "beta rate 14" in text and "beta rate 20" not in text
    assert text.count("## bench_alpha") == 1 and text.count("## bench_beta") == 1
    assert text.count(run_all.AUTO_START) == 1 and text.count(run_all.AUTO_END) == 1


def test_a_failing_script_is_recorded_and_fails_the_run(run_all, tmp_path):
    (tmp_path / "bench_beta.py").write_text("raise SystemExit(3)\n")
    results = tmp_path / "RESULTS.md"
    assert run_all.main(["--out", str(results)]) == 1
    assert "FAILED (exit 3)" in results.read_text()

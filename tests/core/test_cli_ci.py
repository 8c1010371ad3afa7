"""CI behaviour: a usage error is one line in a log; CI=1 and CI=true both mean CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ci import on_ci

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("argv, expected", [
    (["--bogus"], "No such option: --bogus (Possible options: --verbose) (see 'tissuebert --help')"),
    (["train", "--store"], "Option '--store' requires an argument."),
    (["deconvolve"], "Missing option '--out' / '-o'. (see 'tissuebert deconvolve --help')"),
])
def test_a_usage_error_is_one_line_when_not_in_a_terminal(argv, expected):
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "tissuebert", *argv], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tissuebert: error: "), proc.stderr
    assert expected in lines[0]


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("True", True), ("yes", True),
                                             ("", False), ("0", False), ("false", False)])
def test_ci_values(value, expected):
    assert on_ci({"CI": value}) is expected
    assert on_ci({}) is False

"""`--help` as users of the field expect it: on/off flags shown as flags (no ``<bool>`` type, no
``--x / --no-x`` where one plain flag is meant), required options marked, `benchmark --help`
naming its methods; old spellings still accepted."""

from __future__ import annotations

import re

import pytest

from tissuebert.cli.app import app, main
from tissuebert.deconvolve.run import METHODS

COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]
# tri-state: the default depends on the preset, so both directions are meaningful
BOTH_WAYS = {"simulate": {"--bam"}}
COMPUTES = ("train", "lr-find", "evaluate", "calibrate", "predict", "deconvolve", "benchmark", "markers", "simulate",
            "prepare")


def _help(command: str, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "250")
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_flags_are_flags(command, capsys, monkeypatch):
    text = _help(command, capsys, monkeypatch)
    assert "<bool>" not in text and "BOOLEAN" not in text
    pairs = set(re.findall(r"(--[a-z-]+)\s+--no-", text))
    assert pairs <= BOTH_WAYS.get(command, set()), pairs
    assert re.search(r"\*\s+--out\b", text) or "--out" not in text or command in ("calibrate", "demo"), \
        "--out is required where it has no default"


def test_required_options_are_marked(capsys, monkeypatch):
    text = _help("predict", capsys, monkeypatch)
    assert re.search(r"\*\s+--checkpoint", text) and re.search(r"\*\s+--out", text)
    text = _help("evaluate", capsys, monkeypatch)
    for flag in ("--checkpoint", "--store", "--out"):
        assert re.search(rf"\*\s+{flag}\b", text), flag


def test_benchmark_help_lists_its_methods(capsys, monkeypatch):
    text = " ".join(_help("benchmark", capsys, monkeypatch).split())
    for method in (*METHODS, "oracle"):
        assert method in text, method



def test_old_spellings_of_the_default_still_parse(tmp_path, capsys):
    # --logreg / --posteriors were the defaults of --x/--no-x pairs: still accepted, hidden
    assert main(["evaluate", "--logreg", "--checkpoint", str(tmp_path / "no.pt"), "--store", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2  # parsed; fails on the missing checkpoint, not the flag
    assert main(["deconvolve", "--posteriors", "--out", str(tmp_path / "o2"), str(tmp_path / "missing.pat.gz")]) == 2
    err = capsys.readouterr().err
    assert "No such option" not in err and err.count("tissuebert: error:") == 2


@pytest.mark.parametrize("command", COMPUTES)
def test_every_computing_command_takes_threads(command, capsys, monkeypatch):
    assert "--threads" in _help(command, capsys, monkeypatch)

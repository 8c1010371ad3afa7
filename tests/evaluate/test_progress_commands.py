"""Issue 13 item 4: `evaluate`, `calibrate` and `predict` report their scoring as progress lines
when there is no terminal (SLURM logs, nohup), with the count done, the total and a rate."""

from __future__ import annotations

import re

import pytest

from tests.support.loglines import collected
from tissuebert import progress
from tissuebert.cli.app import main


@pytest.mark.parametrize("command", ["evaluate", "calibrate", "predict"])
def test_scoring_commands_log_progress_without_a_terminal(tiny, tmp_path, monkeypatch, command):
    monkeypatch.setattr(progress, "progress_enabled", lambda: False)
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)  # a line at every batch
    store, ckpt = str(tiny.store.root), str(tiny.checkpoint)
    args = {
        "evaluate": ["--out", str(tmp_path / "e"), "--no-logreg", "--max-reads-per-sample", "200"],
        "calibrate": ["--out", str(tmp_path / "c.pt"), "--max-reads-per-sample", "200"],
        "predict": ["--sample", "Liver_test0", "--out", str(tmp_path / "p.tsv.gz")],
    }[command]
    with collected() as handler:
        assert main([command, "--checkpoint", ckpt, "--store", store, "--device", "cpu", *args]) == 0
    lines = [line for line in handler.lines if re.match(r"scoring [a-z ]+: \d+ / \d+ \w+ \(\d+%\)", line)]
    assert lines, handler.lines
    done, total = (int(x) for x in re.search(r": (\d+) / (\d+)", lines[-1]).groups())
    assert done == total > 0 and "/s" in lines[-1]

"""Conventions of the field (issue 13, item 5) on the tiny store: the package version in every
config.yaml / run.json / benchmark.json a command writes, ``"checkpoint": null`` (never "None"),
``--threads`` reaching torch, and `predict` rows traceable to reads."""

from __future__ import annotations

import json

import torch
import yaml

from tissuebert import __version__
from tissuebert.cli.app import main
from tissuebert.config import VERSION_KEY, load_config
from tissuebert.constants import OUT


def _config_version(path) -> str:
    data = yaml.safe_load(path.read_text())
    assert list(data)[0] == VERSION_KEY  # heads the file
    load_config(None, path)  # and a written config still loads
    return data[VERSION_KEY]


def test_version_in_every_written_config_run_and_benchmark_json(tiny, tmp_path):
    ev = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--out", str(ev),
                 "--no-logreg", "--max-reads-per-sample", "50", "--device", "cpu"]) == 0
    assert _config_version(ev / OUT.CONFIG) == __version__

    dec = tmp_path / "dec"
    assert main(["deconvolve", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root),
                 "--sample", "Blood_test0", "--bootstrap", "0", "--no-posteriors", "--device", "cpu",
                 "--out", str(dec)]) == 0
    run = json.loads((dec / OUT.RUN_INFO).read_text())
    assert run["version"] == __version__ and run["checkpoint"] == str(tiny.checkpoint)
    assert _config_version(dec / OUT.CONFIG) == __version__

    bench = tmp_path / "bench"
    assert main(["benchmark", "--checkpoint", str(tiny.checkpoint), "--store", str(tiny.store.root), "--out",
                 str(bench), "--method", "em", "--replicates", "1", "--mixtures", "1", "--depth", "2",
                 "--spike-depth", "2", "--device", "cpu"]) == 0
    assert json.loads((bench / OUT.BENCHMARK_JSON).read_text())["version"] == __version__
    assert _config_version(bench / OUT.CONFIG) == __version__


def test_checkpoint_is_json_null_without_a_checkpoint(tiny, tmp_path):
    dec = tmp_path / "dec"
    assert main(["deconvolve", "--store", str(tiny.store.root), "--sample", "Blood_test0", "--method", "nnls",
                 "--bootstrap", "0", "--out", str(dec)]) == 0
    text = (dec / OUT.RUN_INFO).read_text()
    assert json.loads(text)["checkpoint"] is None and '"None"' not in text


def test_threads_reach_torch(tiny, tmp_path):
    store, ckpt = str(tiny.store.root), str(tiny.checkpoint)
    runs = {
        "evaluate": ["--checkpoint", ckpt, "--store", store, "--out", str(tmp_path / "e"), "--no-logreg",
                     "--max-reads-per-sample", "20"],
        "calibrate": ["--checkpoint", ckpt, "--store", store, "--out", str(tmp_path / "c.pt"),
                      "--max-reads-per-sample", "20"],
        "predict": ["--checkpoint", ckpt, "--store", store, "--sample", "Liver_test0", "--out",
                    str(tmp_path / "p.tsv.gz")],
        "deconvolve": ["--checkpoint", ckpt, "--store", store, "--sample", "Liver_test0", "--bootstrap", "0",
                       "--out", str(tmp_path / "d")],
        "benchmark": ["--checkpoint", ckpt, "--store", store, "--out", str(tmp_path / "b"), "--method", "em",
                      "--replicates", "1", "--mixtures", "1", "--depth", "2", "--spike-depth", "2"],
    }
    before = torch.get_num_threads()
    try:
        for command, args in runs.items():
            torch.set_num_threads(2)
            assert main([command, *args, "--device", "cpu", "--threads", "1"]) == 0, command
            assert torch.get_num_threads() == 1, command
    finally:
        torch.set_num_threads(before)
    assert main(["evaluate", "--threads", "0", "--checkpoint", ckpt, "--store", store, "--out",
                 str(tmp_path / "e0")]) == 2  # refused, named


def test_train_threads_is_the_config_key():
    from tissuebert.cli.cmd_train import _with_threads

    assert load_config("tiny", overrides=_with_threads(["train.threads=4"], 2)).train.threads == 2
    assert load_config("tiny", overrides=_with_threads(None, None)).train.threads is None


def test_predict_out_is_a_tsv_gz_or_a_folder(tiny, tmp_path, capsys):
    store, ckpt = str(tiny.store.root), str(tiny.checkpoint)
    args = ["predict", "--checkpoint", ckpt, "--store", store, "--sample", "Liver_test0", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "p.tsv")]) == 2  # not gzipped TSV by name: refused, named
    assert "p.tsv" in capsys.readouterr().err and not (tmp_path / "p.tsv").exists()
    folder = tmp_path / "posteriors"
    folder.mkdir()
    assert main([*args, "--out", str(folder)]) == 0
    assert [p.name for p in folder.iterdir()] == ["Liver_test0.posteriors.tsv.gz"]
    assert main([*args, "--out", str(folder)]) == 2  # exists, no --force

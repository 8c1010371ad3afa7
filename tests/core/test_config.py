"""Config: presets carry the design's values; bad keys and values are rejected by name."""

from __future__ import annotations

import pytest
import yaml

from tissuebert.cli.app import main
from tissuebert.config import Config, ConfigError, config_from_dict, config_to_dict, dump_config, load_config


def test_paper_preset_holds_the_design_defaults():
    cfg = load_config("paper")
    m, t = cfg.model, cfg.train
    assert (m.n_layers, m.hidden, m.n_heads, m.ffn, m.dropout) == (6, 512, 8, 2048, 0.1)
    assert (t.batch_size, t.accum_steps, t.max_lr, t.warmup_frac) == (128, 4, 4e-4, 0.1)
    assert (t.div_factor, t.final_div_factor, t.weight_decay, t.label_smoothing, t.grad_clip) == (25, 400, 0.01, 0.1, 1.0)
    assert t.betas == (0.9, 0.999) and t.eps == 1e-8
    assert cfg.data.cpg_dropout == 0.05
    # the schedule endpoints the design quotes follow from these numbers
    assert t.max_lr / t.div_factor == pytest.approx(1.6e-5)
    assert t.max_lr / t.div_factor / t.final_div_factor == pytest.approx(4e-8)


def test_tiny_preset_is_small():
    cfg = load_config("tiny")
    assert (cfg.model.n_layers, cfg.model.hidden, cfg.model.n_heads, cfg.model.ffn) == (2, 64, 4, 256)
    assert cfg.model.n_layers < load_config("paper").model.n_layers


def test_every_field_has_a_description():
    for section in (Config, *(f.annotation for k, f in Config.model_fields.items() if k != "preset")):
        for name, field in section.model_fields.items():
            assert field.description, f"{section.__name__}.{name} lacks a description"


def test_overrides_are_typed_and_applied():
    cfg = load_config("tiny", overrides=["train.epochs=7", "train.max_lr=1e-3", "train.precision=bf16", "model.n_layers=3"])
    assert cfg.train.epochs == 7 and cfg.train.max_lr == 1e-3 and cfg.train.precision == "bf16"
    assert cfg.model.n_layers == 3


@pytest.mark.parametrize("override, key", [
    ("train.epoch=3", "train.epoch"),
    ("trian.epochs=3", "trian"),
    ("train.accum_steps=0", "train.accum_steps"),
    ("train.precision=fp8", "train.precision"),
    ("model.n_heads=5", "model.hidden"),
])
def test_bad_override_names_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config("tiny", overrides=[override])
    assert key in str(err.value)


def test_config_file_merges_over_its_preset(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("preset: paper\ntrain:\n  epochs: 3\n")
    cfg = load_config(None, path)
    assert cfg.train.epochs == 3 and cfg.model.hidden == 512 and cfg.preset == "paper"
    path.write_text("train:\n  epocs: 3\n")
    with pytest.raises(ConfigError, match="train.epocs"):
        load_config("tiny", path)


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config("paper", overrides=["train.seed=7"])
    dump_config(cfg, tmp_path / "c.yaml")
    back = config_from_dict(yaml.safe_load((tmp_path / "c.yaml").read_text()))
    assert back == cfg
    assert config_to_dict(back)["train"]["seed"] == 7


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    code = main(["train", "--store", str(tmp_path / "nostore"), "--out", str(tmp_path / "run"), "--config", str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "bad.yaml" in err and "Traceback" not in err

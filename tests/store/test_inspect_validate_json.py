"""`inspect --json` and `validate --json`: the same facts as the text, on stdout, matching the
store's manifest; a bad store gives {"ok": false} on stdout and exit 2."""

from __future__ import annotations

import json

from tests.support.tinystore import build_store
from tissuebert.cli.app import main
from tissuebert.constants import SPLITS


def test_validate_and_inspect_json_match_the_manifest(tmp_path, capsys):
    store = build_store(tmp_path / "store")
    manifest = store.manifest
    assert main(["validate", str(store.root), "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["ok"] is True and v["checksums_verified"] is True
    assert v["n_samples"] == len(manifest.samples) and v["tissues"] == list(manifest.tissues)
    assert v["n_windows"] == store.panel.n_windows and v["panel_hash"] == manifest.panel_hash
    assert v["n_reads"] == sum(s.n_reads for s in manifest.samples)

    assert main(["inspect", str(store.root), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["panel_hash"] == manifest.panel_hash and facts["min_cpgs"] == manifest.min_cpgs
    assert facts["n_reads"] == v["n_reads"]
    assert {s["sample_id"]: (s["tissue"], s["split"], s["n_reads"]) for s in facts["samples"]} == \
        {s.sample_id: (s.tissue, s.split, s.n_reads) for s in manifest.samples}
    for tissue, row in facts["samples_per_tissue_and_split"].items():
        assert sum(row[s] for s in SPLITS) == sum(1 for s in manifest.samples if s.tissue == tissue)

    assert main(["inspect", str(store.root)]) == 0  # the text shows the same facts
    text = capsys.readouterr().out
    assert f"{facts['n_samples']} samples" in text and facts["panel_hash"] in text


def test_validate_json_on_a_missing_store(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope"), "--json"]) == 2
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["ok"] is False and "not found" in out["error"]

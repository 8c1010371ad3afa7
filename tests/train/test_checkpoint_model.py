"""inference/checkpoint.py cases the mutation run (issue 17) showed untested: the model rebuilt from a
checkpoint (plain and panel-bound, and the errors when it cannot be), a save that is durable, a zip
directory that promises more bytes than the file holds, a damaged zip that is not torch's, and a panel
hash that sorts after the store's. No training: tiny models built here and saved."""

from __future__ import annotations

import dataclasses
import zipfile

import pytest
import torch

from tests.support.handpanel import HandPanel
from tests.support.trainhelpers import NO_STATES
from tissuebert import atomic
from tissuebert.config import load_config
from tissuebert.constants import CKPT, METH_NONE, N_TOKENS
from tissuebert.errors import CheckpointError
from tissuebert.inference.checkpoint import Checkpoint, check_compatible, load_checkpoint, model_from_checkpoint, save_checkpoint
from tissuebert.model.tissuebert import build_model, panel_buffers

TISSUES = ["Blood", "Liver", "Lung", "Colon"]
# the tiny preset has the count route and the fragment-state head on
PLAIN = ["model.cpg_counts=false", "model.count_weights=false", *NO_STATES]
PANEL_OVERRIDES = [*PLAIN, "model.cpg_logits=true", "model.cpg_embedding_dim=16"]
PANEL_TABLES = ("cpg_emb.weight", "cpg_logit.weight", "states.emission.weight", "counts.tally")




def _state(overrides: list[str], tissues: list[str] = TISSUES, panel=None, seed: int = 0) -> tuple[dict, torch.nn.Module]:
    config = load_config("tiny", overrides=overrides)
    torch.manual_seed(seed)
    model = build_model(config.model, len(tissues), panel).eval()
    state = {CKPT.MODEL: model.state_dict(), CKPT.CONFIG: config.model_dump(mode="json"), CKPT.TISSUES: tissues,
             CKPT.PANEL_HASH: "0123456789abcdef", CKPT.EPOCH: 1, CKPT.GLOBAL_STEP: 10}
    return state, model


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    dna = torch.randint(2, 66, (3, N_TOKENS), generator=gen)
    meth = torch.full((3, N_TOKENS), METH_NONE)
    meth[0, 3], meth[0, 100] = 1, 0
    meth[2, 0], meth[2, 7], meth[2, 147] = 1, 1, 0
    return dna, meth, torch.tensor([0, 1, 2])


@pytest.mark.parametrize("overrides, panel", [(PLAIN, None), (PANEL_OVERRIDES, panel_buffers(HandPanel())),
                                              ([], panel_buffers(HandPanel()))],
                         ids=["plain", "panel_bound", "count_route"])
def test_a_saved_model_is_rebuilt_with_the_same_weights_and_outputs(tmp_path, overrides, panel):
    state, model = _state(overrides, panel=panel)
    tables = [k for k in PANEL_TABLES if k in state[CKPT.MODEL]]
    assert bool(tables) == (panel is not None)
    if panel is not None:  # a panel-bound model: its first panel table has one row per (CpG, call) + padding
        assert state[CKPT.MODEL][tables[0]].shape[0] == 2 * 5 + 1
    with torch.no_grad():  # weights the initialisation would not give, so a fresh model cannot pass
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(tmp_path / "ck.pt", state)
    again = model_from_checkpoint(load_checkpoint(tmp_path / "ck.pt"), tmp_path / "ck.pt")
    assert not again.training
    assert again.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    with torch.no_grad():
        torch.testing.assert_close(again(*_inputs()), model(*_inputs()), rtol=0, atol=0)


def test_a_panel_layout_without_any_panel_table_is_refused():
    state, _ = _state(PANEL_OVERRIDES, panel=panel_buffers(HandPanel()))
    weights = dict(state[CKPT.MODEL])
    for key in PANEL_TABLES:
        weights.pop(key, None)
    with pytest.raises(CheckpointError, match="ck.pt: the checkpoint's weights hold a panel layout but none of "
                                              "cpg_emb.weight, cpg_logit.weight, states.emission.weight, counts.tally"):
        model_from_checkpoint({**state, CKPT.MODEL: weights}, "ck.pt")


def test_a_model_its_config_cannot_build_is_refused_with_the_reason():
    state, _ = _state(PLAIN)
    with pytest.raises(CheckpointError, match="the checkpoint's model cannot be rebuilt: n_tissues must be >= 2, got 1"):
        model_from_checkpoint({**state, CKPT.TISSUES: ["Blood"]})


def test_weights_that_do_not_fit_name_the_first_problem_only():
    state, _ = _state(PLAIN)
    weights = dict(state[CKPT.MODEL])
    gone = sorted(weights)[-1]
    del weights[gone]
    with pytest.raises(CheckpointError) as err:
        model_from_checkpoint({**state, CKPT.MODEL: weights}, "ck.pt")
    # torch's message is "Error(s) in loading state_dict for TissueBERT:\n\tMissing key(s) ...": its second line
    assert str(err.value).splitlines()[0] == (f"ck.pt: weights do not fit the model its config describes: "
                                              f'Missing key(s) in state_dict: "{gone}".')


def test_save_is_durable_it_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    synced = []
    real = atomic.fsync_path
    final = tmp_path / "ck.pt"

    def spy(path):
        synced.append((str(path), final.exists()))
        real(path)

    monkeypatch.setattr(atomic, "fsync_path", spy)
    save_checkpoint(final, {CKPT.EPOCH: 1})
    assert len(synced) == 2
    (tmp, final_then), (folder, final_after) = synced
    assert tmp != str(final) and tmp.startswith(str(tmp_path / ".ck.pt.")) and not final_then
    assert folder == str(tmp_path) and final_after


def _central_entry(raw: bytes, suffix: str) -> int:
    """Offset of the zip central-directory entry whose name ends with ``suffix``."""
    i = 0
    while True:
        i = raw.index(b"PK\x01\x02", i)
        name_len = int.from_bytes(raw[i + 28:i + 30], "little")
        if raw[i + 46:i + 46 + name_len].decode().endswith(suffix):
            return i
        i += 4


def test_a_record_longer_than_the_file_is_refused_as_damaged(tmp_path):
    # the zip directory says the tensor's record holds 100000 bytes: reading it runs off the end (EOFError)
    path = tmp_path / "long.pt"
    state, _ = _state(PLAIN)
    save_checkpoint(path, {**state, CKPT.MODEL: {"w": torch.arange(64, dtype=torch.float32)}})
    raw = bytearray(path.read_bytes())
    entry = _central_entry(raw, "data/0")
    raw[entry + 20:entry + 28] = (100000).to_bytes(4, "little") * 2  # compressed and uncompressed sizes
    path.write_bytes(bytes(raw))
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match=r"long.pt: cannot read checkpoint \(.*the file is damaged"):
        load_checkpoint(path)


def test_a_damaged_zip_that_is_not_torchs_names_its_record(tmp_path):
    # a record name without torch's "archive/" folder: the message names the whole record
    path = tmp_path / "other.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("weights.bin", bytes(range(200)))
    raw = bytearray(path.read_bytes())
    raw[30 + len("weights.bin") + 50] ^= 0xFF  # a byte of the data after the first local header
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checkpoint is damaged: record weights.bin fails its CRC check"):
        load_checkpoint(path)


@pytest.mark.parametrize("store_hash", ["0000000000000000", "ffffffffffffffff"], ids=["sorts_before", "sorts_after"])
def test_any_other_panel_hash_is_refused(store_hash):
    state = {CKPT.TISSUES: TISSUES, CKPT.PANEL_HASH: "0123456789abcdef"}
    with pytest.raises(CheckpointError, match=f"panel hash 0123456789abcdef differs from the store's {store_hash}"):
        check_compatible(state, tissues=TISSUES, panel_hash=store_hash)
    check_compatible(state, tissues=TISSUES, panel_hash="0123456789abcdef")


def test_an_equal_panel_hash_read_from_elsewhere_is_accepted():
    # a hash read from a file or computed from a store is equal to the checkpoint's, not the same object
    state = {CKPT.TISSUES: TISSUES, CKPT.PANEL_HASH: "0123456789abcdef"}
    computed = "".join(["0123456789", "abcdef"])
    assert computed is not state[CKPT.PANEL_HASH]
    check_compatible(state, tissues=list(TISSUES), panel_hash=computed)


def test_checkpoint_of_a_path_a_dict_or_a_checkpoint(tmp_path):
    state, _ = _state(PLAIN)
    save_checkpoint(tmp_path / "ck.pt", state)
    loaded = Checkpoint.of(tmp_path / "ck.pt")
    assert loaded.name == str(tmp_path / "ck.pt") and loaded.tissues == TISSUES
    assert loaded.panel_hash == "0123456789abcdef" and loaded.state[CKPT.EPOCH] == 1
    assert Checkpoint.of(loaded) is loaded
    wrapped = Checkpoint.of(state, "given.pt")
    assert wrapped.state is state and wrapped.name == "given.pt"
    assert Checkpoint.of(state).name == "checkpoint"


def test_a_checkpoint_is_frozen_so_its_cached_config_cannot_go_stale():
    state, _ = _state(PLAIN)
    ck = Checkpoint(state, "ck.pt")
    assert ck.config.model.cpg_counts is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        ck.state = {}

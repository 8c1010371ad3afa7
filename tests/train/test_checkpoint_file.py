"""The checkpoint file itself: save adds the version and round-trips; load refuses a missing, foreign,
incomplete, truncated or bit-flipped file with the message that says which (no training needed)."""

from __future__ import annotations

import zipfile

import pytest
import torch

from tissuebert import __version__
from tissuebert.constants import CKPT
from tissuebert.errors import CheckpointError
from tissuebert.inference.checkpoint import REQUIRED_KEYS, load_checkpoint, save_checkpoint


def _state() -> dict:
    return {CKPT.MODEL: {"w": torch.arange(64, dtype=torch.float32)}, CKPT.CONFIG: {"preset": "tiny"},
            CKPT.TISSUES: ["Blood", "Liver"], CKPT.PANEL_HASH: "0123456789abcdef", CKPT.EPOCH: 3,
            CKPT.GLOBAL_STEP: 120}


def test_save_then_load_round_trips_and_adds_the_version(tmp_path):
    path = tmp_path / "ck.pt"
    state = _state()
    calls = []
    save_checkpoint(path, state, before_rename=lambda: calls.append(path.exists()))
    assert calls == [False]  # the hook runs once, before the file takes its name
    assert CKPT.VERSION not in state  # the caller's dict is left alone
    loaded = load_checkpoint(path)
    assert loaded[CKPT.VERSION] == __version__
    assert loaded[CKPT.EPOCH] == 3 and loaded[CKPT.GLOBAL_STEP] == 120 and loaded[CKPT.TISSUES] == ["Blood", "Liver"]
    assert torch.equal(loaded[CKPT.MODEL]["w"], torch.arange(64, dtype=torch.float32))


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_a_file_that_is_not_a_dict_is_refused(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match=r"not a tissuebert checkpoint \(not a dict\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("drop", [[CKPT.MODEL], [CKPT.EPOCH, CKPT.GLOBAL_STEP], list(REQUIRED_KEYS)])
def test_a_dict_without_the_required_keys_names_exactly_those_missing(tmp_path, drop):
    path = tmp_path / "part.pt"
    torch.save({k: v for k, v in _state().items() if k not in drop}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value).split("lacks ")[1] == ", ".join(k for k in REQUIRED_KEYS if k in drop)


def test_required_keys_are_the_six_the_loaders_read():
    assert set(REQUIRED_KEYS) == {CKPT.MODEL, CKPT.CONFIG, CKPT.TISSUES, CKPT.PANEL_HASH, CKPT.EPOCH,
                                  CKPT.GLOBAL_STEP}


def test_a_truncated_file_is_refused_as_unreadable(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint(path, _state())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_a_flipped_byte_in_the_weights_fails_the_crc_check(tmp_path):
    path = tmp_path / "flip.pt"
    save_checkpoint(path, _state())
    with zipfile.ZipFile(path) as archive:  # the tensor's record: stored uncompressed, at a known offset
        info = next(i for i in archive.infolist() if i.filename.split("/")[-2:] == ["data", "0"])
    raw = bytearray(path.read_bytes())
    local = info.header_offset  # local file header: 30 bytes, then the name and extra fields it states
    name_len, extra_len = (int.from_bytes(raw[local + 26:local + 28], "little"),
                           int.from_bytes(raw[local + 28:local + 30], "little"))
    data_start = local + 30 + name_len + extra_len
    raw[data_start + 10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="record data/0 fails its CRC check"):
        load_checkpoint(path)

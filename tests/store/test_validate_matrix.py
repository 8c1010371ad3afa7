"""A corruption matrix for `validate`: one damaged copy of a small prepared store per check of
store/validate.py (and of the manifest / panel readers it calls first); each must be refused with
the message of that check, not of another. Structural cases run without checksums, so the check
under test (not the sha256 one) is the first to see the damage.

Each inequality check is damaged in both directions (more and fewer windows, a CpG offset at and
far past the window, a recorded digest that sorts before and after the file's), and each message
is matched up to its numbers: a cosmic-ray run on store/validate.py (issue 17, docs/testing.md)
found ``!=`` -> ``<`` or ``>``, ``>=`` -> ``==``, ``diff < 0`` -> ``< -1`` and the expected
``window_ptr`` shape in the message surviving a matrix that damaged one direction only; the cases
added for them ("..., fewer", "... far past ...", "... sorts last", "dips by one", "two slots
beyond", "cpg_ptr too short" / "from -1", "calls dtype int8") were each checked against the
mutant, applied by hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.support.tiny import write_tiny
from tissuebert.cli.app import main
from tissuebert.constants import DNA_VOCAB, N_TOKENS, STORE
from tissuebert.errors import StoreError
from tissuebert.store.panel import read_panel
from tissuebert.store.validate import validate_store


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    from tissuebert.prepare import prepare_store

    root = tmp_path_factory.mktemp("validate")
    files = write_tiny(root / "in")
    return prepare_store(files["sheet"], files["reference"], files["regions"], root / "store",
                         cpg_index=files["cpg_index"])


def _manifest(store: Path, edit) -> None:
    path = store / STORE.MANIFEST
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _sample_file(store: Path) -> Path:
    return store / json.loads((store / STORE.MANIFEST).read_text())["samples"][0]["file"]


def _h5(path: Path, key: str, edit) -> None:
    """Replace dataset ``key`` by ``edit(values)`` (None deletes it)."""
    with h5py.File(path, "r+") as f:
        values = f[key][()]
        del f[key]
        new = edit(values)
        if new is not None:
            f.create_dataset(key, data=new)


def _panel(store: Path, key: str, edit) -> None:
    _h5(store / STORE.PANEL, key, edit)


def _sample(store: Path, key: str, edit) -> None:
    _h5(_sample_file(store), key, edit)


def _set(values, index, value):
    values = values.copy()
    values[index] = value
    return values


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:600])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _legacy_hash(store: Path) -> None:
    legacy = read_panel(store / STORE.PANEL).legacy_hash()
    _manifest(store, lambda d: d.update(panel_hash=legacy))


def _call_beyond_the_window(store: Path, gap: int = 0) -> None:
    # a U call in the last slot of a read whose window ends more than ``gap`` slots before it (the
    # ``gap`` slots right after the window's CpGs stay 'no call')
    panel = read_panel(store / STORE.PANEL)
    with h5py.File(_sample_file(store), "r+") as f:
        windows = f[STORE.READ_WINDOW][()]
        calls = f[STORE.CALLS][()]
        slots = calls.shape[1] * 4
        row = int(np.flatnonzero(panel.n_cpgs[windows] < slots - gap)[0])
        calls[row, -1] = calls[row, -1] & 0b00111111  # slot 3 of the last byte: 2 (no call) -> 0 (U)
        f[STORE.CALLS][...] = calls


def _duplicate_sample(data) -> None:
    data["samples"].append(dict(data["samples"][0]))


# name: (corruption of the store folder, verify checksums, expected message fragment)
CASES = {
    # manifest (read_manifest)
    "no store": (lambda s: shutil.rmtree(s), False, "store not found"),
    "no manifest": (lambda s: (s / STORE.MANIFEST).unlink(), False, "no manifest.json in store"),
    "manifest not json": (lambda s: (s / STORE.MANIFEST).write_text("{"), False, "manifest is not valid JSON"),
    "schema version": (lambda s: _manifest(s, lambda d: d.update(schema_version=999)), False,
                       "store schema version 999"),
    "manifest key missing": (lambda s: _manifest(s, lambda d: d.pop("panel_sha256")), False,
                             "manifest lacks key 'panel_sha256'"),
    "sample record key missing": (lambda s: _manifest(s, lambda d: d["samples"][0].pop("sha256")), False,
                                  "sample record lacks sha256"),
    # panel (read_panel, checksum, _check_panel)
    "panel missing": (lambda s: (s / STORE.PANEL).unlink(), False, "panel file missing"),
    "panel dataset missing": (lambda s: _panel(s, STORE.CPG_INDEX, lambda v: None), False,
                              "dataset 'cpg_index' missing"),
    "panel truncated": (lambda s: _truncate(s / STORE.PANEL), False, "cannot read panel"),
    "panel checksum": (lambda s: _manifest(s, lambda d: d.update(panel_sha256="0" * 64)), True,
                       "panel.h5 checksum differs from the manifest"),
    "panel window count": (lambda s: _manifest(s, lambda d: d.update(n_windows=4)), False,
                           "panel has 3 windows, manifest says 4"),
    "panel window count, fewer": (lambda s: _manifest(s, lambda d: d.update(n_windows=2)), False,
                                  "panel has 3 windows, manifest says 2"),
    "dna dtype": (lambda s: _panel(s, STORE.DNA, lambda v: v.astype(np.int16)), False,
                  f"dna_tokens must be uint8 (3, {N_TOKENS}), got int16"),
    "dna dtype int8": (lambda s: _panel(s, STORE.DNA, lambda v: v.astype(np.int8)), False,
                       f"dna_tokens must be uint8 (3, {N_TOKENS}), got int8"),
    "dna shape, wider": (lambda s: _panel(s, STORE.DNA, lambda v: np.pad(v, ((0, 0), (0, 1)))), False,
                         "dna_tokens must be uint8"),
    "dna token far out of vocabulary": (lambda s: _panel(s, STORE.DNA, lambda v: _set(v, (0, 0), DNA_VOCAB + 3)),
                                        False, f"dna_tokens hold a value >= vocabulary size {DNA_VOCAB}"),
    "dna shape": (lambda s: _panel(s, STORE.DNA, lambda v: v[:, :-1]), False, "dna_tokens must be uint8"),
    "dna token out of vocabulary": (lambda s: _panel(s, STORE.DNA, lambda v: _set(v, (0, 0), DNA_VOCAB)), False,
                                    f"dna_tokens hold a value >= vocabulary size {DNA_VOCAB}"),
    "cpg_ptr not monotone": (lambda s: _panel(s, STORE.CPG_PTR, lambda v: _set(v, 1, v[-1] + 1)), False,
                             "cpg_ptr is not a monotone"),
    "cpg_ptr too long": (lambda s: _panel(s, STORE.CPG_PTR, lambda v: np.append(v, v[-1])), False,
                         "cpg_ptr is not a monotone"),
    "cpg_ptr dips by one": (lambda s: _panel(s, STORE.CPG_PTR, lambda v: _set(v, 1, v[2] + 1)), False,
                            "cpg_ptr is not a monotone"),
    "cpg_offset and cpg_index longer than cpg_ptr": (
        lambda s: (_panel(s, STORE.CPG_INDEX, lambda v: np.append(v, v[-1])),
                   _panel(s, STORE.CPG_OFFSET, lambda v: np.append(v, v[-1]))), False,
        "cpg_offset / cpg_index lengths disagree with cpg_ptr"),
    "cpg_index longer than cpg_offset": (lambda s: _panel(s, STORE.CPG_INDEX, lambda v: np.append(v, v[-1])), False,
                                         "cpg_offset / cpg_index lengths disagree with cpg_ptr"),
    "cpg_ptr too short": (lambda s: _panel(s, STORE.CPG_PTR, lambda v: v[:-1]), False, "cpg_ptr is not a monotone"),
    "cpg_ptr from -1": (lambda s: _panel(s, STORE.CPG_PTR, lambda v: _set(v.astype(np.int64), 0, -1)), False,
                        "cpg_ptr is not a monotone"),
    "cpg_offset and cpg_index shorter than cpg_ptr": (
        lambda s: (_panel(s, STORE.CPG_INDEX, lambda v: v[:-1]), _panel(s, STORE.CPG_OFFSET, lambda v: v[:-1])), False,
        "cpg_offset / cpg_index lengths disagree with cpg_ptr"),
    "cpg offset far past the window": (lambda s: _panel(s, STORE.CPG_OFFSET, lambda v: _set(v, 0, N_TOKENS + 7)),
                                       False, f"a CpG offset is >= {N_TOKENS}"),
    "cpg_ptr not from 0": (lambda s: _panel(s, STORE.CPG_PTR, lambda v: _set(v, 0, 1)), False,
                           "cpg_ptr is not a monotone"),
    "cpg_index length": (lambda s: _panel(s, STORE.CPG_INDEX, lambda v: v[:-1]), False,
                         "cpg_offset / cpg_index lengths disagree with cpg_ptr"),
    "cpg offset past the window": (lambda s: _panel(s, STORE.CPG_OFFSET, lambda v: _set(v, 0, N_TOKENS)), False,
                                   f"a CpG offset is >= {N_TOKENS}"),
    "max_cpgs": (lambda s: _manifest(s, lambda d: d.update(max_cpgs=d["max_cpgs"] + 1)), False,
                 "panel max_cpgs / call_bytes disagree with the manifest"),
    "max_cpgs, fewer": (lambda s: _manifest(s, lambda d: d.update(max_cpgs=d["max_cpgs"] - 1)), False,
                        "panel max_cpgs / call_bytes disagree with the manifest"),
    "call_bytes, more": (lambda s: _manifest(s, lambda d: d.update(call_bytes=d["call_bytes"] + 1)), False,
                         "panel max_cpgs / call_bytes disagree with the manifest"),
    "call_bytes, fewer": (lambda s: _manifest(s, lambda d: d.update(call_bytes=d["call_bytes"] - 1)), False,
                          "panel max_cpgs / call_bytes disagree with the manifest"),
    "panel checksum that sorts last": (lambda s: _manifest(s, lambda d: d.update(panel_sha256="f" * 64)), True,
                                       "panel.h5 checksum differs from the manifest"),
    "legacy panel hash": (_legacy_hash, False, "store made by tissuebert <= 0.1.0"),
    "panel hash": (lambda s: _manifest(s, lambda d: d.update(panel_hash="0" * 16)), False,
                   "differs from the manifest's 0000000000000000"),
    "panel hash that sorts last": (lambda s: _manifest(s, lambda d: d.update(panel_hash="f" * 16)), False,
                                   "differs from the manifest's ffffffffffffffff"),
    # manifest contents (validate_store)
    "no tissues": (lambda s: _manifest(s, lambda d: d.update(tissues=[])), False, "manifest lists no tissues"),
    "duplicate sample": (lambda s: _manifest(s, _duplicate_sample), False, "duplicate sample id 's1'"),
    # samples (_check_sample)
    "sample file missing": (lambda s: _sample_file(s).unlink(), False, "sample 's1': file missing"),
    "bad split": (lambda s: _manifest(s, lambda d: d["samples"][0].update(split="training")), False,
                  "split 'training' not one of"),
    "tissue name": (lambda s: _manifest(s, lambda d: d["samples"][0].update(tissue="lung")), False,
                    "tissue 'lung' / id 0 do not match the tissue list"),
    "tissue id": (lambda s: _manifest(s, lambda d: d["samples"][0].update(tissue_id=3)), False,
                  "tissue 'liver' / id 3 do not match the tissue list"),
    "tissue id -1": (lambda s: _manifest(s, lambda d: d["samples"][0].update(tissue_id=-1)), False,
                     "tissue 'liver' / id -1 do not match the tissue list"),
    "tissue id one past the list": (lambda s: _manifest(s, lambda d: d["samples"][0].update(tissue_id=1)), False,
                                    "tissue 'liver' / id 1 do not match the tissue list"),
    "tissue name that sorts first": (lambda s: _manifest(s, lambda d: d["samples"][0].update(tissue="blood")), False,
                                     "tissue 'blood' / id 0 do not match the tissue list"),
    "sample checksum": (lambda s: _flip_last_byte(_sample_file(s)), True, "checksum mismatch"),
    "sample checksum that sorts last": (lambda s: _manifest(s, lambda d: d["samples"][0].update(sha256="f" * 64)),
                                        True, "checksum mismatch (manifest ffffffffffff..."),
    "sample truncated": (lambda s: _truncate(_sample_file(s)), False, "cannot read sample 's1'"),
    "sample dataset missing": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: None), False,
                               "dataset 'reads/window_ptr' missing"),
    "read count": (lambda s: _manifest(s, lambda d: d["samples"][0].update(n_reads=8)), False,
                   "holds 7 reads, manifest says 8"),
    "read count, fewer": (lambda s: _manifest(s, lambda d: d["samples"][0].update(n_reads=6)), False,
                          "holds 7 reads, manifest says 6"),
    "window_idx dtype uint16": (lambda s: _sample(s, STORE.READ_WINDOW, lambda v: v.astype(np.uint16)), False,
                                "dtypes must be uint32 window_idx / uint8 calls, got uint16 / uint8"),
    "calls, fewer rows": (lambda s: _sample(s, STORE.CALLS, lambda v: v[:-1]), False, "calls shape (6, 1), expected (7, 1)"),
    "window_idx dtype": (lambda s: _sample(s, STORE.READ_WINDOW, lambda v: v.astype(np.int64)), False,
                         "dtypes must be uint32 window_idx / uint8 calls, got int64 / uint8"),
    "calls dtype": (lambda s: _sample(s, STORE.CALLS, lambda v: v.astype(np.uint16)), False,
                    "got uint32 / uint16"),
    "calls dtype int8": (lambda s: _sample(s, STORE.CALLS, lambda v: v.astype(np.int8)), False, "got uint32 / int8"),
    "calls shape": (lambda s: _sample(s, STORE.CALLS, lambda v: np.pad(v, ((0, 0), (0, 1)))), False,
                    "calls shape (7, "),
    "window_ptr shape": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: v[:-1]), False,
                         "window_ptr shape (3,), expected (4,)"),
    "window_ptr too long": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: np.append(v, v[-1])), False,
                            "window_ptr shape (5,), expected (4,)"),
    "window_ptr from -1": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: _set(v.astype(np.int64), 0, -1)), False,
                           "window_ptr is not a monotone offset array"),
    "window_ptr from 1": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: _set(v, 0, 1)), False,
                          "window_ptr is not a monotone offset array"),
    "window_ptr not monotone": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: _set(v, 1, v[-1] + 1)), False,
                                "window_ptr is not a monotone offset array"),
    "window_ptr total": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: _set(v, -1, v[-1] - 1)), False,
                         "window_ptr is not a monotone offset array"),
    "window_ptr total, more": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: _set(v, -1, v[-1] + 1)), False,
                               "window_ptr is not a monotone offset array"),
    "window_ptr dips by one": (lambda s: _sample(s, STORE.WINDOW_PTR, lambda v: _set(v, 1, v[2] + 1)), False,
                               "window_ptr is not a monotone offset array"),
    "window_idx far out of range": (lambda s: _sample(s, STORE.READ_WINDOW, lambda v: _set(v, -1, 8)), False,
                                    "window_idx out of range or not sorted"),
    "window_idx out of range": (lambda s: _sample(s, STORE.READ_WINDOW, lambda v: _set(v, -1, 3)), False,
                                "window_idx out of range or not sorted"),
    "window_idx dips by one": (lambda s: _sample(s, STORE.READ_WINDOW, lambda v: _set(_set(v, 2, 1), 3, 0)), False,
                               "window_idx out of range or not sorted"),
    "window_idx unsorted": (lambda s: _sample(s, STORE.READ_WINDOW, lambda v: v[::-1].copy()), False,
                            "window_idx out of range or not sorted"),
    "reserved call code": (lambda s: _sample(s, STORE.CALLS, lambda v: _set(v, (0, 0), 0xFF)), False,
                           "calls hold the reserved 2-bit code 3"),
    "reserved call code in the last read": (lambda s: _sample(s, STORE.CALLS, lambda v: _set(v, (-1, 0), 0xFF)), False,
                                            "calls hold the reserved 2-bit code 3"),
    "call beyond the window's CpGs": (_call_beyond_the_window, False, "a read has calls beyond its window's CpGs"),
    "call two slots beyond the window's CpGs": (lambda s: _call_beyond_the_window(s, gap=1), False,
                                                "a read has calls beyond its window's CpGs"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_check_names_its_damage(pristine, tmp_path, case):
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    corrupt, checksums, expected = CASES[case]
    corrupt(store)
    with pytest.raises(StoreError) as info:
        validate_store(store, verify_checksums=checksums)
    assert expected in str(info.value), str(info.value)


def test_the_pristine_store_passes_and_the_cli_says_one_line(pristine, tmp_path, capsys):
    validate_store(pristine)  # every case above starts from a valid store
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    _flip_last_byte(_sample_file(store))
    assert main(["validate", str(store)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tissuebert: error:")]
    assert len(lines) == 1 and "checksum mismatch" in lines[0] and "Traceback" not in err


def test_messages_quote_both_digests_and_checksums_are_on_by_default(pristine, tmp_path):
    from tissuebert.store.sample import sha256_file

    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    _flip_last_byte(_sample_file(store))
    digest = sha256_file(_sample_file(store))
    with pytest.raises(StoreError) as info:
        validate_store(store)  # verify_checksums defaults to True
    recorded = json.loads((store / STORE.MANIFEST).read_text())["samples"][0]["sha256"]
    assert f"(manifest {recorded[:12]}..., file {digest[:12]}...)" in str(info.value)


def test_a_window_without_cpgs_is_valid(tmp_path):
    """A marker region without a CG makes a window with no CpGs (cpg_ptr does not grow there): a
    valid store, which a strictly increasing cpg_ptr check would refuse."""
    from tissuebert.prepare import prepare_store

    files = write_tiny(tmp_path / "in")
    files["regions"].write_text(files["regions"].read_text() + "chr1\t450\t560\tm3\n")  # chr1 has no CG there
    prepare_store(files["sheet"], files["reference"], files["regions"], tmp_path / "store",
                  cpg_index=files["cpg_index"])
    _, panel = validate_store(tmp_path / "store")
    assert list(panel.n_cpgs) == [3, 1, 1, 0]

"""check_compatible: a checkpoint is used only with the exact tissue list (in order) and panel it was
trained on. The model's output column t means tissue t of its list, so a reordered list would silently
swap tissues' proportions: it must be refused like a different list."""

from __future__ import annotations

import pytest

from tissuebert.constants import CKPT
from tissuebert.errors import CheckpointError
from tissuebert.inference.checkpoint import check_compatible

STATE = {CKPT.TISSUES: ["Blood", "Liver", "Lung"], CKPT.PANEL_HASH: "0123456789abcdef"}


def test_the_same_tissues_and_panel_are_accepted():
    assert check_compatible(STATE, tissues=["Blood", "Liver", "Lung"], panel_hash="0123456789abcdef") is None


def test_a_reordered_tissue_list_is_refused():
    # mutation: comparing the lists as sets (or sorted) accepts this
    with pytest.raises(CheckpointError, match="same tissues in a different order"):
        check_compatible(STATE, tissues=["Liver", "Blood", "Lung"], panel_hash="0123456789abcdef")


@pytest.mark.parametrize("tissues, detail", [
    (["Blood", "Liver"], "only in checkpoint: ['Lung']; only in store: -"),
    (["Blood", "Liver", "Lung", "Colon"], "only in checkpoint: -; only in store: ['Colon']"),
])
def test_a_different_tissue_list_names_what_differs(tissues, detail):
    with pytest.raises(CheckpointError, match="tissue list differs") as info:
        check_compatible(STATE, tissues=tissues, panel_hash="0123456789abcdef")
    assert detail in str(info.value)


def test_another_panel_is_refused_even_with_the_same_tissues():
    with pytest.raises(CheckpointError, match="panel hash 0123456789abcdef differs from the input's fedcba9876543210"):
        check_compatible(STATE, tissues=["Blood", "Liver", "Lung"], panel_hash="fedcba9876543210", against="input")

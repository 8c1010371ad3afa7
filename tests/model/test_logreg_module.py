"""ReadLogReg: logits are the bias plus the weight rows of the valid (CpG, call) features."""

from __future__ import annotations

import pytest
import torch

from tissuebert.model.logreg import ReadLogReg


def test_logits_sum_the_weight_rows_of_valid_features_only():
    torch.manual_seed(0)
    model = ReadLogReg(n_cpgs=5, n_tissues=3)
    with torch.no_grad():
        model.weight.weight.normal_()
        model.bias.normal_()
    w, b = model.weight.weight.detach(), model.bias.detach()
    # read 0: CpG 1 unmethylated (feature 2), CpG 4 methylated (feature 9), then an invalid slot
    # holding an out-of-range id; read 1: nothing called
    feats = torch.tensor([[2, 9, 999], [7, 0, 3]])
    valid = torch.tensor([[True, True, False], [False, False, False]])
    out = model(feats, valid)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out[0], b + w[2] + w[9])
    torch.testing.assert_close(out[1], b)  # a read without calls gets the bias alone


def test_starts_uniform_and_checks_its_inputs():
    model = ReadLogReg(n_cpgs=4, n_tissues=2)
    assert model.n_features == 8
    out = model(torch.tensor([[1, 6]]), torch.tensor([[True, True]]))
    assert torch.equal(out, torch.zeros(1, 2))  # zero start: the uniform classifier
    with pytest.raises(ValueError, match="both be"):
        model(torch.tensor([[1, 6]]), torch.tensor([True, True]))
    with pytest.raises(ValueError, match="n_tissues"):
        ReadLogReg(n_cpgs=4, n_tissues=1)

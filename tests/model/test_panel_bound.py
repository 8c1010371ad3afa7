"""The panel-bound parts of TissueBERT: (window, token, call) -> panel CpG feature, the direct
per-CpG logit route, and a checkpoint that rebuilds them without the store."""

from __future__ import annotations

import numpy as np
import torch

from tissuebert.config import load_config
from tissuebert.constants import METH_NONE, N_TOKENS
from tissuebert.model.tissuebert import PanelFeatures, build_model, panel_buffers


class _Panel:
    """Three windows with 2, 0 and 3 CpGs at hand-picked token positions."""

    cpg_ptr = np.array([0, 2, 2, 5])
    cpg_offset = np.array([3, 100, 0, 7, 147], dtype=np.uint8)

    def padded_offsets(self) -> np.ndarray:
        out = np.full((3, 3), N_TOKENS, dtype=np.int64)
        out[0, :2] = [3, 100]
        out[2, :3] = [0, 7, 147]
        return out


def test_features_name_each_called_panel_cpg():
    feats = PanelFeatures(**panel_buffers(_Panel()))
    meth = torch.full((3, N_TOKENS), METH_NONE)
    meth[0, 3], meth[0, 100] = 1, 0  # window 0: CpG 0 methylated, CpG 1 unmethylated
    meth[1, 3] = 1  # window 1 has no CpG: a stray call maps to nothing
    meth[2, 7], meth[2, 147] = 0, 1  # window 2: CpG 3 U, CpG 4 M; CpG 2 (token 0) has no call
    out = feats(torch.tensor([0, 1, 2]), meth)
    pad = 2 * 5
    expected = torch.full((3, N_TOKENS), pad)
    expected[0, 3], expected[0, 100] = 2 * 0 + 1, 2 * 1 + 0
    expected[2, 7], expected[2, 147] = 2 * 3 + 0, 2 * 4 + 1
    assert torch.equal(out, expected)


def test_cpg_logits_route_adds_the_learned_vectors_and_checkpoint_rebuilds_it():
    cfg = load_config("tiny", overrides=["model.cpg_logits=true", "model.cpg_embedding_dim=16"]).model
    torch.manual_seed(0)
    model = build_model(cfg, 4, panel_buffers(_Panel())).eval()
    dna = torch.randint(2, 66, (2, N_TOKENS))
    meth = torch.full((2, N_TOKENS), METH_NONE)
    meth[0, 3], meth[0, 100] = 1, 0
    window = torch.tensor([0, 0])
    with torch.no_grad():
        base = model(dna, meth, window)
        model.cpg_logit.weight[1] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # feature of CpG 0, methylated
        model.cpg_logit.weight[2] = torch.tensor([0.5, 0.0, 0.0, -1.0])  # CpG 1, unmethylated
        model.cpg_logit.weight[3] = torch.tensor([9.0, 9.0, 9.0, 9.0])  # CpG 1, methylated: not in the read
        moved = model(dna, meth, window)
    torch.testing.assert_close(moved[0] - base[0], torch.tensor([1.5, 2.0, 3.0, 3.0]))
    torch.testing.assert_close(moved[1], base[1])  # read 1 has no calls: the route adds nothing

    from tissuebert.constants import CKPT
    from tissuebert.train.checkpoint import model_from_checkpoint

    state = {CKPT.MODEL: model.state_dict(), CKPT.TISSUES: ["a", "b", "c", "d"],
             CKPT.CONFIG: load_config("tiny", overrides=["model.cpg_logits=true", "model.cpg_embedding_dim=16"]).model_dump(mode="json")}
    again = model_from_checkpoint(state)
    with torch.no_grad():
        torch.testing.assert_close(again(dna, meth, window), moved)

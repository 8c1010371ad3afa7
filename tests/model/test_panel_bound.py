"""The panel-bound parts of TissueBERT: (window, token, call) -> panel CpG feature, the direct
per-CpG logit route, and a checkpoint that rebuilds them without the store."""

from __future__ import annotations

import numpy as np
import torch

from tests.support.handpanel import HandPanel
from tissuebert.config import load_config
from tissuebert.constants import METH_NONE, N_TOKENS
from tissuebert.model.tissuebert import PanelFeatures, build_model, panel_buffers


def test_features_name_each_called_panel_cpg():
    feats = PanelFeatures(**panel_buffers(HandPanel()))
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
    model = build_model(cfg, 4, panel_buffers(HandPanel())).eval()
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
    from tissuebert.inference.checkpoint import model_from_checkpoint

    state = {CKPT.MODEL: model.state_dict(), CKPT.TISSUES: ["a", "b", "c", "d"],
             CKPT.CONFIG: load_config("tiny", overrides=["model.cpg_logits=true",
                                                         "model.cpg_embedding_dim=16"]).model_dump(mode="json")}
    again = model_from_checkpoint(state)
    with torch.no_grad():
        torch.testing.assert_close(again(dna, meth, window), moved)


def _mixture_loglik(log_pi: np.ndarray, q: np.ndarray, calls: list[tuple[int, int]]) -> np.ndarray:
    """Plain numpy: log sum_k pi[t, k] prod_j p(call_j | k), p(M | k) = q[cpg, k], p(U | k) = 1 - q."""
    per_state = np.zeros(log_pi.shape[1])
    for cpg, call in calls:
        per_state += np.log(q[cpg]) if call == 1 else np.log1p(-q[cpg])
    return np.log(np.exp(log_pi + per_state[None, :]).sum(1))


def test_fragment_state_head_is_a_mixture_over_states_of_the_reads_calls():
    """With the encoder's correction at zero (its initial value) the head is exactly the
    per-window latent-state likelihood log sum_k pi[w, t, k] prod_j p(call_j | k), computed here
    from the panel's CpG numbering by hand."""
    cfg = load_config("tiny", overrides=["model.fragment_states=3", "model.state_emissions=shared"]).model
    torch.manual_seed(0)
    model = build_model(cfg, 4, panel_buffers(HandPanel())).eval()
    head = model.states
    # initial emissions: p(M | state) = 0.05, 0.5, 0.95 for every CpG; prior uniform
    q0 = np.array([0.05, 0.5, 0.95])
    torch.testing.assert_close(head.emission.weight[2 * 3 + 1], torch.log(torch.tensor(q0, dtype=torch.float32)))
    torch.testing.assert_close(head.emission.weight[2 * 3 + 0], torch.log1p(-torch.tensor(q0, dtype=torch.float32)))
    assert torch.count_nonzero(head.emission.weight[-1]) == 0  # padding feature: no evidence

    rng = np.random.default_rng(1)
    q = rng.uniform(0.02, 0.98, size=(5, 3))  # 5 panel CpGs x 3 states
    logits_pi = rng.normal(size=(3, 4, 3))  # 3 windows x 4 tissues x 3 states
    with torch.no_grad():
        for cpg in range(5):
            head.emission.weight[2 * cpg + 1] = torch.tensor(np.log(q[cpg]), dtype=torch.float32)
            head.emission.weight[2 * cpg + 0] = torch.tensor(np.log1p(-q[cpg]), dtype=torch.float32)
        head.prior.weight.copy_(torch.tensor(logits_pi.reshape(3, 12), dtype=torch.float32))
    log_pi = logits_pi - np.log(np.exp(logits_pi).sum(-1, keepdims=True))

    torch.randint(2, 66, (3, N_TOKENS))  # keeps the random stream as before
    meth = torch.full((3, N_TOKENS), METH_NONE)
    meth[0, 3], meth[0, 100] = 1, 0  # window 0: CpG 0 M, CpG 1 U
    meth[1, 7], meth[1, 147] = 0, 0  # window 2: CpG 3 U, CpG 4 U (CpG 2 no call)
    meth[2, 0], meth[2, 7], meth[2, 147] = 1, 1, 0  # window 2: all three
    window = torch.tensor([0, 2, 2])
    x = torch.randn(3, N_TOKENS, cfg.hidden)
    with torch.no_grad():
        out = head(x, model.panel(window, meth), window, meth).double().numpy()
    reads = [(0, [(0, 1), (1, 0)]), (2, [(3, 0), (4, 0)]), (2, [(2, 1), (3, 1), (4, 0)])]
    for i, (w, calls) in enumerate(reads):
        np.testing.assert_allclose(out[i], _mixture_loglik(log_pi[w], q, calls), rtol=1e-5, atol=1e-5)

    # the encoder's per-token correction enters each called token's state evidence, and only those
    with torch.no_grad():
        head.token.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))  # +1 to state 2 per called token
        moved = head(x, model.panel(window, meth), window, meth).double().numpy()
    for i, (w, calls) in enumerate(reads):
        bonus = np.array([0.0, 0.0, float(len(calls))])
        expected = np.log(np.exp(log_pi[w] + bonus[None, :] + _per_state(q, calls)[None, :]).sum(1))
        np.testing.assert_allclose(moved[i], expected, rtol=1e-5, atol=1e-5)


def _per_state(q: np.ndarray, calls: list[tuple[int, int]]) -> np.ndarray:
    return sum((np.log(q[c]) if m == 1 else np.log1p(-q[c])) for c, m in calls)


def test_fragment_state_tables_learn_at_the_panel_rate_and_survive_a_checkpoint():
    from tissuebert.constants import CKPT
    from tissuebert.inference.checkpoint import model_from_checkpoint
    from tissuebert.train.optim import build_optimizer

    config = load_config("tiny", overrides=["model.fragment_states=4", "train.max_lr=1e-3"])
    model = build_model(config.model, 4, panel_buffers(HandPanel()))
    optimizer = build_optimizer(model, config.train, panel_lr=0.05)
    panel_group = [g for g in optimizer.param_groups if g.get("panel")]
    assert len(panel_group) == 1 and panel_group[0]["max_lr"] == 0.05
    in_panel = {id(p) for p in panel_group[0]["params"]}
    assert id(model.states.emission.weight) in in_panel and id(model.states.prior.weight) in in_panel
    assert id(model.states.token.weight) not in in_panel  # the encoder's correction keeps max_lr
    with torch.no_grad():
        model.states.prior.weight.normal_()
        model.states.token.weight.normal_()
    state = {CKPT.MODEL: model.state_dict(), CKPT.TISSUES: ["a", "b", "c", "d"], CKPT.CONFIG: config.model_dump(mode="json")}
    again = model_from_checkpoint(state).eval()
    model.eval()
    dna = torch.randint(2, 66, (1, N_TOKENS))
    meth = torch.full((1, N_TOKENS), METH_NONE)
    meth[0, 0], meth[0, 147] = 1, 0
    with torch.no_grad():
        torch.testing.assert_close(again(dna, meth, torch.tensor([2])), model(dna, meth, torch.tensor([2])))

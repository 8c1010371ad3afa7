"""The count route (model.cpg_counts): a tally of the training reads' (panel CpG, call, tissue)
counts whose smoothed frequencies give each tissue the read's naive-Bayes log-likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.handpanel import HandPanel
from tests.support.trainhelpers import NO_STATES
from tissuebert.config import load_config
from tissuebert.constants import CKPT, METH_NONE, N_TOKENS
from tissuebert.model.tissuebert import build_model, panel_buffers

# Three windows: window 0 has CpGs 0, 1 at tokens 3 and 100; window 1 has none; window 2 has
# CpGs 2, 3, 4 at tokens 0, 7 and 147.
TOKEN = {0: 3, 1: 100, 2: 0, 3: 7, 4: 147}
WINDOW = {0: 0, 1: 0, 2: 2, 3: 2, 4: 2}




def _reads(calls_per_read: list[dict[int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[{panel CpG: call}] (all CpGs of one window) -> dna, meth (B, L) and window (B,) tensors."""
    meth = torch.full((len(calls_per_read), N_TOKENS), METH_NONE)
    window = torch.zeros(len(calls_per_read), dtype=torch.int64)
    for i, calls in enumerate(calls_per_read):
        for cpg, call in calls.items():
            meth[i, TOKEN[cpg]] = call
            window[i] = WINDOW[cpg]
    dna = torch.randint(2, 66, meth.shape)
    return dna, meth, window


def _naive_bayes(training: list[tuple[dict[int, int], int]], read: dict[int, int], n_tissues: int, a: float) -> np.ndarray:
    """Plain Python: sum over the read's calls of log (n[g,c,t] + a q[g,c]) / (n[g,t] + a), where
    q[g,c] = (n[g,c] + 1) / (n[g] + 2) over all tissues."""
    n = np.zeros((5, 2, n_tissues))
    for calls, tissue in training:
        for cpg, call in calls.items():
            n[cpg, call, tissue] += 1
    out = np.zeros(n_tissues)
    for cpg, call in read.items():
        q = (n[cpg, call].sum() + 1) / (n[cpg].sum() + 2)
        out += np.log((n[cpg, call] + a * q) / (n[cpg].sum(0) + a))
    return out


TRAINING = [({0: 1, 1: 1}, 0), ({0: 1, 1: 0}, 0), ({0: 0, 1: 0}, 1), ({2: 1, 3: 1, 4: 0}, 2),
            ({2: 0, 4: 0}, 1), ({3: 1}, 2), ({0: 0}, 1), ({2: 1, 3: 0, 4: 1}, 0)]


def _model(*overrides: str, prior: float = 8.0, observed: bool = False):
    """The tiny preset's model on the three-window panel, count route on (per-CpG tables off), and
    with ``observed`` the TRAINING reads counted into its tally one by one."""
    cfg = load_config("tiny", overrides=["model.cpg_counts=true", f"model.count_prior={prior}",
                                         "model.cpg_logits=false", "model.cpg_embedding_dim=0", *NO_STATES, *overrides]).model
    torch.manual_seed(0)
    model = build_model(cfg, 3, panel_buffers(HandPanel()))
    if observed:
        for calls, tissue in TRAINING:
            _, meth, window = _reads([calls])
            model.observe(meth, window, torch.tensor([tissue]))
    return model


@pytest.mark.parametrize("prior", [1.0, 8.0])
def test_count_route_adds_the_smoothed_naive_bayes_likelihood_of_the_observed_reads(prior):
    model = _model(prior=prior, observed=True)
    reads = [{0: 1, 1: 0}, {2: 1, 3: 1, 4: 1}, {4: 0}, {1: 1}]
    dna, meth, window = _reads(reads)
    model.eval()
    with torch.no_grad():
        with_counts = model(dna, meth, window)
        model.counts.log_scale.fill_(-float("inf"))
        without = model(dna, meth, window)
        model.counts.log_scale.fill_(float(np.log(0.5)))
        half = model(dna, meth, window)
    for i, read in enumerate(reads):
        expected = _naive_bayes(TRAINING, read, 3, prior)
        np.testing.assert_allclose((with_counts - without)[i].numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose((half - without)[i].numpy(), 0.5 * expected, rtol=1e-5, atol=1e-5)
    # a read without calls gets no evidence; the route's only trained parameter is the scale
    _, meth, window = _reads([{}])
    assert float(model.counts.log_likelihood(model.panel(window, meth)).abs().sum()) == 0.0
    assert [name for name, _ in model.counts.named_parameters()] == ["log_scale"]


def test_observe_counts_each_call_once_under_its_label_and_the_tally_rides_in_the_checkpoint():
    from tissuebert.inference.checkpoint import model_from_checkpoint

    model = _model()
    _, meth, window = _reads([calls for calls, _ in TRAINING])
    model.observe(meth, window, torch.tensor([t for _, t in TRAINING]))
    tally = model.counts.tally.numpy()
    expected = np.zeros_like(tally)
    for calls, tissue in TRAINING:
        for cpg, call in calls.items():
            expected[2 * cpg + call, tissue] += 1
    np.testing.assert_array_equal(tally, expected)
    assert tally[-1].sum() == 0  # tokens without a call are never counted

    config = load_config("tiny", overrides=["model.cpg_counts=true", "model.cpg_logits=false", "model.cpg_embedding_dim=0",
                                            *NO_STATES])
    state = {CKPT.MODEL: model.state_dict(), CKPT.TISSUES: ["a", "b", "c"], CKPT.CONFIG: config.model_dump(mode="json")}
    again = model_from_checkpoint(state).eval()
    np.testing.assert_array_equal(again.counts.tally.numpy(), expected)
    dna, meth, window = _reads([{0: 1, 1: 1}, {2: 0, 3: 1}])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(dna, meth, window), model(dna, meth, window))


def test_count_features_hand_each_called_token_its_centred_counted_evidence():
    """model.count_features: the token sum entering the encoder gains count_proj(log p(call | CpG, t)
    - its mean over t) at each called token, and nothing at tokens without a call."""
    model = _model("model.count_features=true", observed=True).eval()
    assert float(model.count_proj.weight.detach().abs().sum()) == 0.0  # starts as a no-op
    seen = []
    model.emb_drop.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    read = {2: 1, 3: 1, 4: 0}
    dna, meth, window = _reads([read])
    with torch.no_grad():
        model(dna, meth, window)
        model.count_proj.weight.normal_()
        model(dna, meth, window)
    added = (seen[1] - seen[0])[0]  # (L, hidden)
    for cpg, call in read.items():
        log_p = _naive_bayes(TRAINING, {cpg: call}, 3, 8.0)
        expected = model.count_proj.weight.detach().numpy() @ (log_p - log_p.mean())
        np.testing.assert_allclose(added[TOKEN[cpg]].numpy(), expected, rtol=1e-4, atol=1e-5)
    others = [i for i in range(N_TOKENS) if i not in {TOKEN[c] for c in read}]
    assert float(added[others].abs().max()) == 0.0


def test_count_weights_let_the_encoder_weigh_each_calls_evidence():
    """model.count_weights: the route adds scale x sum_j w_j log p_j with w_j = 2 sigmoid(z_j), z_j a
    projection of token j's final state: 1 at the start, and any constant z scales the evidence."""
    model = _model(observed=True).eval()
    reads = [{0: 1, 1: 0}, {2: 1, 3: 1, 4: 1}]
    dna, meth, window = _reads(reads)
    finals = []
    model.norm.register_forward_hook(lambda module, args, out: finals.append(out.clone()))
    with torch.no_grad():
        start = model(dna, meth, window)
        model.counts.log_scale.fill_(-float("inf"))
        without = model(dna, meth, window)
        model.counts.log_scale.fill_(0.0)
        model.count_weight.weight.normal_()
        model.count_weight.bias.fill_(0.3)
        weighted = model(dna, meth, window)
    for i, read in enumerate(reads):
        np.testing.assert_allclose((start - without)[i].numpy(), _naive_bayes(TRAINING, read, 3, 8.0), rtol=1e-5, atol=1e-5)
        z = finals[2][i] @ model.count_weight.weight[0] + 0.3  # (L,) the tokens' logits of weight
        expected = sum(2 * torch.sigmoid(z[TOKEN[cpg]]).item() * _naive_bayes(TRAINING, {cpg: call}, 3, 8.0)
                       for cpg, call in read.items())
        np.testing.assert_allclose((weighted - without)[i].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_without_head_logits_the_logits_are_the_weighted_count_route_alone():
    model = _model("model.head_logits=false", observed=True).eval()
    dna, meth, window = _reads([{0: 1, 1: 0}, {2: 1, 3: 1, 4: 1}, {}])
    with torch.no_grad():
        logits = model(dna, meth, window)
    for i, read in enumerate([{0: 1, 1: 0}, {2: 1, 3: 1, 4: 1}, {}]):
        np.testing.assert_allclose(logits[i].numpy(), _naive_bayes(TRAINING, read, 3, 8.0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="count_weights"):
        build_model(load_config("tiny", overrides=["model.head_logits=false", "model.count_weights=false", *NO_STATES]).model, 3,
                    panel_buffers(HandPanel()))


def test_leave_out_gives_each_counted_read_the_evidence_of_the_other_reads():
    """train.count_source = split: every training read is in the tally before step 0, so a read's
    own calls are taken out of its own evidence. Each read's evidence then equals plain naive
    Bayes over the *other* training reads (recomputed in Python without it)."""
    model = _model(observed=True).eval()
    dna, meth, window = _reads([calls for calls, _ in TRAINING])
    labels = torch.tensor([t for _, t in TRAINING])
    features = model.panel(window, meth)
    with torch.no_grad():
        loo = model.counts.token_log_p(features, labels).sum(1).numpy()
        kept = model.counts.token_log_p(features).sum(1).numpy()
    for i, (calls, tissue) in enumerate(TRAINING):
        others = TRAINING[:i] + TRAINING[i + 1:]
        np.testing.assert_allclose(loo[i], _naive_bayes(others, calls, 3, 8.0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(kept[i], _naive_bayes(TRAINING, calls, 3, 8.0), rtol=1e-5, atol=1e-5)
    # and through the model's forward: only the count route's term changes
    with torch.no_grad():
        diff = (model(dna, meth, window) - model(dna, meth, window, leave_out=labels)).numpy()
    np.testing.assert_allclose(diff, kept - loo, rtol=1e-4, atol=1e-5)


def test_set_tally_replaces_the_counts_and_refuses_another_shape():
    model = _model(observed=True)
    fresh = torch.arange(model.counts.tally.numel(), dtype=torch.float32).view_as(model.counts.tally)
    model.set_tally(fresh)
    assert torch.equal(model.counts.tally, fresh)
    with pytest.raises(ValueError, match="shape"):
        model.set_tally(fresh[:-1])

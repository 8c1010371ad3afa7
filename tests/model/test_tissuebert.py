"""TissueBERT against a plain reference implementation, plus shape, padding and size checks."""

from __future__ import annotations

import math

import pytest
import torch

from tissuebert.config import load_config
from tissuebert.constants import DNA_PAD, DNA_VOCAB, METH_VOCAB, N_TOKENS
from tissuebert.model.tissuebert import TissueBERT, build_model, count_parameters


def reference_forward(state: dict[str, torch.Tensor], dna: torch.Tensor, meth: torch.Tensor, *, n_layers: int,
                      n_heads: int, pooling: str = "mean") -> torch.Tensor:
    """The architecture written out with explicit matmuls and softmax (no SDPA, no nn modules)."""
    def layer_norm(x, prefix):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * state[f"{prefix}.weight"] + state[f"{prefix}.bias"]

    def linear(x, prefix):
        return x @ state[f"{prefix}.weight"].T + state[f"{prefix}.bias"]

    def gelu(x):
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))

    bsz, length = dna.shape
    x = state["dna_emb.weight"][dna] + state["meth_emb.weight"][meth] + state["pos_emb.weight"][:length][None]
    keep = dna != DNA_PAD  # (B, L)
    hidden = x.shape[-1]
    head_dim = hidden // n_heads
    for i in range(n_layers):
        p = f"layers.{i}"
        qkv = linear(layer_norm(x, f"{p}.norm1"), f"{p}.qkv")  # (B, L, 3D)
        q, k, v = qkv.split(hidden, dim=-1)
        q, k, v = (t.view(bsz, length, n_heads, head_dim).transpose(1, 2) for t in (q, k, v))  # (B, H, L, Dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)  # (B, H, L, L)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(bsz, length, hidden)  # (B, L, D)
        x = x + linear(attn, f"{p}.proj")
        x = x + linear(gelu(linear(layer_norm(x, f"{p}.norm2"), f"{p}.fc1")), f"{p}.fc2")
    x = layer_norm(x, "norm")
    # "mean": every non-PAD token; "cpg": only the tokens that carry a CpG call (0 or 1)
    w = (keep & (meth <= 1) if pooling == "cpg" else keep)[..., None].float()
    pooled = (x * w).sum(1) / w.sum(1)  # (B, D)
    return linear(gelu(linear(pooled, "head.0")), "head.3")


def random_tokens(bsz: int, length: int = N_TOKENS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dna = torch.randint(2, DNA_VOCAB, (bsz, length), generator=g)
    meth = torch.randint(0, METH_VOCAB - 1, (bsz, length), generator=g)
    return dna, meth


@pytest.fixture
def small_model() -> TissueBERT:
    torch.manual_seed(0)
    model = TissueBERT(n_tissues=5, n_layers=2, hidden=64, n_heads=4, ffn=128, dropout=0.1, head_hidden=32,
                       pooling="mean").eval()
    with torch.no_grad():  # move off the tiny init so that every term matters in the comparison
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model


def test_matches_plain_reference_fp32(small_model):
    dna, meth = random_tokens(6)
    dna[4:, 120:] = DNA_PAD  # two reads with padding exercise the mask
    with torch.no_grad():
        ours = small_model(dna, meth)
        ref = reference_forward(small_model.state_dict(), dna, meth, n_layers=2, n_heads=4)
    assert ours.shape == (6, 5)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_cpg_pooling_matches_reference(small_model):
    """Pooling over the called CpG tokens only: a read with calls at 3 tokens averages those 3."""
    small_model.pooling = "cpg"
    dna, meth = random_tokens(4, seed=9)
    meth[:] = 2
    meth[0, [5, 40, 90]] = torch.tensor([0, 1, 1])
    meth[1, [0]] = 1
    meth[2, 10:20] = 0
    meth[3, [147]] = 0
    with torch.no_grad():
        ours = small_model(dna, meth)
        ref = reference_forward(small_model.state_dict(), dna, meth, n_layers=2, n_heads=4, pooling="cpg")
        mean = reference_forward(small_model.state_dict(), dna, meth, n_layers=2, n_heads=4, pooling="mean")
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert (ours - mean).abs().max() > 1e-3  # the pooling choice changes the output


def test_padding_is_ignored(small_model):
    dna, meth = random_tokens(3, seed=1)
    short = small_model(dna[:, :100], meth[:, :100])
    dna_pad, meth_pad = dna.clone(), meth.clone()
    dna_pad[:, 100:] = DNA_PAD
    meth_pad[:, 100:] = torch.randint(0, METH_VOCAB, (3, N_TOKENS - 100))  # whatever sits under PAD
    with torch.no_grad():
        torch.testing.assert_close(small_model(dna_pad, meth_pad), short.detach(), atol=1e-5, rtol=1e-5)


def test_reads_are_scored_independently(small_model):
    dna, meth = random_tokens(4, seed=2)
    with torch.no_grad():
        together = small_model(dna, meth)
        alone = torch.cat([small_model(dna[i:i + 1], meth[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_bad_shapes_fail_fast(small_model):
    dna, meth = random_tokens(2)
    with pytest.raises(ValueError, match="both be"):
        small_model(dna, meth[:, :10])
    with pytest.raises(ValueError, match="exceeds"):
        small_model(torch.cat([dna, dna], 1), torch.cat([meth, meth], 1))


def test_paper_preset_size():
    cfg = load_config("paper").model
    n_tissues, n_windows, n_cpgs = 22, 10, 37
    panel = {"cpg_first": torch.zeros(n_windows, dtype=torch.int64),
             "cpg_offsets": torch.full((n_windows, 4), N_TOKENS, dtype=torch.int64), "n_cpgs": n_cpgs}
    model = build_model(cfg, n_tissues, panel)
    d, f, h = cfg.hidden, cfg.ffn, cfg.head_hidden
    per_layer = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d)
    encoder = ((DNA_VOCAB + METH_VOCAB + N_TOKENS) * d + cfg.n_layers * per_layer + 2 * d + (d * h + h)
               + (h * n_tissues + n_tissues))
    assert encoder / 1e6 == pytest.approx(19.3, abs=0.1)  # the design's "~19.3 M"
    # the count route: its tally is a buffer, (2 C + 1) x T counts; its parameters the scale and the
    # encoder's per-token evidence weight (Linear d -> 1)
    assert cfg.cpg_counts and cfg.count_weights and not cfg.cpg_logits and cfg.cpg_embedding_dim == 0
    route = 1 + d + 1
    assert count_parameters(model) == encoder + route
    assert tuple(model.counts.tally.shape) == (2 * n_cpgs + 1, n_tissues)
    # with the optional per-CpG tables: a (2 C + 1)-row table of each width, the projection of the narrow one to d
    e = 32
    tables = build_model(load_config("paper", overrides=[f"model.cpg_embedding_dim={e}", "model.cpg_logits=true"]).model,
                         n_tissues, panel)
    assert count_parameters(tables) == encoder + route + (2 * n_cpgs + 1) * (e + n_tissues) + e * d
    with pytest.raises(ValueError, match="need the panel"):
        build_model(cfg, n_tissues)


def test_dropout_only_in_training(small_model):
    dna, meth = random_tokens(2, seed=3)
    with torch.no_grad():
        assert torch.equal(small_model(dna, meth), small_model(dna, meth))
        small_model.train()
        assert not torch.equal(small_model(dna, meth), small_model(dna, meth))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_cpu_dropout_rate_scale_and_gradient(p):
    """The 16-bit-draw dropout: drop rate p (to 1/65536), unbiased, gradient = the same mask x scale."""
    from tissuebert.model.tissuebert import dropout, dropout_scale

    torch.manual_seed(0)
    x = torch.rand(400, 1000, dtype=torch.float64) + 0.5  # strictly positive: a zero output means dropped
    x.requires_grad_(True)
    y = dropout(x, p, training=True)
    dropped = y == 0
    n = dropped.numel()
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(dropped.double().mean().item() - p) < 5 * sd
    # every int16 lane of the 64-bit draws is used: the rate holds in each residue class mod 4
    for lane in range(4):
        lane_rate = dropped.reshape(-1)[lane::4].double().mean().item()
        assert abs(lane_rate - p) < 5 * sd * 2
    scale = 65536 / (65536 - round(p * 65536))
    assert dropout_scale(p) == scale
    assert torch.allclose(y[~dropped], x.detach()[~dropped] * scale)
    assert abs(y.mean().item() / x.mean().item() - 1) < 0.01  # unbiased
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad == 0, dropped)
    assert torch.allclose(x.grad[~dropped], torch.full_like(x.grad[~dropped], scale))
    # eval mode and p = 0 are the identity; seeded draws repeat exactly
    assert dropout(x, p, training=False) is x and dropout(x, 0.0, training=True) is x
    torch.manual_seed(7)
    a = dropout(x.detach(), p, training=True)
    torch.manual_seed(7)
    assert torch.equal(a, dropout(x.detach(), p, training=True))


def test_training_step_gradients_match_reference_with_dropout_off(small_model):
    """With dropout at 0 the optimised training path's gradients equal autograd through the reference."""
    dna, meth = random_tokens(3, seed=5)
    small_model.train()
    for module in small_model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for layer in small_model.layers:
        layer.dropout = 0.0
    small_model.zero_grad()
    small_model(dna, meth).square().sum().backward()
    state = {k: v.detach().clone().requires_grad_(True) for k, v in small_model.state_dict().items()}
    ref = reference_forward(state, dna, meth, n_layers=len(small_model.layers), n_heads=small_model.layers[0].n_heads)
    ref.square().sum().backward()
    for name, param in small_model.named_parameters():
        assert torch.allclose(param.grad, state[name].grad, atol=1e-5, rtol=1e-4), name

"""Model step: TissueBERT vs Hugging Face BertModel vs nn.TransformerEncoder, same shape, one run.

Prints training and inference samples/s per precision, achieved GFLOP/s and the ratio to the
bf16 / fp32 matmul rate measured in the same process.

FLOPs per training sample (forward + backward) = 6 * N * S + 12 * L * S^2 * d, with N the
non-embedding parameters, S = 148 tokens, L layers, d hidden; inference = a third of that.
Every model trains with the same optimiser (fused AdamW, what `tissuebert train` uses).

Two ceilings are printed: the 4096^3 matmul rate (8192^3 on a GPU; --device, default CUDA when
available, where --batch defaults to the design's 128), and the rate of the encoder's own Linear GEMMs
(forward, grad-input and grad-weight at M = batch x 148 rows) with nothing else in between, i.e.
what a step made of nothing but its matrix products would reach.

Usage: python benchmarks/bench_model.py [--preset paper] [--batch 32] [--steps 6] [--json OUT]
       python benchmarks/bench_model.py --sweep 16,32,64,128 --steps 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from tissuebert.config import load_config
from tissuebert.constants import DNA_VOCAB, METH_VOCAB, N_TOKENS
from tissuebert.model import build_model

DEVICE = torch.device("cpu")  # set by main(): --device


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def matmul_gflops(dtype: torch.dtype, n: int = 4096, reps: int = 3) -> float:
    n = n if DEVICE.type == "cpu" else 2 * n  # a GPU needs a bigger product to reach its peak
    a = torch.randn(n, n, dtype=dtype, device=DEVICE)
    b = torch.randn(n, n, dtype=dtype, device=DEVICE)
    a @ b  # warm-up
    _sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        _sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def layer_gemm_gflops(cfg, batch: int, dtype: torch.dtype, reps: int = 3) -> float:
    """GFLOP/s of one encoder layer's Linear GEMMs for a training step (3 products per layer)."""
    m = batch * N_TOKENS
    shapes = [(cfg.hidden, 3 * cfg.hidden), (cfg.hidden, cfg.hidden), (cfg.hidden, cfg.ffn), (cfg.ffn, cfg.hidden)]
    mats = []
    for k, n in shapes:
        x, w, g = (torch.randn(shape, dtype=dtype, device=DEVICE) for shape in ((m, k), (k, n), (m, n)))
        mats.append((x, w, g))

    def once() -> None:
        for x, w, g in mats:
            x @ w  # forward
            g @ w.T  # grad of the input
            x.T @ g  # grad of the weight

    once()
    _sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        _sync()
        best = min(best, time.perf_counter() - t0)
    flop = sum(3 * 2 * m * k * n for k, n in shapes)
    return flop / best / 1e9


class HFBert(nn.Module):
    """BertModel with the same shape: summed DNA + methylation embeddings as inputs_embeds."""

    def __init__(self, cfg, n_tissues: int) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        hf = BertConfig(vocab_size=DNA_VOCAB, hidden_size=cfg.hidden, num_hidden_layers=cfg.n_layers,
                        num_attention_heads=cfg.n_heads, intermediate_size=cfg.ffn, hidden_dropout_prob=cfg.dropout,
                        attention_probs_dropout_prob=cfg.dropout, max_position_embeddings=N_TOKENS,
                        type_vocab_size=1, attn_implementation="sdpa")
        self.bert = BertModel(hf, add_pooling_layer=False)
        self.meth = nn.Embedding(METH_VOCAB, cfg.hidden)
        self.head = nn.Sequential(nn.Linear(cfg.hidden, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, n_tissues))

    def forward(self, dna, meth):
        emb = self.bert.embeddings.word_embeddings(dna) + self.meth(meth)
        out = self.bert(inputs_embeds=emb).last_hidden_state  # (B, S, D)
        return self.head(out.mean(1))


class TorchEncoder(nn.Module):
    """nn.TransformerEncoder (pre-norm) with the same shape."""

    def __init__(self, cfg, n_tissues: int) -> None:
        super().__init__()
        self.dna = nn.Embedding(DNA_VOCAB, cfg.hidden)
        self.meth = nn.Embedding(METH_VOCAB, cfg.hidden)
        self.pos = nn.Embedding(N_TOKENS, cfg.hidden)
        layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.n_heads, cfg.ffn, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(cfg.hidden, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, n_tissues))

    def forward(self, dna, meth):
        x = self.dna(dna) + self.meth(meth) + self.pos.weight[None, : dna.shape[1]]
        return self.head(self.enc(x).mean(1))


def non_embedding_params(model: nn.Module) -> int:
    return sum(p.numel() for name, p in model.named_parameters()
               if not isinstance(_owner(model, name), nn.Embedding))


def _owner(model: nn.Module, pname: str) -> nn.Module:
    mod = model
    for part in pname.split(".")[:-1]:
        mod = getattr(mod, part)
    return mod


DESIGN_WINDOWS, CPGS_PER_WINDOW = 51_000, 9  # the design's panel: ~460,000 CpGs


def design_panel(seed: int = 0) -> dict:
    """Panel buffers of the design's size (random CpG positions) for the panel-bound model parts."""
    g = torch.Generator().manual_seed(seed)
    offsets = torch.stack([torch.randperm(N_TOKENS, generator=g)[:CPGS_PER_WINDOW].sort().values
                           for _ in range(DESIGN_WINDOWS)])
    return {"cpg_first": torch.arange(DESIGN_WINDOWS) * CPGS_PER_WINDOW, "cpg_offsets": offsets,
            "n_cpgs": DESIGN_WINDOWS * CPGS_PER_WINDOW}


def build_tissuebert(cfg, n_tissues: int = 22) -> nn.Module:
    return build_model(cfg, n_tissues, design_panel())


def time_model(model: nn.Module, batch: int, steps: int, precision: str, train: bool) -> float:
    """Median samples/s over ``steps`` timed steps after 2 warm-up steps."""
    dna = torch.randint(2, DNA_VOCAB, (batch, N_TOKENS), device=DEVICE)
    meth = torch.randint(0, 3, (batch, N_TOKENS), device=DEVICE)
    # TissueBERT's panel-bound parts look up each read's window; the rival encoders take no window
    inputs = (dna, meth, torch.randint(0, DESIGN_WINDOWS, (batch,), device=DEVICE)) \
        if getattr(model, "needs_window", False) else (dna, meth)
    target = torch.randint(0, 22, (batch,), device=DEVICE)
    model.to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    model.train(train)
    ctx = torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        if train:
            with ctx:
                loss = nn.functional.cross_entropy(model(*inputs).float(), target)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            with torch.no_grad(), ctx:
                model(*inputs)
        _sync()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    times.sort()
    return batch / times[len(times) // 2]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=None, help="default 32 on CPU, 128 (the design's) on GPU")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--json", default=None)
    parser.add_argument("--sweep", default=None, help="comma-separated batch sizes: time only TissueBERT's bf16 "
                        "training step at each (micro-batch size on CPU)")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    args.batch = args.batch or (32 if DEVICE.type == "cpu" else 128)
    if args.sweep:
        cfg = load_config(args.preset).model
        torch.manual_seed(0)
        model = build_tissuebert(cfg)
        rates = {int(b): time_model(model, int(b), args.steps, "bf16", train=True) for b in args.sweep.split(",")}
        for batch, rate in rates.items():
            print(f"bf16 tissuebert train, batch {batch:4d}: {rate:6.1f} samples/s")
        return {"sweep": rates}
    torch.manual_seed(0)
    cfg = load_config(args.preset).model
    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    where = (f"threads={torch.get_num_threads()}" if DEVICE.type == "cpu"
             else f"{torch.cuda.get_device_name(DEVICE)} (TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'})")
    size = 4096 if DEVICE.type == "cpu" else 8192
    print(f"{where}  matmul {size}^3: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    gemm = {"fp32": layer_gemm_gflops(cfg, args.batch, torch.float32),
            "bf16": layer_gemm_gflops(cfg, args.batch, torch.bfloat16)}
    print(f"encoder-layer GEMMs alone at batch {args.batch} (M = {args.batch * N_TOKENS}): fp32 {gemm['fp32']:.0f} "
          f"GFLOP/s ({100 * gemm['fp32'] / peak['fp32']:.0f}% of {size}^3), bf16 {gemm['bf16']:.0f} GFLOP/s "
          f"({100 * gemm['bf16'] / peak['bf16']:.0f}%)")
    models = {"tissuebert": lambda: build_tissuebert(cfg), "hf_bert": lambda: HFBert(cfg, 22),
              "nn_transformer": lambda: TorchEncoder(cfg, 22)}
    results: dict = {"device": str(DEVICE), "peak_gflops": peak, "layer_gemm_gflops": gemm, "batch": args.batch,
                     "preset": args.preset, "rows": []}
    ref = build_tissuebert(cfg)
    n_params = non_embedding_params(ref)
    s, d, n_layers = N_TOKENS, cfg.hidden, cfg.n_layers
    train_flop = 6 * n_params * s + 12 * n_layers * s * s * d
    print(f"non-embedding params {n_params / 1e6:.2f} M; {train_flop / 1e9:.1f} GFLOP per training sample, "
          f"{train_flop / 3e9:.1f} per inference")
    for precision in ("bf16", "fp32"):
        for name, make in models.items():
            model = make()
            tr = time_model(model, args.batch, args.steps, precision, train=True)
            inf = time_model(model, args.batch, args.steps, precision, train=False)
            gflops = tr * train_flop / 1e9
            row = {"model": name, "precision": precision, "train_samples_s": tr, "infer_samples_s": inf,
                   "train_gflops": gflops, "frac_of_matmul_peak": gflops / peak[precision],
                   "frac_of_layer_gemms": gflops / gemm[precision]}
            results["rows"].append(row)
            print(f"{precision:5s} {name:15s} train {tr:7.1f} samples/s ({gflops:6.0f} GFLOP/s, "
                  f"{100 * gflops / peak[precision]:4.0f}% of matmul, {100 * gflops / gemm[precision]:3.0f}% of GEMMs)  "
                  f"infer {inf:7.1f} samples/s")
    for precision in ("bf16", "fp32"):
        rows = {r["model"]: r for r in results["rows"] if r["precision"] == precision}
        ratio = rows["tissuebert"]["train_samples_s"] / rows["hf_bert"]["train_samples_s"]
        print(f"{precision}: tissuebert / hf_bert training speed = {ratio:.2f}x")
        results[f"ratio_vs_hf_{precision}"] = ratio
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()

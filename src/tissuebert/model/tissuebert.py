"""TissueBERT: a pre-norm transformer encoder over (DNA 3-mer, methylation) token pairs.

Pure torch: takes token tensors, returns logits. It knows nothing of files, losses or logging.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tissuebert.constants import DNA_PAD, DNA_VOCAB, METH_M, METH_U, METH_VOCAB, N_TOKENS

# "auto": SDPA on GPU (flash / memory-efficient kernels) and for CPU inference, explicit math for
# CPU training
ATTENTION_IMPLS = ("auto", "sdpa", "math")

_RNG_LANES = 4  # 16-bit random draws per int64


class _Dropout16(torch.autograd.Function):
    """Inverted dropout whose mask comes from 16-bit uniform draws, four per 64-bit random number.

    CPU random number generation is the cost of dropout on CPU (~3-5 ns per element for
    ``bernoulli_``, a third of a paper-model bf16 training step); cutting the number of draws
    fourfold makes dropout ~2.4x faster (benchmarks/bench_model.py). The drop probability is
    p quantised to 1/65536 (0.1 -> 0.1000061) and survivors are scaled by 1 / (1 - that), so the
    layer stays unbiased. Only the boolean drop mask is kept for the backward pass.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float, rescale: bool) -> torch.Tensor:
        n = x.numel()
        threshold = round(p * 65536)
        draws = torch.randint(-(2**63), 2**63 - 1, ((n + _RNG_LANES - 1) // _RNG_LANES,), dtype=torch.int64,
                              device=x.device)
        # int16 lanes are uniform on [-32768, 32767]: P(lane < threshold - 32768) = threshold / 65536
        drop = draws.view(torch.int16)[:n].view(x.shape) < threshold - 32768
        ctx.save_for_backward(drop)
        ctx.scale = dropout_scale(p) if rescale else 1.0
        out = x.masked_fill(drop, 0)
        return out.mul_(ctx.scale) if rescale else out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (drop,) = ctx.saved_tensors
        out = grad.masked_fill(drop, 0)
        return (out.mul_(ctx.scale) if ctx.scale != 1.0 else out), None, None


def dropout_scale(p: float) -> float:
    """The survivors' scale of :class:`_Dropout16`: 1 / (1 - p quantised to 1/65536)."""
    return 65536.0 / (65536 - round(p * 65536))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` semantics; on CPU the mask comes from :class:`_Dropout16` (fewer random draws)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    return _Dropout16.apply(x, p, True)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the CPU fast path of :func:`dropout` (same state dict: none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class EncoderLayer(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then x + FFN(LN(x)); one fused QKV projection."""

    def __init__(self, *, hidden: int, n_heads: int, ffn: int, dropout: float, attention: str = "auto") -> None:
        super().__init__()
        if attention not in ATTENTION_IMPLS:
            raise ValueError(f"attention must be one of {ATTENTION_IMPLS}, got {attention!r}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.attention = attention
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, ffn)
        self.fc2 = nn.Linear(ffn, hidden)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        bsz, length, hidden = x.shape
        head_dim = hidden // self.n_heads
        qkv = self.qkv(self.norm1(x))  # (B, L, 3D)
        qkv = qkv.view(bsz, length, 3, self.n_heads, head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, L, Dh)
        # unbind, not qkv[0], qkv[1], qkv[2]: its backward stacks the three gradients in one pass
        # instead of accumulating each into a zeroed (3, B, H, L, Dh) buffer (~6% of a CPU step)
        q, k, v = qkv.unbind(0)
        attn = self._attend(q, k, v, attn_mask)  # (B, H, L, Dh)
        attn = attn.transpose(1, 2).reshape(bsz, length, hidden)  # (B, L, D)
        x = x + self.drop(self.proj(attn))
        # BERT's dropout placement: on the FFN output only, not on its activation
        x = x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))
        return x

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        p_drop = self.dropout if self.training else 0.0
        # "auto": SDPA on GPU, and on CPU without attention dropout (inference: its fused CPU
        # kernel is 1.2-1.4x the explicit path); explicit math for CPU training, where SDPA's
        # kernel with dropout is ~3x slower under bf16 autocast (benchmarks/bench_model.py).
        use_sdpa = self.attention == "sdpa" or (self.attention == "auto" and (q.device.type != "cpu" or p_drop == 0.0))
        if use_sdpa:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p_drop)
        # the 1/sqrt(d) scale on q (B, H, L, Dh) rather than on the scores (B, H, L, L): fewer elements
        scores = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)  # (B, H, L, L)
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        probs = scores.softmax(-1)
        if q.device.type == "cpu" and p_drop > 0.0:
            # zero the dropped probabilities, rescale the (B, H, L, Dh) output, not the (B, H, L, L) matrix
            return (_Dropout16.apply(probs, p_drop, False).to(v.dtype) @ v) * dropout_scale(p_drop)
        return dropout(probs, p_drop, self.training).to(v.dtype) @ v


POOLINGS = ("cpg", "mean", "attention")


class PanelFeatures(nn.Module):
    """Which panel CpG each token of a window carries, for the panel-bound parts of the model.

    Buffers (saved in the state dict, so a checkpoint rebuilds them without the store):
    ``cpg_first`` (W,) the panel index of each window's first CpG and ``cpg_offsets`` (W, K)
    the token position of its k-th CpG (``N_TOKENS`` = padding). A (window, token, call) triple
    maps to the feature ``2 * panel CpG + call``; tokens without a CpG call map to the padding
    feature ``2 * n_cpgs``.
    """

    def __init__(self, *, cpg_first: torch.Tensor, cpg_offsets: torch.Tensor, n_cpgs: int) -> None:
        super().__init__()
        self.n_cpgs = int(n_cpgs)
        self.register_buffer("cpg_first", cpg_first.to(torch.int64))
        self.register_buffer("cpg_offsets", cpg_offsets.to(torch.int64))

    @property
    def n_features(self) -> int:
        return 2 * self.n_cpgs + 1  # + padding

    @property
    def n_windows(self) -> int:
        return int(self.cpg_first.shape[0])

    def forward(self, window: torch.Tensor, meth: torch.Tensor) -> torch.Tensor:
        """(B,) window indices + (B, L) methylation tokens -> (B, L) feature ids."""
        bsz, length = meth.shape
        width = self.cpg_offsets.shape[1]
        slot_ids = self.cpg_first[window][:, None] + torch.arange(width, device=meth.device)  # (B, K)
        cpg = torch.full((bsz, N_TOKENS + 1), -1, dtype=torch.int64, device=meth.device)  # +1: dump column
        cpg.scatter_(1, self.cpg_offsets[window], slot_ids)
        cpg = cpg[:, :length]  # (B, L) panel CpG of each token, -1 = none
        called = (cpg >= 0) & (meth <= METH_M)
        return torch.where(called, 2 * cpg + meth, torch.full_like(cpg, 2 * self.n_cpgs))


def panel_buffers(panel) -> dict[str, torch.Tensor | int]:
    """``PanelFeatures`` arguments from a :class:`tissuebert.store.panel.Panel`."""
    import numpy as np

    offsets = panel.padded_offsets()  # (W, K), padding -> N_TOKENS
    return {"cpg_first": torch.from_numpy(np.asarray(panel.cpg_ptr[:-1], dtype=np.int64)),
            "cpg_offsets": torch.from_numpy(offsets.astype(np.int64)), "n_cpgs": int(panel.cpg_ptr[-1])}


class TissueBERT(nn.Module):
    """Sum of DNA, methylation and learned position embeddings -> encoder -> pooling -> head.

    Optional panel-bound parts (a checkpoint is bound to its panel by the panel hash anyway):
    ``cpg_embedding_dim`` > 0 adds a learned vector per (panel CpG, call) at every CpG token that
    has a call (of that width, projected to ``hidden`` when narrower: a 51,000-window panel has
    ~460,000 CpGs, so the paper preset keeps it narrow); ``cpg_logits`` adds a learned
    per-(panel CpG, call) logit vector, summed over the
    read's calls, to the head's output (the logistic regression's features as a direct route
    to the logits, so the encoder learns what the read holds beyond independent CpG effects).

    ``fragment_states`` = K > 0 adds the fragment-state head (:class:`FragmentStateHead`): a read
    comes from one cell and one allele, so in a marker window its CpGs share one state (mostly
    unmethylated, mixed, mostly methylated: UXM's U / X / M); the head scores each of K states from
    the read (a per-(panel CpG, call) emission table plus the encoder's per-token correction,
    summed over the read's calls) and mixes them with a learned per-(window, tissue) state
    distribution. ``state_emissions`` = "tissue" gives each tissue its own emission table (a
    state's methylation level may differ between tissues).

    ``cpg_counts`` adds the count route (:class:`CpGCounts`): a tally of the training reads' calls
    per (panel CpG, call, tissue), kept as a buffer and updated by :meth:`observe` after each
    forward pass, whose smoothed frequencies give each tissue the read's log-likelihood under
    independent CpGs (naive Bayes); a learned scale weighs it against the rest of the logits.
    """

    def __init__(self, *, n_tissues: int, n_layers: int = 6, hidden: int = 512, n_heads: int = 8,
                 ffn: int = 2048, dropout: float = 0.1, head_hidden: int = 512, max_len: int = N_TOKENS,
                 attention: str = "auto", pooling: str = "cpg", cpg_embedding_dim: int = 0,
                 cpg_logits: bool = False, joint_tokens: bool = False, fragment_states: int = 0,
                 state_emissions: str = "shared",
                 cpg_counts: bool = False, count_prior: float = 8.0, count_features: bool = False,
                 count_weights: bool = False, head_logits: bool = True, call_head: bool = False,
                 panel: dict | None = None) -> None:
        super().__init__()
        if n_tissues < 2:
            raise ValueError(f"n_tissues must be >= 2, got {n_tissues}")
        if hidden % n_heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by n_heads ({n_heads})")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if (cpg_embedding_dim or cpg_logits or fragment_states or cpg_counts) and panel is None:
            raise ValueError("cpg_embedding_dim / cpg_logits / fragment_states / cpg_counts need the panel "
                             "(panel_buffers(panel))")
        if fragment_states == 1 or fragment_states < 0:
            raise ValueError(f"fragment_states must be 0 (off) or >= 2, got {fragment_states}")
        self.n_tissues = n_tissues
        self.max_len = max_len
        self.pooling = pooling
        self.dna_emb = nn.Embedding(DNA_VOCAB, hidden, padding_idx=DNA_PAD)
        self.meth_emb = nn.Embedding(METH_VOCAB, hidden)
        # joint_tokens: one vector per (3-mer, call) pair added to the sum, so a (context, call)
        # conjunction is a table look-up rather than something the encoder must compute
        self.joint_emb = nn.Embedding(DNA_VOCAB * METH_VOCAB, hidden) if joint_tokens else None
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.emb_drop = Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(hidden=hidden, n_heads=n_heads, ffn=ffn, dropout=dropout,
                                                 attention=attention) for _ in range(n_layers))
        self.norm = nn.LayerNorm(hidden)
        # head_logits = false: no pooled head at all (the encoder acts only through the count
        # route's per-call weights); a head whose output were dropped would leave parameters
        # without gradients, which DDP refuses
        if pooling == "attention" and head_logits:
            self.pool_query = nn.Linear(hidden, 1)
        self.head = (nn.Sequential(nn.Linear(hidden, head_hidden), nn.GELU(), Dropout(dropout),
                                   nn.Linear(head_hidden, n_tissues)) if head_logits else None)
        self.panel = PanelFeatures(**panel) if panel is not None else None
        # the per-CpG token vectors start like the other token embeddings, N(0, 1) (see the note on
        # initialisation below); the direct logit route starts at zero, so it adds nothing at first
        self.cpg_emb = self._panel_embedding(cpg_embedding_dim, zero=False) if cpg_embedding_dim else None
        self.cpg_proj = (nn.Linear(cpg_embedding_dim, hidden, bias=False)
                         if cpg_embedding_dim and cpg_embedding_dim != hidden else None)
        self.cpg_logit = self._panel_embedding(n_tissues, zero=True) if cpg_logits else None
        if state_emissions not in ("shared", "tissue"):
            raise ValueError(f"state_emissions must be 'shared' or 'tissue', got {state_emissions!r}")
        self.states = (FragmentStateHead(n_states=fragment_states, n_tissues=n_tissues, hidden=hidden,
                                         n_features=self.panel.n_features, n_windows=self.panel.n_windows,
                                         per_tissue=state_emissions == "tissue")
                       if fragment_states else None)
        self.counts = (CpGCounts(n_features=self.panel.n_features, n_tissues=n_tissues, prior=count_prior)
                       if cpg_counts else None)
        if (count_features or count_weights) and not cpg_counts:
            raise ValueError("count_features / count_weights need the count route (cpg_counts)")
        if not head_logits and not count_weights:
            raise ValueError("head_logits = false leaves the encoder no way to the logits but the count weights "
                             "(count_weights)")
        # count_features: each called token also gets its counted evidence, log p(call | CpG, t)
        # centred over the tissues, through a zero-initialised Linear T -> hidden
        self.count_proj = nn.Linear(n_tissues, hidden, bias=False) if count_features else None
        if self.count_proj is not None:
            nn.init.zeros_(self.count_proj.weight)
        # count_weights: the encoder weighs each called token's counted evidence, w = 2 sigmoid(z)
        # in (0, 2), z zero-initialised (w = 1: plain naive Bayes at the start). Naive Bayes counts
        # every call as independent evidence; the CpGs of one fragment in one block share a state,
        # so concordant calls should count less than their number: which calls go together, in
        # context, is what the encoder can see and a table cannot.
        self.count_weight = nn.Linear(hidden, 1) if count_weights else None
        if self.count_weight is not None:
            nn.init.zeros_(self.count_weight.weight)
            nn.init.zeros_(self.count_weight.bias)
        # call_head: each token's final state -> its methylation call (U / M), for the masked-call
        # objective (train.mask_weight / train.pretrain_steps); not used by the classification
        self.call_head = nn.Linear(hidden, 2) if call_head else None

    def _panel_embedding(self, width: int, *, zero: bool) -> nn.Embedding:
        emb = nn.Embedding(self.panel.n_features, width, padding_idx=self.panel.n_features - 1)
        if zero:
            nn.init.zeros_(emb.weight)
        return emb

    @property
    def needs_window(self) -> bool:
        return self.panel is not None

    # Initialisation: PyTorch's defaults (embeddings N(0, 1), Linear layers uniform in
    # +-1/sqrt(fan_in)), deliberately not BERT's N(0, 0.02). Every bit of tissue signal in a read
    # is an interaction of sequence context and methylation (under tissue-balanced sampling
    # neither alone says anything), and with 0.02-scale weights that interaction starts so small
    # that training sits at chance for thousands of steps (docs/training.md).

    def forward(self, dna: torch.Tensor, meth: torch.Tensor, window: torch.Tensor | None = None, *,
                with_calls: bool = False, leave_out: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """dna, meth: (B, L) integer tokens; window: (B,) panel window index (needed by the
        panel-bound parts) -> (B, n_tissues) logits; with ``with_calls`` (needs the call head)
        also (B, L, 2) call logits of every token, for the masked-call objective. ``leave_out``
        (B,) labels of reads the count route's tally already holds (:meth:`CpGCounts.token_log_p`)."""
        if with_calls and self.call_head is None:
            raise ValueError("with_calls needs the call head (model.call_head)")
        if dna.shape != meth.shape or dna.dim() != 2:
            raise ValueError(f"dna and meth must both be (B, L); got {tuple(dna.shape)} and {tuple(meth.shape)}")
        length = dna.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds the model's {self.max_len}")
        pos = torch.arange(length, device=dna.device)
        x = self.dna_emb(dna) + self.meth_emb(meth) + self.pos_emb(pos)[None]  # (B, L, D)
        if self.joint_emb is not None:
            x = x + self.joint_emb(dna * METH_VOCAB + meth)
        features = None
        if self.panel is not None:
            if window is None:
                raise ValueError("this model is bound to a panel: pass the reads' window indices")
            features = self.panel(window, meth)  # (B, L)
            if self.cpg_emb is not None:
                cpg_vectors = self.cpg_emb(features)  # (B, L, cpg_embedding_dim), zero where no call
                x = x + (self.cpg_proj(cpg_vectors) if self.cpg_proj is not None else cpg_vectors)
        token_log_p = self.counts.token_log_p(features, leave_out) if self.counts is not None else None  # (B, L, T)
        if self.count_proj is not None:
            x = x + self.count_proj(token_log_p - token_log_p.mean(-1, keepdim=True)).to(x.dtype)
        x = self.emb_drop(x)
        keep = dna != DNA_PAD  # (B, L)
        # Windows inside a chromosome have no padding: skip the mask so SDPA can use its fast path.
        attn_mask = None if bool(keep.all()) else keep[:, None, None, :]  # (B, 1, 1, L)
        for layer in self.layers:
            x = layer(x, attn_mask)
        x = self.norm(x)
        if self.head is not None:
            logits = self.head(self._pool(x, keep, meth))
        else:
            logits = x.new_zeros(x.shape[0], self.n_tissues)
        if self.cpg_logit is not None:
            logits = logits + self.cpg_logit(features).sum(1).to(logits.dtype)  # (B, T)
        if self.states is not None:
            logits = logits + self.states(x, features, window, meth).to(logits.dtype)
        if self.counts is not None:
            if self.count_weight is not None:
                token_log_p = token_log_p * (2.0 * torch.sigmoid(self.count_weight(x).float()))  # (B, L, T) x (B, L, 1)
            logits = logits + self.counts(token_log_p).to(logits.dtype)
        if with_calls:
            return logits, self.call_head(x)
        return logits

    @torch.no_grad()
    def set_states(self, theta: np.ndarray, pi: np.ndarray) -> None:
        """Start the fragment-state head from a fitted atlas (data/state_atlas.py): theta (C, K)
        P(methylated | panel CpG, state), or (C, T, K) with per-tissue emissions -> the emission
        table (log theta for M, log(1 - theta) for U), pi (W, T, K) state shares -> the prior table
        (log pi; the head's log_softmax leaves it)."""
        if self.states is None:
            raise ValueError("this model has no fragment-state head (model.fragment_states)")
        n_features, n_states = self.states.emission.weight.shape[0], self.states.n_states
        need = ((n_features - 1) // 2,) + ((self.n_tissues,) if self.states.per_tissue else ()) + (n_states,)
        if theta.shape != need:
            raise ValueError(f"theta of shape {theta.shape}, the head needs {need}")
        theta = theta.reshape(need[0], -1)
        if pi.shape != (self.states.prior.weight.shape[0], self.n_tissues, n_states):
            raise ValueError(f"pi of shape {pi.shape}, the head needs "
                             f"({self.states.prior.weight.shape[0]}, {self.n_tissues}, {n_states})")
        emission = torch.zeros(n_features, theta.shape[1], dtype=torch.float64)
        emission[0:-1:2] = torch.from_numpy(np.log1p(-theta))  # feature 2g: U
        emission[1:-1:2] = torch.from_numpy(np.log(theta))  # feature 2g + 1: M
        self.states.emission.weight.copy_(emission.float())
        self.states.prior.weight.copy_(torch.from_numpy(np.log(pi)).reshape(pi.shape[0], -1).float())

    @torch.no_grad()
    def set_tally(self, tally: torch.Tensor) -> None:
        """Replace the count route's tally with counts made elsewhere ((panel features, T), the
        whole training split's: ``TrainSampler.call_tally``)."""
        if self.counts is None:
            raise ValueError("this model has no count route (model.cpg_counts)")
        if tuple(tally.shape) != tuple(self.counts.tally.shape):
            raise ValueError(f"tally of shape {tuple(tally.shape)}, the model's is {tuple(self.counts.tally.shape)}")
        self.counts.tally.copy_(tally)

    @torch.no_grad()
    def observe(self, meth: torch.Tensor, window: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch of labelled training reads to the count route's tally (no-op without one).

        The training loop calls it after the batch's forward pass, so a read is scored before its
        own calls are counted: the rest of the model learns against the count route's
        out-of-sample evidence, as it will meet it on new reads.
        """
        if self.counts is not None:
            self.counts.observe(self.panel(window, meth), labels)

    def _pool(self, x: torch.Tensor, keep: torch.Tensor, meth: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, D) over the non-PAD tokens ("mean"), the tokens with a CpG call ("cpg":
        only ~8 of 148 tokens carry one, and averaging over all dilutes them ~18x), or a learned
        softmax weighting of the non-PAD tokens ("attention")."""
        if self.pooling == "attention":
            scores = self.pool_query(x).squeeze(-1).float().masked_fill(~keep, float("-inf"))  # (B, L)
            return (scores.softmax(-1).to(x.dtype).unsqueeze(-1) * x).sum(1)
        weights = keep
        if self.pooling == "cpg":
            called = keep & (meth <= METH_M)
            # a read without any call in the window (possible only with min_cpgs = 0 inputs) falls back to mean
            weights = torch.where(called.any(1, keepdim=True), called, keep)
        weights = weights.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, D)


class FragmentStateHead(nn.Module):
    """Tissue logits from the fragment's state: logsumexp_k [log pi[window, tissue, k] + e_k(read)].

    A fragment comes from one cell and one allele, so the CpGs it covers in a marker region share
    one methylation state (the U / X / M fragments of Loyfer et al. 2023 and UXM); a tissue is
    told by how often its fragments are in each state there, not by each CpG on its own. With K
    states:

    - ``emission`` (per (panel CpG, call), K values, padding row zero): log p(call | state k) for
      each CpG, initialised to K states whose methylation probability runs evenly from 0.05 to
      0.95 (K = 3: U, X, M), so from step 0 the head already sorts reads by state;
    - ``token`` (Linear hidden -> K, zero-initialised): the encoder's correction per called token
      (context the tables cannot see: neighbouring calls, which CpGs go together);
    - ``prior`` (per window, T x K, zero-initialised = uniform): log pi, the per-tissue state
      distribution of the window, normalised over the states.

    The read's evidence e_k is the sum over its called tokens, so ten concordant calls weigh more
    than one but saturate once the state is certain: the within-fragment structure an additive
    per-CpG model (the logistic regression) cannot express. Both tables are panel tables
    (train.panel_lr).

    ``per_tissue``: the emission table holds T x K values per (panel CpG, call), column t K + k
    for tissue t's state k, so a state's methylation level at a CpG may differ between tissues
    (``model.state_emissions`` = tissue); the read's evidence is then (T, K).
    """

    def __init__(self, *, n_states: int, n_tissues: int, hidden: int, n_features: int, n_windows: int,
                 per_tissue: bool = False) -> None:
        super().__init__()
        self.n_states = n_states
        self.n_tissues = n_tissues
        self.per_tissue = per_tissue
        width = n_states * (n_tissues if per_tissue else 1)
        self.emission = nn.Embedding(n_features, width, padding_idx=n_features - 1)
        q = torch.linspace(0.05, 0.95, n_states, dtype=torch.float64).repeat(width // n_states)
        with torch.no_grad():
            per_cpg = self.emission.weight[:-1].view(-1, 2, width)  # (C, call, width); feature = 2 * CpG + call
            per_cpg[:, METH_U] = torch.log1p(-q).float()
            per_cpg[:, METH_M] = torch.log(q).float()
            self.emission.weight[-1].zero_()  # padding: tokens without a call
        self.token = nn.Linear(hidden, n_states)
        nn.init.zeros_(self.token.weight)
        nn.init.zeros_(self.token.bias)
        self.prior = nn.Embedding(n_windows, n_tissues * n_states)
        nn.init.zeros_(self.prior.weight)

    def forward(self, x: torch.Tensor, features: torch.Tensor, window: torch.Tensor, meth: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) encoder output, features (B, L) panel feature ids, window (B,), meth (B, L) -> (B, T)."""
        called = (meth <= METH_M).unsqueeze(-1)  # (B, L, 1)
        token = self.token(x).float().masked_fill(~called, 0.0)
        log_pi = self.prior(window).view(-1, self.n_tissues, self.n_states).log_softmax(-1)  # (B, T, K)
        if self.per_tissue:
            emitted = self.emission(features).sum(1).view(-1, self.n_tissues, self.n_states)  # (B, T, K)
            return torch.logsumexp(log_pi + emitted + token.sum(1)[:, None, :], dim=-1)
        evidence = (self.emission(features) + token).sum(1)  # (B, K)
        return torch.logsumexp(log_pi + evidence[:, None, :], dim=-1)


class CpGCounts(nn.Module):
    """Tissue log-likelihoods of a read from counted calls: sum over its calls of log p(call | CpG, tissue).

    ``tally`` (buffer, (2 x panel CpGs + 1, T), float32: exact to 2^24 per cell) holds how many
    training reads of each tissue carried each (panel CpG, call); the last row (tokens without a
    call) stays zero. The frequency of a call at a CpG in tissue t is shrunk towards the CpG's
    rate over all tissues (the sampler is tissue-balanced, so that is the unweighted pool):

        p(c | g, t) = (n[g, c, t] + a x q[g, c]) / (n[g, t] + a),   q[g, c] = (n[g, c] + 1) / (n[g] + 2)

    with ``a`` the prior strength (``model.count_prior``, in reads). The read's evidence for t is
    the sum of log p over its called CpGs, times a learned ``scale`` = exp(``log_scale``) (1 at the
    start: the plain naive-Bayes likelihood; the loss adjusts how far it is trusted).

    Why counts and not a learned table: per-CpG frequencies are what the oracle's likelihood is
    made of, and counting estimates them from every read that covers a CpG, where a gradient-
    trained table (or the logistic regression) moves a row by at most ~lr per step its CpG is in a
    batch. On the ``small`` cohort (1,717 windows, 22 tissues) the counted likelihood alone is as
    accurate after 96,000 reads as the logistic regression after 192,000 (docs/training.md).
    """

    def __init__(self, *, n_features: int, n_tissues: int, prior: float) -> None:
        super().__init__()
        if prior <= 0:
            raise ValueError(f"the count prior must be > 0, got {prior}")
        self.prior = float(prior)
        self.pad = n_features - 1
        self.register_buffer("tally", torch.zeros(n_features, n_tissues, dtype=torch.float32))
        # the scale is exp(log_scale) > 0: a free scale can turn negative (measured on `small` next to
        # the learned logit table, whose over-confidence it then cancels by voting against the counts)
        self.log_scale = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def token_log_p(self, features: torch.Tensor, leave_out: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) feature ids -> (B, L, T) log p(call | CpG, tissue) of each called token, 0 elsewhere.

        ``leave_out`` (B,) tissue labels: the reads are in the tally (``train.count_source`` =
        ``split``) and each read's own calls are taken out of its own evidence (leave-one-out), so
        training sees the counts as a new read will."""
        called = features != self.pad  # (B, L)
        own = torch.where(called, features, torch.zeros_like(features))
        mine = self.tally[own]  # (B, L, T) reads of each tissue with this call
        if leave_out is not None:
            self_count = F.one_hot(leave_out.long(), self.tally.shape[1]).to(mine.dtype)[:, None, :]  # (B, 1, T)
            mine = (mine - self_count * called.unsqueeze(-1)).clamp_min(0.0)
        other = self.tally[own ^ 1]  # ... with the other call at the same CpG (feature 2g + c <-> 2g + 1 - c)
        total = mine + other
        pooled = (mine.sum(-1, keepdim=True) + 1.0) / (total.sum(-1, keepdim=True) + 2.0)  # (B, L, 1)
        log_p = torch.log((mine + self.prior * pooled) / (total + self.prior))
        return log_p.masked_fill(~called.unsqueeze(-1), 0.0)

    def log_likelihood(self, features: torch.Tensor) -> torch.Tensor:
        """(B, L) feature ids -> (B, T) sum of log p(call | CpG, tissue) over the called tokens (no scale)."""
        return self.token_log_p(features).sum(1)

    def forward(self, token_log_p: torch.Tensor) -> torch.Tensor:
        """(B, L, T) per-token evidence (:meth:`token_log_p`, possibly weighted) -> (B, T) scale x its sum."""
        return self.log_scale.exp() * token_log_p.sum(1)

    @torch.no_grad()
    def observe(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Count each called token of each read under its read's tissue label."""
        called = features != self.pad
        tissue = labels.to(features.device)[:, None].expand_as(features)
        self.tally.index_put_((features[called], tissue[called]),
                              torch.ones((), dtype=self.tally.dtype, device=self.tally.device), accumulate=True)


def build_model(model_cfg, n_tissues: int, panel=None) -> TissueBERT:
    """Model from a :class:`tissuebert.config.ModelConfig`; ``panel`` (a store Panel, or the
    ``panel_buffers`` dict) is needed when the config uses the panel-bound parts."""
    if model_cfg.fragment_states == "auto":
        raise ValueError("model.fragment_states = auto is resolved to a number of states when a training run starts "
                         "(train/setup.py: resolve_fragment_states); build the model from that run's config, or set "
                         "model.fragment_states to a number")
    panel_bound = bool(model_cfg.cpg_embedding_dim or model_cfg.cpg_logits or model_cfg.fragment_states
                       or model_cfg.cpg_counts)
    if panel is not None and not isinstance(panel, dict):
        panel = panel_buffers(panel)
    return TissueBERT(n_tissues=n_tissues, n_layers=model_cfg.n_layers, hidden=model_cfg.hidden,
                      n_heads=model_cfg.n_heads, ffn=model_cfg.ffn, dropout=model_cfg.dropout,
                      head_hidden=model_cfg.head_hidden, attention=model_cfg.attention, pooling=model_cfg.pooling,
                      cpg_embedding_dim=model_cfg.cpg_embedding_dim, cpg_logits=model_cfg.cpg_logits,
                      joint_tokens=model_cfg.joint_tokens, fragment_states=model_cfg.fragment_states,
                      state_emissions=model_cfg.state_emissions,
                      cpg_counts=model_cfg.cpg_counts, count_prior=model_cfg.count_prior,
                      count_features=model_cfg.count_features, count_weights=model_cfg.count_weights,
                      head_logits=model_cfg.head_logits, call_head=model_cfg.call_head,
                      panel=panel if panel_bound else None)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""Plain re-implementations for the fragment-state atlas tests: a store's reads listed straight from
its sample files, and the head's likelihood of one read written out with loops."""

from __future__ import annotations

import math

import numpy as np
import torch

from tissuebert.store.sample import unpack_calls


def calls_from_files(store, split: str = "train", min_calls: int = 1) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """[(window, tissue id, [(panel CpG, call 0 = U / 1 = M)])] of every read of ``split`` with at
    least ``min_calls`` calls in its window, in file order."""
    panel = store.panel
    out = []
    for rec in store.samples(split):
        r = store.reads(rec)
        codes = unpack_calls(np.asarray(r.calls), panel.max_cpgs)
        for w, row in zip(np.asarray(r.window_idx).tolist(), codes):
            calls = [(int(panel.cpg_ptr[w]) + j, int(c)) for j, c in enumerate(row[:panel.n_cpgs[w]]) if c < 2]
            if len(calls) >= max(min_calls, 1):
                out.append((w, rec.tissue_id, calls))
    return out


def head_by_hand(panel, w: int, codes, log_pi, emission) -> np.ndarray:
    """(T,) log sum_k pi[w, t, k] prod_j p(call_j | CpG, state k[, tissue t]) of one read whose
    per-slot codes are ``codes``; ``log_pi`` (T, K) the window's log shares, ``emission(g, t, k)``
    = P(M | panel CpG g, tissue t, state k)."""
    n_tissues, n_states = log_pi.shape
    out = np.zeros(n_tissues)
    for t in range(n_tissues):
        terms = []
        for k in range(n_states):
            ll = float(log_pi[t, k])
            for j in range(panel.n_cpgs[w]):
                if codes[j] < 2:
                    p = emission(int(panel.cpg_ptr[w]) + j, t, k)
                    ll += math.log(p if codes[j] == 1 else 1 - p)
            terms.append(ll)
        out[t] = np.logaddexp.reduce(terms)
    return out


def head_output(model, panel, w: int, codes, hidden: int) -> np.ndarray:
    """(T,) the model's fragment-state head on that read, the encoder's correction zero."""
    meth = torch.full((1, 148), 2)
    offsets = panel.padded_offsets()[w]
    for j in range(panel.n_cpgs[w]):
        meth[0, offsets[j]] = int(codes[j])
    window = torch.tensor([w])
    x = torch.zeros(1, 148, hidden)
    return model.states(x, model.panel(window, meth), window, meth)[0].detach().double().numpy()

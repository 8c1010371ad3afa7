"""Probe (not part of the package): a fragment-state atlas whose state runs along the read.

The model's fragment-state head has one methylation state per read and window
the simulator draws
one per methylation block (a window holds ~3 on `small`, ~5 on `structured`). This probe fits, by EM
(forward-backward), a chain of states along a read's CpG slots: the state at the read's first called
CpG g is drawn from pi[g, tissue]
at each later slot it is kept with probability rho[g] (shared by
the tissues) or redrawn from pi[g, tissue]
state k methylates CpG g with probability theta[g, k].
It then scores the test split's reads under every tissue and prints their log-loss, accuracy and
the error of pseudo-mixtures of them at infinite depth (train/atlas_choice.py: mixture_error)
beside the window atlas's (data/state_atlas.py, shared and per-tissue emissions) on the same reads:
what building the chain into the head would gain (docs/training.md, "A fragment-state atlas in the model").

    python benchmarks/chain_atlas_probe.py --store STORE --iterations 30
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tissuebert.data.sampler import TrainSampler
from tissuebert.data.state_atlas import atlas_tissue_loglik, fit_state_atlas, split_reads
from tissuebert.store.store import Store
from tissuebert.train.atlas_choice import mixture_error

K = 3


def slots(dims, cell, valid):
    """(U, S) panel CpG of each slot, (U, S) slot inside the read's called span, (U,) first called slot."""
    T, C, cpg_ptr = dims
    w = cell // T
    S = valid.shape[1]
    g = cpg_ptr[w][:, None] + np.arange(S)[None]
    # active span: first..last valid slot
    idx = np.arange(S)[None]
    first = np.where(valid.any(1), valid.argmax(1), 0)
    last = S - 1 - valid[:, ::-1].argmax(1)
    active = (idx >= first[:, None]) & (idx <= last[:, None])
    return np.minimum(g, C - 1), active, first

def loglik_all(dims, theta, pi, rho, cell, meth, valid, tissues):
    """(U, len(tissues)) log p(read | t) by scaled forward."""
    g, active, first = slots(dims, cell, valid)
    U, S = valid.shape
    out = np.zeros((U, len(tissues)))
    lt, lu = np.log(theta), np.log1p(-theta)
    em = np.where(valid[..., None], np.exp(np.where(meth[..., None], lt[g], lu[g])), 1.0)  # (U,S,K)
    for i, t in enumerate(tissues):
        alpha = np.zeros((U, K))
        ll = np.zeros(U)
        started = np.zeros(U, bool)
        for j in range(S):
            a = active[:, j]
            pj = pi[g[:, j], t]  # (U,K)
            r = rho[g[:, j]][:, None]
            new = np.where(started[:, None], r * alpha + (1 - r) * pj * alpha.sum(1, keepdims=True), pj)
            new = new * em[:, j]
            s = new.sum(1)
            upd = a
            ll = np.where(upd, ll + np.log(np.where(upd, s, 1.0)), ll)
            alpha = np.where(upd[:, None], new / np.where(upd, s, 1.0)[:, None], alpha)
            started |= a
        out[:, i] = ll
    return out

def fit(dims, cell, meth, valid, wt, iters, pi_prior=None):
    """EM (scaled forward-backward) -> theta (C, K), pi (C, T, K), rho (C,)."""
    T, C, _ = dims
    theta = np.tile(np.linspace(0.05, 0.95, K), (C, 1))
    pi = np.full((C, T, K), 1.0 / K)
    rho = np.full(C, 0.8)
    g, active, first = slots(dims, cell, valid)
    tis = cell % T
    U, S = valid.shape
    for it in range(iters):
        t0 = time.time()
        lt, lu = np.log(theta), np.log1p(-theta)
        em = np.where(valid[..., None], np.exp(np.where(meth[..., None], lt[g], lu[g])), 1.0)
        P_ = pi[g, tis[:, None]]  # (U,S,K)
        R = rho[g]  # (U,S)
        # forward (scaled)
        A = np.zeros((U, S, K))
        c = np.ones((U, S))
        started = np.zeros(U, bool)
        prev = np.zeros((U, K))
        for j in range(S):
            a = active[:, j]
            carried = R[:, j, None] * prev + (1 - R[:, j, None]) * P_[:, j] * prev.sum(1, keepdims=True)
            new = np.where(started[:, None], carried, P_[:, j])
            new = new * em[:, j]
            s = np.where(a, new.sum(1), 1.0)
            new = new / s[:, None]
            prev = np.where(a[:, None], new, prev)
            A[:, j] = np.where(a[:, None], new, 0.0)
            c[:, j] = s
            started |= a
        ll = np.log(c).sum(1)
        # backward
        B = np.ones((U, S, K))
        nxt = np.ones((U, K))
        stay_n = np.zeros((C, 1))
        tot_n = np.zeros(C)
        pi_n = np.zeros((C, T, K))
        th_m = np.zeros((C, K))
        th_c = np.zeros((C, K))
        for j in range(S - 1, -1, -1):
            a = active[:, j]
            B[:, j] = np.where(a[:, None], nxt, 1.0)
            if j > 0:
                # transition into j from j-1 (only where both active, i.e. j active and not the first)
                tr = a & (j > first)
                eb = em[:, j] * B[:, j]  # (U,K)
                Aprev = A[:, j - 1]
                stay = R[:, j, None] * Aprev * eb / c[:, j, None]  # (U,K) joint posterior of stay & s_j=k
                redraw = (1 - R[:, j, None]) * P_[:, j] * Aprev.sum(1, keepdims=True) * eb / c[:, j, None]
                wgt = (wt * tr)[:, None]
                np.add.at(stay_n[:, 0], g[:, j], (stay * wgt).sum(1))
                np.add.at(tot_n, g[:, j], ((stay + redraw) * wgt).sum(1))
                np.add.at(pi_n, (g[:, j], tis), redraw * wgt)
                # backward message to j-1: beta_{j-1}(k) = [rho * eb(k) + (1-rho) sum_k' pi(k') eb(k')] / c_j
                nb = (R[:, j, None] * eb + (1 - R[:, j, None]) * (P_[:, j] * eb).sum(1, keepdims=True)) / c[:, j, None]
                nxt = np.where(tr[:, None], nb, np.ones((U, K)))
        post = A * B  # (U,S,K) posterior of s_j
        # first-slot draws
        fi = np.arange(U)
        np.add.at(pi_n, (g[fi, first], tis), post[fi, first] * wt[:, None])
        vw = valid * wt[:, None]
        for k in range(K):
            np.add.at(th_c[:, k], g[valid], (post[..., k] * vw)[valid])
            np.add.at(th_m[:, k], g[valid], (post[..., k] * vw * meth)[valid])
        theta = np.clip((th_m + 0.5) / (th_c + 1.0), 1e-4, 1 - 1e-4)
        if pi_prior is None:  # one pseudo-draw of every state
            pi = (pi_n + 1.0) / (pi_n + 1.0).sum(-1, keepdims=True)
        else:  # each tissue's state distribution at a CpG shrunk towards the tissues' pooled one
            pooled = (pi_n.sum(1, keepdims=True) + 1.0) / (pi_n.sum(1, keepdims=True) + 1.0).sum(-1, keepdims=True)
            pi = (pi_n + pi_prior * pooled) / (pi_n + pi_prior * pooled).sum(-1, keepdims=True)
        rho = np.clip((stay_n[:, 0] + 1.0) / (tot_n + 2.0), 1e-3, 1 - 1e-3)
        print(f"iter {it} ll/read {ll @ wt / wt.sum():.4f} ({time.time()-t0:.1f}s) mean rho {rho.mean():.3f}", flush=True)
    return theta, pi, rho


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--pi-prior", type=float, default=None,
                        help="draws shrinking each tissue's state distribution towards the pooled one "
                             "(default: one uniform pseudo-draw per state)")
    parser.add_argument("--mixtures", type=int, default=200, help="pseudo-mixtures of the test reads")
    args = parser.parse_args()
    st = Store.open(args.store)
    T = len(st.tissues)
    dims = (T, int(st.panel.cpg_ptr[-1]), np.asarray(st.panel.cpg_ptr))
    train = TrainSampler(st, split="train")
    cell, _, meth, valid, wt = split_reads(train)
    theta, pi, rho = fit(dims, cell, meth, valid, wt, args.iterations, args.pi_prior)
    tcell, tcpg, tmeth, tvalid, twt = split_reads(TrainSampler(st, split="test"))
    tis = tcell % T

    def scores(loglik: np.ndarray) -> tuple[float, float]:
        post = loglik[np.arange(len(tis)), tis] - np.logaddexp.reduce(loglik, 1)
        return float(-(post @ twt) / twt.sum()), float(((loglik.argmax(1) == tis) @ twt) / twt.sum())

    test = (tcell, tcpg, tmeth, tvalid, twt)
    chain = loglik_all(dims, theta, pi, rho, tcell, tmeth, tvalid, range(T))
    print("chain atlas, test reads: log-loss %.4f, accuracy %.4f, mixture error %.5f"
          % (*scores(chain), mixture_error(chain, test, T, mixtures=args.mixtures)))
    reads = split_reads(train)
    shared = fit_state_atlas(train, K, reads=reads)
    for name, (th, p3) in [("window atlas, shared emissions", shared),
                           ("window atlas, per-tissue emissions (a = 100)",
                            fit_state_atlas(train, K, iterations=20, tissue_prior=100.0, reads=reads, start=shared))]:
        window = atlas_tissue_loglik(th, p3, test)
        print("%s, test reads: log-loss %.4f, accuracy %.4f, mixture error %.5f"
              % (name, *scores(window), mixture_error(window, test, T, mixtures=args.mixtures)))


if __name__ == "__main__":
    main()

"""Latent fragment structure: a fragment comes from one cell (a subtype of its tissue) and one
allele, so the states of all the blocks it spans are drawn from the same latent class.

Without it (the default) every block's state is drawn independently from the tissue profile
``pi[b, t]``. With it, a fragment of tissue ``t`` first draws a latent class ``(k, a)``: a
cell subtype ``k`` with probability ``subtype_weight[t, k]`` and an allele ``a`` with
probability ``1 / A``; block states are then independent given the class, with probabilities
``latent_pi[b, t, k, a]``. The classes split the tissue's U fragments between them without
changing the tissue profile: ``sum_k,a w[t, k] / A * latent_pi[b, t, k, a] = pi[b, t]`` exactly,
so bulk statistics (beta values, U fractions, what UXM and NNLS see) are those of the
unstructured cohort of the same seed, and only the joint pattern of a read's blocks changes.

The split is "water-filling": the U share ``u`` of a block is poured into the classes in a
random order (a class is filled to 1 before the next gets any), which is the most polarised
split whose mean is ``u``; ``contrast`` blends it with the even split (every class ``u``).
"""

from __future__ import annotations

import numpy as np

# Dirichlet concentration (per subtype) of a tissue's subtype weights: weights vary around 1/K
# (with K = 3, ~0.33 +- 0.15) so subtypes are neither equal nor negligible
SUBTYPE_WEIGHT_CONCENTRATION = 3.0
SUBTYPE_MIX = "subtype_mix"  # block type of the regions made by subtype_mix_regions
SUBTYPE_MIX_U = (0.35, 0.65)  # their U share, the same in every tissue


def subtype_mix_regions(pi: np.ndarray, types: list[str], targets: list[str], blk_region: np.ndarray,
                        n_regions: int, share: float, rng: np.random.Generator
                        ) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """Turn ``share`` of the regions into regions of intermediate methylation carried by cell
    subtypes: every block's U share is drawn from SUBTYPE_MIX_U once, the same in every tissue
    (P(X) is kept), so bulk levels there say nothing about the tissue; with subtypes, which of
    the blocks are unmethylated together on one fragment does (see :func:`subtype_split`).
    Returns the new pi, types, targets and the (R,) mask of these regions."""
    n_mix = int(round(share * n_regions))
    mask = np.zeros(n_regions, dtype=bool)
    mask[rng.permutation(n_regions)[:n_mix]] = True
    blocks = np.flatnonzero(mask[blk_region])
    pi, types, targets = pi.copy(), list(types), list(targets)
    u = rng.uniform(*SUBTYPE_MIX_U, size=blocks.size)[:, None]
    pi[blocks] = _profiles(np.broadcast_to(u, pi[blocks, :, 0].shape), pi[blocks, :, 1])
    for b in blocks.tolist():
        types[b], targets[b] = SUBTYPE_MIX, ""
    return pi, types, targets, mask


def water_fill(u: np.ndarray, weights: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Most polarised split of U shares ``u`` (...) among classes of ``weights`` (..., K) filled
    in ``order`` (..., K, a permutation of 0..K-1): returns (..., K) shares with
    ``sum_k weights[k] * out[k] == u``."""
    w_ordered = np.take_along_axis(weights, order, axis=-1)
    before = np.cumsum(w_ordered, axis=-1) - w_ordered  # weight poured before each class
    filled = np.clip((u[..., None] - before) / np.maximum(w_ordered, 1e-300), 0.0, 1.0)
    out = np.empty_like(filled)
    np.put_along_axis(out, order, filled, axis=-1)
    return out


def subtype_split(pi: np.ndarray, weights: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """(B, T, 3) tissue profiles and (T, K) subtype weights -> (B, T, K, 3) subtype profiles.

    Each (block, tissue) gets its own random filling order: the subtype that carries a tissue's
    U fragments at one block need not carry them at the next (different regulatory elements of
    one locus used by different cell types), so tissues with the same bulk levels can differ in
    which blocks are unmethylated together on one fragment.
    """
    n_blocks, n_tissues, _ = pi.shape
    n_sub = weights.shape[1]
    p_x = pi[..., 1]
    u = pi[..., 0] / np.maximum(pi[..., 0] + pi[..., 2], 1e-300)  # U share among U/M fragments
    order = np.argsort(rng.random((n_blocks, n_tissues, n_sub)), axis=-1)
    w = np.broadcast_to(weights[None], (n_blocks, n_tissues, n_sub))
    u_sub = (1.0 - contrast) * u[..., None] + contrast * water_fill(u, w, order)
    return _profiles(u_sub, p_x[..., None])


def allele_split(pi_sub: np.ndarray, region_asm: np.ndarray, blk_region: np.ndarray) -> np.ndarray:
    """(B, T, K, 3) -> (B, T, K, 2, 3): in regions with allele-specific methylation the U
    fragments of every block come from the first allele as far as possible (U share min(1, 2u)
    there, max(0, 2u - 1) on the other), in every tissue and subtype, as at an imprinted locus
    whose paternal copy is methylated; elsewhere both alleles follow the subtype."""
    p_x = pi_sub[..., 1]
    u = pi_sub[..., 0] / np.maximum(pi_sub[..., 0] + pi_sub[..., 2], 1e-300)
    asm = region_asm[blk_region][:, None, None]  # (B, 1, 1)
    first = np.where(asm, np.minimum(1.0, 2.0 * u), u)
    second = np.where(asm, np.maximum(0.0, 2.0 * u - 1.0), u)
    return _profiles(np.stack([first, second], axis=-1), p_x[..., None])


def _profiles(u_share: np.ndarray, p_x: np.ndarray) -> np.ndarray:
    """U shares and the (broadcast) X probability -> (..., 3) state probabilities U, X, M."""
    p_x = np.broadcast_to(p_x, u_share.shape)
    return np.stack([(1.0 - p_x) * u_share, p_x, (1.0 - p_x) * (1.0 - u_share)], axis=-1)


def latent_structure(pi: np.ndarray, blk_region: np.ndarray, n_regions: int, *, subtypes: int, contrast: float,
                     asm_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subtype weights (T, K), latent profiles (B, T, K, A, 3) and the ASM flag per region (R,).

    A = 2 when any region has allele-specific methylation, else 1. Draws only from ``rng``, so
    the panel and tissue profiles of a seed do not depend on the structure settings.
    """
    n_tissues = pi.shape[1]
    weights = rng.dirichlet(np.full(subtypes, SUBTYPE_WEIGHT_CONCENTRATION), size=n_tissues) if subtypes > 1 \
        else np.ones((n_tissues, 1))
    pi_sub = subtype_split(pi, weights, contrast, rng) if subtypes > 1 else pi[:, :, None, :].copy()
    n_asm = int(round(asm_fraction * n_regions))
    region_asm = np.zeros(n_regions, dtype=bool)
    region_asm[rng.permutation(n_regions)[:n_asm]] = True
    latent_pi = allele_split(pi_sub, region_asm, blk_region) if n_asm else pi_sub[:, :, :, None, :]
    return weights, latent_pi, region_asm

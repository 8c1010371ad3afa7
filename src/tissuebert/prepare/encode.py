"""DNA encoding: a 150 bp window -> 148 overlapping 3-mer tokens."""

from __future__ import annotations

import numpy as np

from tissuebert.constants import DNA_KMER_OFFSET, DNA_NKMER, KMER, N_TOKENS, WINDOW_BP

# byte -> base code 0..3 (A, C, G, T), 4 for anything else; soft-masked bases count as upper case
_BASE_CODE = np.full(256, 4, dtype=np.uint8)
for _code, _base in enumerate("ACGT"):
    _BASE_CODE[ord(_base)] = _code
    _BASE_CODE[ord(_base.lower())] = _code


def base_codes(seq: str | bytes) -> np.ndarray:
    """Sequence -> (L,) uint8 codes, A=0 C=1 G=2 T=3, other=4."""
    raw = seq.encode() if isinstance(seq, str) else seq
    return _BASE_CODE[np.frombuffer(raw, dtype=np.uint8)]


def kmer_tokens(codes: np.ndarray) -> np.ndarray:
    """(..., L) base codes -> (..., L - 2) 3-mer tokens (DNA_NKMER where a base is not ACGT)."""
    codes = np.asarray(codes, dtype=np.int64)
    a, b, c = codes[..., :-2], codes[..., 1:-1], codes[..., 2:]
    tok = a * 16 + b * 4 + c + DNA_KMER_OFFSET
    bad = (a > 3) | (b > 3) | (c > 3)
    tok[bad] = DNA_NKMER
    return tok.astype(np.uint8)


def window_tokens(seq: str | bytes) -> np.ndarray:
    """A 150 bp window's sequence -> its (148,) uint8 DNA tokens."""
    codes = base_codes(seq)
    if codes.shape[0] != WINDOW_BP:
        raise ValueError(f"a window is {WINDOW_BP} bp, got {codes.shape[0]}")
    out = kmer_tokens(codes)
    assert out.shape[0] == N_TOKENS and KMER == 3
    return out


def cpg_offsets(seq: str | bytes) -> np.ndarray:
    """Offsets (0..147) of every CpG's C in a 150 bp window (a CpG needs its G inside the window)."""
    codes = base_codes(seq)
    is_cg = (codes[:-1] == 1) & (codes[1:] == 2)
    offs = np.flatnonzero(is_cg)
    return offs[offs < N_TOKENS].astype(np.uint8)

"""Nearest alternative codes of a token: the primitive pFID's latent perturbation draws from.

A token is one unit an AR model predicts: an index (VQ; each sub-index of factorized codes; each scale's
index of multi-scale codes) or a position's code (binary bits, levels). ``quantizer.neighbours(z, k)``
returns, for every token of the features ``z``, its ``k`` candidate codes nearest first, in the
quantizer's own distance to the pre-quantization feature (column 0 is the clean code):

* codebooks: the ``k`` nearest codebook entries, shape ``(*tokens, k)``;
* binary (LFQ, BSQ): the code and the codes one bit flip away, cheapest flip first (``|u_i|``, the
  feature's distance from the sign boundary), at most ``d + 1``, shape ``(*positions, k, d)``;
* levels (FSQ, TokenBridge, 8-bit baselines): the code and the codes one channel one level away, nearest
  to the feature first, at most ``1 + 2C``; a move past the end of the range stays the clean code; shape
  ``(*positions, k, C)``.

How many tokens move and which candidate they take (the sampling policy) is the benchmark's business:
`vtbench.bench.perturbation`.
"""

from __future__ import annotations

import torch


def nearest_candidates(distances: torch.Tensor, k: int) -> torch.Tensor:
    """(N, K) distances to every code -> (N, min(k, K)) code indices, nearest first."""
    return distances.topk(min(k, distances.shape[1]), dim=1, largest=False).indices


def binary_candidates(features: torch.Tensor, bits: torch.Tensor, k: int) -> torch.Tensor:
    """Features and bits ``(N, d)`` -> ``(N, min(k, d + 1), d)``: the code, then its cheapest single-bit flips."""
    n, d = bits.shape
    k = min(k, d + 1)
    flips = features.abs().argsort(dim=1)[:, : k - 1]  # (N, k-1) bit positions, cheapest first
    cand = bits[:, None, :].repeat(1, k, 1)
    rows = torch.arange(n, device=bits.device)[:, None].expand(-1, k - 1)
    cols = torch.arange(1, k, device=bits.device)[None, :].expand(n, -1)
    cand[rows, cols, flips] = 1 - cand[rows, cols, flips]
    return cand


def level_candidates(values: torch.Tensor, codes: torch.Tensor, levels: torch.Tensor, k: int) -> torch.Tensor:
    """Level tokens ``(N, C)``: ``values`` are the features on the level axis (level i sits at i), ``levels``
    (C,) the number of levels per channel. Returns ``(N, min(k, 1 + 2C), C)``: the code, then each channel
    moved one level up or down, nearest to the feature first (moves out of range stay the code)."""
    n, c = codes.shape
    eye = torch.eye(c, dtype=torch.long, device=codes.device)
    cand = codes[:, None, :] + torch.cat([eye, -eye])[None]  # (N, 2C, C)
    valid = ((cand >= 0) & (cand < levels.to(codes.device))).all(-1)
    cost = (cand.float() - values[:, None, :]).abs().sum(-1)
    order = torch.where(valid, cost, torch.inf).argsort(dim=1)[:, : min(k, 1 + 2 * c) - 1]
    moved = cand.gather(1, order[..., None].expand(-1, -1, c))
    moved = torch.where(valid.gather(1, order)[..., None], moved, codes[:, None, :])
    return torch.cat([codes[:, None, :], moved], dim=1)

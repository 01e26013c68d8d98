"""Latent perturbation for pFID: replace a fraction ``alpha`` of tokens by near neighbours.

A token is one unit an AR model predicts: an index (VQ; each sub-index for factorized codes; each scale's
index for multi-scale codes) or a position's code (binary bits, levels). With probability ``alpha`` a
token is replaced by a uniform draw among its ``delta`` nearest codes, nearness measured to the
encoder's pre-quantization feature with the quantizer's own distance; the draw includes the code itself,
so ``delta = 1`` changes nothing. Where a layout has no enumerable codebook the candidates are:

* binary (LFQ, BSQ): the code and the codes one bit flip away, ordered by the cost of the flip
  (``|u_i|``, the feature's distance from the sign boundary); ``delta`` is capped at ``d + 1``;
* levels (FSQ, TokenBridge, 8-bit baselines): the code and the codes that move one channel to an
  adjacent level, ordered by the distance of that level from the feature; capped at ``1 + 2C``;
* continuous latents: no codes; a fraction ``alpha`` of positions get Gaussian noise whose std per
  channel is ``strength`` times that channel's std over the batch, which moves a position by
  ``strength`` times the latent's spread (RMS). The default, 0.35, matches what a jump to one of the
  100 nearest codes does to the mini-zoo's discrete tokenizers (0.29 FSQ, 0.36 VQ, 0.41 TokenBridge,
  measured on the builtin photographs), so continuous and discrete tokenizers are perturbed alike.

All draws use the given ``torch.Generator``, so a seed fixes the result exactly.
"""

from __future__ import annotations

import torch


def _chosen(shape, alpha: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=device) < alpha


def _pick(candidates: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Uniform draw of one column per row of (N, k) candidates."""
    col = torch.randint(candidates.shape[1], (candidates.shape[0],), generator=gen, device=candidates.device)
    return candidates.gather(1, col[:, None]).squeeze(1)


def perturb_nearest(distances: torch.Tensor, codes: torch.Tensor, alpha: float, delta: int,
                    gen: torch.Generator) -> torch.Tensor:
    """Codebook tokens. ``distances`` (N, K) from each pre-quantization feature to every code (the
    quantizer's distance), ``codes`` (N,) the clean choice."""
    if alpha <= 0 or delta <= 1:
        return codes
    delta = min(delta, distances.shape[1])
    candidates = distances.topk(delta, dim=1, largest=False).indices
    swap = _chosen(codes.shape, alpha, gen, codes.device)
    return torch.where(swap, _pick(candidates, gen), codes)


def perturb_binary(features: torch.Tensor, bits: torch.Tensor, alpha: float, delta: int,
                   gen: torch.Generator) -> torch.Tensor:
    """Bit tokens ``(N, d)`` from features ``(N, d)`` (sign = bit): the code or one of its cheapest
    single-bit flips."""
    if alpha <= 0 or delta <= 1:
        return bits
    n, d = bits.shape
    k = min(delta, d + 1)
    order = features.abs().argsort(dim=1)[:, : k - 1]  # the k-1 cheapest bits to flip
    choice = torch.randint(k, (n,), generator=gen, device=bits.device)  # 0: keep; j: flip order[:, j-1]
    swap = _chosen((n,), alpha, gen, bits.device) & (choice > 0)
    flip_bit = order.gather(1, (choice - 1).clamp_min(0)[:, None]).squeeze(1)
    out = bits.clone()
    rows = swap.nonzero().squeeze(1)
    out[rows, flip_bit[rows]] = 1 - out[rows, flip_bit[rows]]
    return out


def perturb_levels(values: torch.Tensor, codes: torch.Tensor, levels: torch.Tensor, alpha: float, delta: int,
                   gen: torch.Generator) -> torch.Tensor:
    """Level tokens ``(N, C)``: ``values`` are the pre-quantization features on the level axis (level i
    sits at i), ``levels`` (C,) the number of levels per channel. Candidates: the code, and each channel
    moved one level up or down (inside its range), nearest to the feature first."""
    if alpha <= 0 or delta <= 1:
        return codes
    n, c = codes.shape
    moves = torch.cat([torch.eye(c, dtype=torch.long, device=codes.device),
                       -torch.eye(c, dtype=torch.long, device=codes.device)])  # (2C, C)
    cand = codes[:, None, :] + moves[None]  # (N, 2C, C)
    valid = ((cand >= 0) & (cand < levels.to(codes.device))).all(-1)
    cost = (cand.float() - values[:, None, :]).abs().sum(-1) - (codes.float() - values).abs().sum(-1, keepdim=True)
    cost = torch.where(valid, cost, torch.inf)
    k = min(delta - 1, 2 * c)
    nearest = cost.topk(k, dim=1, largest=False).indices  # (N, k) moves, cheapest first
    choice = torch.randint(k + 1, (n,), generator=gen, device=codes.device)  # 0: keep
    picked = nearest.gather(1, (choice - 1).clamp_min(0)[:, None]).squeeze(1)
    ok = valid.gather(1, picked[:, None]).squeeze(1)
    swap = _chosen((n,), alpha, gen, codes.device) & (choice > 0) & ok
    return torch.where(swap[:, None], cand[torch.arange(n, device=codes.device), picked], codes)


CONTINUOUS_STRENGTH = 0.35


def perturb_continuous(latents: torch.Tensor, alpha: float, gen: torch.Generator,
                       strength: float = CONTINUOUS_STRENGTH) -> torch.Tensor:
    """Continuous latents ``(B, C, *positions)``: Gaussian noise on a fraction ``alpha`` of positions."""
    if alpha <= 0:
        return latents
    dims = [0] + list(range(2, latents.ndim))
    std = latents.std(dim=dims, keepdim=True)
    mask = _chosen((latents.shape[0], 1, *latents.shape[2:]), alpha, gen, latents.device)
    noise = torch.randn(latents.shape, generator=gen, device=latents.device)
    return latents + mask * noise * std * strength

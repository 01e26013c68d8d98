"""Factorized quantization (FQGAN): several independent sub-codebooks per position."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantized, Quantizer, channels_first, channels_last
from .vq import VectorQuantizer


class FactorizedQuantizer(Quantizer):
    """``factors`` sub-quantizers, each a cosine-lookup VQ on its own linear projection of the feature.

    The quantized sub-vectors are concatenated and projected back to ``dim``. The disentanglement
    regulariser pushes the sub-codes of one position apart: the mean over positions and factor pairs of
    the squared cosine similarity of their (l2-normalised) quantized vectors, weighted by
    ``disentangle_weight`` (0.1 in FQGAN). Codes are ``(B, *positions, factors)``.
    """

    kind = "factorized"

    def __init__(self, dim: int, factors: int, codebook_size: int, code_dim: int, beta: float = 0.25,
                 disentangle_weight: float = 0.1):
        super().__init__()
        self.vocab_sizes = (codebook_size,) * factors
        self.in_proj = nn.ModuleList([nn.Linear(dim, code_dim) for _ in range(factors)])
        self.quantizers = nn.ModuleList([VectorQuantizer(code_dim, codebook_size, "cosine", beta)
                                         for _ in range(factors)])
        self.out_proj = nn.Linear(factors * code_dim, dim)
        self.disentangle_weight = disentangle_weight

    def forward(self, z):
        zl = channels_last(z)
        parts = [q(channels_first(p(zl))) for p, q in zip(self.in_proj, self.quantizers)]
        qs = [channels_last(p.z_q) for p in parts]
        loss = sum(p.loss for p in parts) / len(parts)
        pairs = list(itertools.combinations([F.normalize(q, dim=-1) for q in qs], 2))
        if pairs:
            disentangle = sum(((a * b).sum(-1) ** 2).mean() for a, b in pairs) / len(pairs)
            loss = loss + self.disentangle_weight * disentangle
        codes = torch.stack([p.codes for p in parts], dim=-1)
        return Quantized(channels_first(self.out_proj(torch.cat(qs, dim=-1))), codes, loss)

    def dequantize(self, codes):
        qs = [channels_last(q.dequantize(codes[..., i])) for i, q in enumerate(self.quantizers)]
        return channels_first(self.out_proj(torch.cat(qs, dim=-1)))

    def neighbours(self, z, k: int):
        """Each sub-index is a token of its own: ``(*positions, factors, k)`` from its sub-codebook."""
        zl = channels_last(z)
        return torch.stack([q.neighbours(channels_first(p(zl)), k) for p, q in zip(self.in_proj, self.quantizers)],
                           dim=-2)

    def restart_dead_codes(self) -> int:
        return sum(q.restart_dead_codes() for q in self.quantizers)

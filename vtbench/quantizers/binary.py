"""Binary quantizers: one bit per channel, no codebook to look up (2^d implicit codes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Quantized, Quantizer, channels_first, channels_last, straight_through
from .neighbours import binary_candidates


def _corners(bits: int, device) -> torch.Tensor:
    """All 2^bits sign vectors in {-1, 1}^bits, row k spelling k in binary (least significant bit first)."""
    k = torch.arange(2 ** bits, device=device)
    return ((k[:, None] >> torch.arange(bits, device=device)) & 1).float() * 2 - 1


def entropy_terms(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean per-position entropy, entropy of the mean distribution) of softmax(logits) over the last axis."""
    p = logits.softmax(-1)
    per_sample = -(p * logits.log_softmax(-1)).sum(-1).mean()
    avg = p.mean(0)
    return per_sample, -(avg * avg.clamp_min(1e-12).log()).sum()


class LFQ(Quantizer):
    """Lookup-free quantization (MAGVIT-v2): each channel becomes its sign, ``q = sign(z)`` in {-1, 1}.

    Loss: commitment ``beta ||z - sg(q)||^2`` plus the entropy regulariser over the 2^d implicit codes
    (low entropy per position, high entropy of the batch-average code distribution), computed exactly
    for ``bits <= 16``; wider codes (Open-MAGVIT2's 18 bits, for inference) take ``entropy_weight=0``.
    """

    kind = "binary"

    def __init__(self, bits: int, beta: float = 0.25, entropy_weight: float = 0.1, temperature: float = 0.01):
        super().__init__()
        if bits > 16 and entropy_weight:
            raise ValueError("LFQ's exact entropy term is computed over 2^bits codes; use at most 16 bits, "
                             "or entropy_weight=0")
        self.bits, self.beta, self.entropy_weight, self.temperature = bits, beta, entropy_weight, temperature
        self.vocab_sizes = (2,) * bits

    def forward(self, z):
        zl = channels_last(z)
        q = torch.where(zl > 0, 1.0, -1.0).to(zl)
        loss = self.beta * F.mse_loss(zl, q.detach())
        if self.entropy_weight and self.training:
            logits = 2 * zl.reshape(-1, self.bits) @ _corners(self.bits, z.device).t() / self.temperature
            per_sample, batch = entropy_terms(logits)
            loss = loss + self.entropy_weight * (per_sample - batch)
        return Quantized(channels_first(straight_through(zl, q)), (q > 0).long(), loss)

    def dequantize(self, codes):
        return channels_first(codes.float() * 2 - 1)

    def neighbours(self, z, k: int):
        flat = channels_last(z).reshape(-1, self.bits)
        cand = binary_candidates(flat, (flat > 0).long(), k)
        return cand.view(*z.shape[:1], *z.shape[2:], *cand.shape[1:])


class BSQ(Quantizer):
    """Binary spherical quantization: l2-normalise, then ``q = sign(u) / sqrt(d)`` on the unit sphere.

    Loss: commitment ``beta ||u - sg(q)||^2``; the quantization error is bounded because both live on
    the sphere. Codes are the sign bits.
    """

    kind = "binary"

    def __init__(self, bits: int, beta: float = 0.25):
        super().__init__()
        self.bits, self.beta = bits, beta
        self.vocab_sizes = (2,) * bits

    def quantize(self, zl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """channels-last features -> (normalised u, quantized q, bits)."""
        u = F.normalize(zl, dim=-1)
        q = torch.where(u > 0, 1.0, -1.0).to(u) / self.bits ** 0.5
        return u, q, (u > 0).long()

    def forward(self, z):
        u, q, bits = self.quantize(channels_last(z))
        return Quantized(channels_first(straight_through(u, q)), bits, self.beta * F.mse_loss(u, q.detach()))

    def dequantize(self, codes):
        return channels_first((codes.float() * 2 - 1) / self.bits ** 0.5)

    def neighbours(self, z, k: int):
        u, _, bits = self.quantize(channels_last(z))
        cand = binary_candidates(u.reshape(-1, self.bits), bits.reshape(-1, self.bits), k)
        return cand.view(*bits.shape[:-1], *cand.shape[1:])

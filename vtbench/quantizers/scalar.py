"""Scalar quantizers: every channel on its own grid of levels (FSQ, TokenBridge), and the continuous
Gaussian posterior of a KL-VAE, which quantizes nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import Quantized, Quantizer, channels_first, channels_last, straight_through, zero_loss
from .neighbours import level_candidates


class FSQ(Quantizer):
    """Finite scalar quantization (Mentzer et al. 2023): channel i is bounded with tanh to ``levels[i]``
    values and rounded (straight-through). No codebook, no auxiliary loss. Codes are level indices
    ``0 .. L-1`` per channel; ``z_q`` is the rounded value scaled into [-1, 1]."""

    kind = "levels"

    def __init__(self, levels: tuple[int, ...], eps: float = 1e-3):
        super().__init__()
        self.vocab_sizes = tuple(levels)
        lv = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("levels", lv, persistent=False)
        self.register_buffer("half_l", (lv - 1) * (1 + eps) / 2, persistent=False)
        self.register_buffer("offset", torch.where(lv % 2 == 0, 0.5, 0.0), persistent=False)
        self.register_buffer("half_width", torch.div(lv, 2, rounding_mode="floor"), persistent=False)

    def _bounded(self, zl: torch.Tensor) -> torch.Tensor:
        return torch.tanh(zl + torch.atanh(self.offset / self.half_l)) * self.half_l - self.offset

    def forward(self, z):
        zl = channels_last(z)
        bounded = self._bounded(zl)
        rounded = straight_through(bounded, bounded.round())
        codes = (rounded.detach() + self.half_width).long()
        return Quantized(channels_first(rounded / self.half_width), codes, zero_loss(z))

    def dequantize(self, codes):
        return channels_first((codes.float() - self.half_width) / self.half_width)

    def neighbours(self, z, k: int):
        position = self._bounded(channels_last(z)) + self.half_width  # on the level axis: level i at i
        flat = position.reshape(-1, position.shape[-1])
        cand = level_candidates(flat, flat.round().long(), self.levels.long(), k)
        return cand.view(*position.shape[:-1], *cand.shape[1:])


class DimensionWiseQuantizer(Quantizer):
    """TokenBridge's post-training quantization of a continuous latent, channel by channel.

    As in the paper's code: the latent is scaled to unit variance (their VAE's factor 0.2325), the range
    [-5, 5] of that is mapped linearly onto [-3, 3] (clamped), and each value goes to the nearest of
    ``2^bits`` reconstruction points: the bins are equal-probability quantiles of a standard normal
    truncated to [-3, 3], each represented by the normal's mean within the bin. Dequantization maps the
    point back. Nothing is trained; `fit` sets the scale from latent statistics
    (``value_range`` = 5 standard deviations).
    """

    kind = "levels"
    STD_RANGE = 3.0

    def __init__(self, channels: int, bits: int, value_range: float = 5.0):
        super().__init__()
        n = 2 ** bits
        self.vocab_sizes = (n,) * channels
        self.register_buffer("points", _truncated_normal_bin_means(n, self.STD_RANGE))
        self.register_buffer("value_range", torch.tensor(float(value_range)))

    @torch.no_grad()
    def fit(self, latents: torch.Tensor) -> None:
        """Set ``value_range`` to 5 standard deviations of the given latents."""
        self.value_range.fill_(5 * float(latents.float().std()))

    def _mapped(self, zl: torch.Tensor) -> torch.Tensor:
        return (zl / self.value_range * self.STD_RANGE).clamp(-self.STD_RANGE, self.STD_RANGE)

    def forward(self, z):
        zl = channels_last(z)
        x = self._mapped(zl)
        codes = (x.unsqueeze(-1) - self.points).abs().argmin(-1)
        return Quantized(channels_first(straight_through(zl, self._values(codes))), codes, zero_loss(z))

    def _values(self, codes: torch.Tensor) -> torch.Tensor:
        """Level indices -> values in the latent's range (the inverse of `_mapped` at the points)."""
        return self.points[codes] / self.STD_RANGE * self.value_range

    def dequantize(self, codes):
        return channels_first(self._values(codes))

    def neighbours(self, z, k: int):
        x = self._mapped(channels_last(z))
        codes = (x.unsqueeze(-1) - self.points).abs().argmin(-1)
        # the feature's fractional position on the level axis (points are not evenly spaced)
        hi = torch.searchsorted(self.points, x.contiguous()).clamp(1, len(self.points) - 1)
        lo_p, hi_p = self.points[hi - 1], self.points[hi]
        position = (hi - 1) + ((x - lo_p) / (hi_p - lo_p)).clamp(0, 1)
        n_levels = torch.full((codes.shape[-1],), len(self.points), device=codes.device)
        flat = codes.reshape(-1, codes.shape[-1])
        cand = level_candidates(position.reshape(flat.shape), flat, n_levels, k)
        return cand.view(*codes.shape[:-1], *cand.shape[1:])


def _truncated_normal_bin_means(n: int, limit: float) -> torch.Tensor:
    """Means of a standard normal within each of n equal-probability bins, the outer bins cut at +-limit.
    Computed on the CPU (constants, also when a model is built on the meta device)."""
    with torch.device("cpu"):
        return _bin_means(n, limit)


def _bin_means(n: int, limit: float) -> torch.Tensor:
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    edges = normal.icdf(torch.linspace(0, 1, n + 1, dtype=torch.float64)[1:-1])
    edges = torch.cat([torch.tensor([-limit], dtype=torch.float64), edges, torch.tensor([limit], dtype=torch.float64)])
    a, b = edges[:-1], edges[1:]
    pdf = torch.exp(-0.5 * edges ** 2) / math.sqrt(2 * math.pi)
    mass = normal.cdf(b) - normal.cdf(a)
    return ((pdf[:-1] - pdf[1:]) / mass).float()


@dataclass
class GaussianPosterior:
    """A diagonal Gaussian over latents ``(B, C, *positions)`` (diffusers' ``DiagonalGaussianDistribution``)."""

    mean: torch.Tensor
    logvar: torch.Tensor  # clamped to [-30, 20]

    @classmethod
    def from_moments(cls, moments: torch.Tensor) -> "GaussianPosterior":
        """Mean and log-variance stacked on the channel axis, as KL-VAE encoders output them."""
        mean, logvar = moments.chunk(2, dim=1)
        return cls(mean, logvar.clamp(-30.0, 20.0))

    @property
    def std(self) -> torch.Tensor:
        return (0.5 * self.logvar).exp()

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to a standard normal per sample, summed over channels and positions."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1 - self.logvar).flatten(1).sum(1)


class DiagonalGaussian(Quantizer):
    """The KL-VAE bottleneck: features hold mean and log-variance; training samples, evaluation uses the
    mean. Loss: KL to a standard normal, summed over channels and averaged over positions, times
    ``kl_weight``. Continuous: ``codes`` are the latents themselves (channels last)."""

    kind = "continuous"

    def __init__(self, kl_weight: float = 1e-6):
        super().__init__()
        self.kl_weight = kl_weight

    def forward(self, z):
        post = GaussianPosterior.from_moments(z)
        mean, logvar = post.mean, post.logvar
        sample = mean + torch.randn_like(mean) * post.std if self.training else mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return Quantized(sample, channels_last(mean), self.kl_weight * kl)

    def dequantize(self, codes):
        return channels_first(codes)

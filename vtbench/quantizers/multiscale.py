"""Multi-scale residual quantization: VAR's shared-codebook pyramid and Infinity's bitwise one.

Both quantize a 2D feature map as a sequence of token maps from coarse to fine. At scale k the
remaining residual is area-downsampled to ``s_k x s_k`` (the last scale is the full map, not resampled),
quantized, upsampled back, and subtracted from the residual; the sum over scales is the decoder input.
Scales are given as fractions of the final side (``schedule``), so the same quantizer runs at any
resolution: with side 16 and VAR's schedule the sides are VAR's (1, 2, 3, 4, 5, 6, 8, 10, 13, 16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantized, Quantizer, channels_first, channels_last, straight_through
from .binary import BSQ
from .neighbours import binary_candidates
from .vq import lookup_neighbours, nearest, sq_distances

VAR_SCHEDULE = (1 / 16, 2 / 16, 3 / 16, 4 / 16, 5 / 16, 6 / 16, 8 / 16, 10 / 16, 13 / 16, 1.0)
INFINITY_SCHEDULE = (1 / 64, 2 / 64, 4 / 64, 6 / 64, 8 / 64, 12 / 64, 16 / 64, 20 / 64, 24 / 64, 32 / 64,
                     40 / 64, 48 / 64, 1.0)


def scale_sides(side: int, schedule: tuple[float, ...]) -> list[int]:
    """Token-map sides for a final side: rounded fractions, at least 1, strictly increasing, ending at side."""
    sides = []
    for f in schedule:
        s = min(side, max(1, round(side * f)))
        if not sides or s > sides[-1]:
            sides.append(s)
    if sides[-1] != side:
        sides.append(side)
    return sides


def _square_side(z: torch.Tensor) -> int:
    if z.ndim != 4 or z.shape[-1] != z.shape[-2]:
        raise ValueError(f"multi-scale quantizers take square (B, C, h, h) maps, got {tuple(z.shape)}")
    return z.shape[-1]


def _down(x: torch.Tensor, side: int) -> torch.Tensor:
    return x if x.shape[-1] == side else F.interpolate(x, size=(side, side), mode="area")


def teacher_forcing(quantizer, codes) -> torch.Tensor:
    """Every scale's input after the first, built by `next_scale_input` from the ground-truth codes."""
    sides = [c.shape[1] for c in codes]
    f_hat, inputs = None, []
    for k in range(len(codes) - 1):
        f_hat, nxt = quantizer.next_scale_input(k, f_hat, codes[k], sides)
        inputs.append(channels_last(nxt).flatten(1, 2))
    return torch.cat(inputs, dim=1)


class Phi(nn.Module):
    """VAR's refinement of an upsampled code map: ``(1 - r) h + r conv3x3(h)`` with r = 0.5."""

    def __init__(self, dim: int, ratio: float = 0.5):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.ratio = ratio

    def forward(self, h):
        return h * (1 - self.ratio) + self.conv(h) * self.ratio


class MultiScaleResidualVQ(Quantizer):
    """VAR: one shared codebook (l2 lookup) over a pyramid of scales, bicubic upsampling, and ``phis``
    refinement convs shared across scales (scale k uses the phi whose tick in linspace(1/(3n), 1-1/(3n))
    is nearest to k/(K-1), compared in float32: at 10 scales that gives phis 0,0,0,1,1,2,2,2,3,3 where VAR's
    float64 rule gives 0,0,1,1,1,2,2,3,3,3; the mini-zoo was trained with this one, the VAR port in
    `vtbench.tokenizers.var` overrides `_phi` with VAR's). Loss per scale on the running sum
    ``f_hat``: ``beta ||sg(f_hat) - f||^2 + ||f_hat - sg(f)||^2``, averaged over scales; straight-through.
    Feature maps must be square.
    Codes: a list of ``(B, s_k, s_k)`` index maps."""

    kind = "index"
    multiscale = True
    #: the lookup's squared-l2 arithmetic ``(N, D), (K, D) -> (N, K)``
    distances = staticmethod(sq_distances)

    def __init__(self, dim: int, codebook_size: int, schedule: tuple[float, ...] = VAR_SCHEDULE, phis: int = 4,
                 beta: float = 0.25):
        super().__init__()
        self.vocab_sizes = (codebook_size,)
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.phi = nn.ModuleList([Phi(dim) for _ in range(phis)])
        ticks = torch.linspace(1 / (3 * phis), 1 - 1 / (3 * phis), phis) if phis else torch.zeros(0)
        self.register_buffer("ticks", ticks, persistent=False)
        self.schedule, self.beta = tuple(schedule), beta

    def _phi(self, k: int, n: int) -> nn.Module:
        return self.phi[int((self.ticks - k / max(n - 1, 1)).abs().argmin())]

    def sides_for(self, side: int) -> list[int]:
        """Token-map sides, coarse to fine, for a final side."""
        return scale_sides(side, self.schedule)

    def _nearest(self, r: torch.Tensor) -> torch.Tensor:
        """Codes of channels-last residuals ``(B, s, s, C)``."""
        return nearest(r.reshape(-1, r.shape[-1]), self.embedding.weight, self.distances).view(r.shape[:-1])

    def _up(self, codes: torch.Tensor, k: int, n: int, side: int) -> torch.Tensor:
        h = channels_first(self.embedding(codes))
        if h.shape[-1] != side:
            h = F.interpolate(h, size=(side, side), mode="bicubic")
        return self._phi(k, n)(h)

    def forward(self, z):
        side = _square_side(z)
        sides = self.sides_for(side)
        f_hat, rest = torch.zeros_like(z), z.detach().clone()
        codes, losses = [], []
        for k, s in enumerate(sides):
            r = channels_last(_down(rest, s))
            idx = self._nearest(r)
            h = self._up(idx, k, len(sides), side)
            f_hat = f_hat + h
            rest = rest - h.detach()
            codes.append(idx)
            losses.append(self.beta * F.mse_loss(f_hat.detach(), z) + F.mse_loss(f_hat, z.detach()))
        loss = sum(losses) / len(losses)
        return Quantized(straight_through(z, f_hat), codes, loss, {"scale_sides": sides})

    def dequantize(self, codes):
        side = codes[-1].shape[-1]
        return sum(self._up(c, k, len(codes), side) for k, c in enumerate(codes))

    def next_scale_input(self, k: int, f_hat, codes: torch.Tensor, sides) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation: add scale ``k``'s codes to ``f_hat`` (None at k = 0); returns (f_hat, the next scale's
        input: f_hat area-downsampled to it, or f_hat itself after the last scale). VAR's
        ``get_next_autoregressive_input``."""
        h = self._up(codes, k, len(sides), sides[-1])
        f_hat = h if f_hat is None else f_hat + h
        return f_hat, (f_hat if k == len(sides) - 1 else _down(f_hat, sides[k + 1]))

    def teacher_forcing_inputs(self, codes) -> torch.Tensor:
        """Training: the input of every scale after the first from the ground-truth codes before it,
        ``(B, sum_{k>0} s_k^2, dim)`` channels last (VAR's ``idxBl_to_var_input``)."""
        return teacher_forcing(self, codes)

    def neighbours(self, z, k: int):
        """Per scale, the neighbours of the residual left by the clean codes of the scales before it."""
        side = _square_side(z)
        sides = self.sides_for(side)
        rest, out = z, []
        for i, s in enumerate(sides):
            r = channels_last(_down(rest, s))
            idx = self._nearest(r)
            rest = rest - self._up(idx, i, len(sides), side)
            out.append(lookup_neighbours(r, self.embedding.weight, k, self.distances))
        return out


class MultiScaleBSQ(Quantizer):
    """Infinity's bitwise multi-scale residual quantizer: at each scale the downsampled residual is
    l2-normalised and quantized to ``sign / sqrt(d)`` (BSQ), upsampled bilinearly, and subtracted. No
    codebook and no refinement convs. Loss: BSQ commitment per scale, averaged. Codes: a list of
    ``(B, s_k, s_k, d)`` bit maps."""

    kind = "binary"
    multiscale = True

    def __init__(self, bits: int, schedule: tuple[float, ...] = INFINITY_SCHEDULE, beta: float = 0.25):
        super().__init__()
        self.bsq = BSQ(bits, beta)
        self.vocab_sizes = self.bsq.vocab_sizes
        self.schedule = tuple(schedule)

    def sides_for(self, side: int) -> list[int]:
        """Token-map sides, coarse to fine, for a final side."""
        return scale_sides(side, self.schedule)

    @staticmethod
    def _up(q: torch.Tensor, side: int) -> torch.Tensor:
        q = channels_first(q)
        return q if q.shape[-1] == side else F.interpolate(q, size=(side, side), mode="bilinear")

    def forward(self, z):
        side = _square_side(z)
        sides = self.sides_for(side)
        f_hat, rest = torch.zeros_like(z), z
        codes, losses = [], []
        for s in sides:
            u, q, bits = self.bsq.quantize(channels_last(_down(rest, s)))
            h = self._up(straight_through(u, q), side)
            f_hat = f_hat + h
            rest = rest - h.detach()
            codes.append(bits)
            losses.append(self.bsq.beta * F.mse_loss(u, q.detach()))
        return Quantized(f_hat, codes, sum(losses) / len(losses), {"scale_sides": sides})

    def dequantize(self, codes):
        side = codes[-1].shape[-2]
        return sum(self._up(self._code(c), side) for c in codes)

    def _code(self, bits: torch.Tensor) -> torch.Tensor:
        return (bits.float() * 2 - 1) / self.bsq.bits ** 0.5

    def next_scale_input(self, k: int, f_hat, codes: torch.Tensor, sides) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation: add scale ``k``'s bits to ``f_hat``; returns (f_hat, the next scale's input)."""
        h = self._up(self._code(codes), sides[-1])
        f_hat = h if f_hat is None else f_hat + h
        return f_hat, (f_hat if k == len(sides) - 1 else _down(f_hat, sides[k + 1]))

    def teacher_forcing_inputs(self, codes) -> torch.Tensor:
        """Training: the input of every scale after the first, ``(B, sum_{k>0} s_k^2, bits)`` channels last."""
        return teacher_forcing(self, codes)

    def neighbours(self, z, k: int):
        """Per scale, the bit flips of the residual left by the clean bits of the scales before it."""
        side = _square_side(z)
        rest, out = z, []
        for s in self.sides_for(side):
            u, q, bits = self.bsq.quantize(channels_last(_down(rest, s)))
            rest = rest - self._up(q, side)
            d = bits.shape[-1]
            cand = binary_candidates(u.reshape(-1, d), bits.reshape(-1, d), k)
            out.append(cand.view(*bits.shape[:-1], *cand.shape[1:]))
        return out

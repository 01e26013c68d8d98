"""The forward contract every quantizer follows.

``quantizer(z)`` takes encoder features ``(B, C, *positions)`` and returns a `Quantized`:
``z_q`` (same shape; the decoder's input, with straight-through gradients to ``z``), ``codes`` (integer
codes in the layout `vtbench.Tokens` uses: positions first, a trailing component axis when a position
holds several codes; a list of such tensors for multi-scale quantizers) and ``loss`` (the quantizer's own
training loss; zero when it has none). ``quantizer.dequantize(codes)`` rebuilds ``z_q`` from codes
alone, which is the way back from an AR model's output to the decoder. ``kind``, ``vocab_sizes`` and
``multiscale`` describe the codes exactly as `Tokens` does. ``quantizer.neighbours(z, k)`` gives every
token's ``k`` nearest alternative codes, the primitive of pFID (`vtbench.quantizers.neighbours`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Quantized:
    z_q: torch.Tensor
    codes: torch.Tensor | list[torch.Tensor]
    loss: torch.Tensor
    stats: dict = field(default_factory=dict)  # detached diagnostics (e.g. per-scale losses)


class Quantizer(nn.Module):
    kind: str = "index"
    vocab_sizes: tuple[int, ...] = ()
    multiscale: bool = False

    def __call__(self, z: torch.Tensor, *args, **kwargs):
        """Quantizers always run in float32, also inside a bf16 autocast region: a nearest-code search or a
        rounding in bf16 would pick codes by 8-bit mantissas."""
        with torch.autocast(z.device.type, enabled=False):
            return super().__call__(z.float(), *args, **kwargs)

    def forward(self, z: torch.Tensor) -> Quantized:
        raise NotImplementedError

    def dequantize(self, codes) -> torch.Tensor:
        raise NotImplementedError

    def neighbours(self, z: torch.Tensor, k: int):
        """Each token's ``k`` nearest codes, nearest first (layouts in `vtbench.quantizers.neighbours`)."""
        raise NotImplementedError(f"{type(self).__name__} has no discrete neighbours")


def channels_last(z: torch.Tensor) -> torch.Tensor:
    """(B, C, *positions) -> (B, *positions, C)."""
    return z.movedim(1, -1)


def channels_first(z: torch.Tensor) -> torch.Tensor:
    """(B, *positions, C) -> (B, C, *positions)."""
    return z.movedim(-1, 1)


def straight_through(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Value of ``q``, gradient of ``z``."""
    return z + (q - z).detach()


def zero_loss(z: torch.Tensor) -> torch.Tensor:
    return z.new_zeros(())

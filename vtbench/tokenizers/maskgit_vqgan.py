"""MaskGIT's VQGAN pixel decoder (Chang et al. 2022) in the PyTorch form open-muse ported and TiTok ships
inside its two-stage checkpoints (bytedance/1d-tokenizer ``modeling/modules/maskgit_vqgan.py``), with its
module names (``conv_in``, ``mid.{i}``, ``up.{level}.block.{i}``, ``up.{level}.upsample_conv``, ``norm_out``,
``conv_out``) so those checkpoints load strictly.

No attention anywhere; the resnet convolutions have no bias. One quirk is kept because the released weights
were trained with it: a resnet block that changes width applies its 1x1 ``nin_shortcut`` to the block's own
output and adds that, ``h + shortcut(h)``; the block's input is not carried past it. The official "same"
padding is symmetric at stride 1, so plain ``padding=k // 2`` convolutions compute the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import group_norm


@dataclass(frozen=True)
class MaskGITVQGANConfig:
    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256  # dimension of a code
    codebook_size: int = 1024

    def __post_init__(self):
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))

    @property
    def upsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)


class ResnetBlock(nn.Module):
    """norm-swish-conv twice; a width change adds ``nin_shortcut`` of the output, not of the input."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm2 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cout, cout, 1, bias=False)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.nin_shortcut(h) if hasattr(self, "nin_shortcut") else x)


class UpBlock(nn.Module):
    """One level: resnet blocks, then (above level 0) nearest x2 and ``upsample_conv``."""

    def __init__(self, cin: int, cout: int, blocks: int, upsample: bool):
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(cin if i == 0 else cout, cout) for i in range(blocks))
        if upsample:
            self.upsample_conv = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x):
        for block in self.block:
            x = block(x)
        if hasattr(self, "upsample_conv"):
            x = self.upsample_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class PixelDecoder(nn.Module):
    """Code embeddings ``(B, z_channels, h, w)`` -> images ``(B, 3, h * f, w * f)``; ``up`` is indexed by
    level (0 = full resolution) and runs from the last level down."""

    def __init__(self, cfg: MaskGITVQGANConfig):
        super().__init__()
        widths = [cfg.hidden_channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(cfg.z_channels, widths[-1], 3, padding=1)
        self.mid = nn.ModuleList(ResnetBlock(widths[-1], widths[-1]) for _ in range(cfg.num_res_blocks))
        self.up = nn.ModuleList(
            UpBlock(widths[min(i + 1, len(widths) - 1)], widths[i], cfg.num_res_blocks, upsample=i > 0)
            for i in range(len(widths))
        )
        self.norm_out = group_norm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, z):
        x = self.conv_in(z)
        for block in self.mid:
            x = block(x)
        for block in reversed(self.up):
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class PixelCodebook(nn.Module):
    """The VQGAN's codebook (``embedding``); TiTok reads it as a softmax-weighted mix of codes."""

    def __init__(self, cfg: MaskGITVQGANConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.z_channels)

    def soft_embed(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits over the codes ``(B, codebook_size, h, w)`` -> expected code ``(B, z_channels, h, w)``."""
        return torch.einsum("nchw,cd->ndhw", logits.softmax(1), self.embedding.weight)

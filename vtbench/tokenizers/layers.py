"""Building blocks shared by the taming-transformers lineage (VQGAN, LlamaGen, VAR, SD's VAE), and the
CLIP-style transformer block of the ViT tokenizers and FQGAN's adapters.

Attribute names follow the official code of those models, so their checkpoints load strictly. The
only naming difference between lineages, the 1x1 shortcut of a resnet block that changes width
(``nin_shortcut`` in taming/LlamaGen/VAR, ``conv_shortcut`` in diffusers), is a constructor argument.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm-swish-conv twice, plus a 1x1 shortcut when the width changes."""

    def __init__(self, cin: int, cout: int, groups: int = 32, dropout: float = 0.0,
                 shortcut_name: str = "nin_shortcut"):
        super().__init__()
        self.norm1 = group_norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(cout, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self._shortcut_name = shortcut_name if cin != cout else None
        if self._shortcut_name:
            setattr(self, shortcut_name, nn.Conv2d(cin, cout, 1))

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (getattr(self, self._shortcut_name)(x) if self._shortcut_name else x) + h


class ConvAttnBlock(nn.Module):
    """Single-head self-attention over all positions with 1x1-conv projections and a residual: separate
    ``q``/``k``/``v`` convs (taming), or one ``qkv`` conv whose outputs are q, then k, then v (VAR)."""

    def __init__(self, channels: int, groups: int = 32, fused_qkv: bool = False):
        super().__init__()
        self.norm = group_norm(channels, groups)
        if fused_qkv:
            self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        else:
            self.q = nn.Conv2d(channels, channels, 1)
            self.k = nn.Conv2d(channels, channels, 1)
            self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        self.fused_qkv = fused_qkv

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        qkv = self.qkv(n).chunk(3, dim=1) if self.fused_qkv else (self.q(n), self.k(n), self.v(n))
        q, k, v = (t.flatten(2).transpose(1, 2).unsqueeze(1) for t in qkv)
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3x3 conv after padding one pixel on the right and bottom only."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block (TiTok/CLIP layout: ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj). With
    ``batch_first=False`` it takes ``(L, B, C)``, and its attention never takes PyTorch's fused inference path
    (which rounds differently), as in code that builds ``nn.MultiheadAttention`` sequence-first (BSQ-ViT)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, batch_first: bool = True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=batch_first)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, hidden))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))

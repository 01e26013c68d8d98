"""The taming-transformers / latent-diffusion convolutional Encoder and Decoder, with the official module names.

VAR's VQVAE, VQGAN-LC, MAR's KL-16 and Infinity's BSQ-VAE all store their autoencoder under the same tree:
``encoder.conv_in``, ``encoder.down.{i}.block.{j}`` (``norm1``, ``conv1``, ``norm2``, ``conv2``,
``nin_shortcut``), ``encoder.down.{i}.attn.{j}``, ``encoder.down.{i}.downsample.conv``, ``encoder.mid.block_1``,
``mid.attn_1``, ``mid.block_2``, ``norm_out``, ``conv_out``; the decoder's ``up.{i}`` is indexed by resolution
level (0 = full resolution) and run from the lowest resolution up. Attention is either taming's separate
``q``/``k``/``v``/``proj_out`` 1x1 convs or VAR's fused ``qkv`` conv. One :class:`TamingConfig` describes a
variant; :data:`TAMING_CONFIGS` holds the official ones, so a port builds ``Encoder(TAMING_CONFIGS[name])``
and loads the released file strictly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from .layers import ConvAttnBlock, Downsample, ResnetBlock, Upsample, group_norm

ATTENTION_STYLES = ("separate", "fused")


@dataclass(frozen=True)
class TamingConfig:
    """Shape of a taming-style autoencoder (field names as in the official ``ddconfig``).

    ``attn_resolutions`` lists the feature-map sides, counted from ``resolution``, whose levels get an
    attention block after every resnet block; ``decoder_attn_resolutions`` overrides it for the decoder
    (``None``: the same). ``resolution`` only places attention: inputs of any size divisible by
    :attr:`downsample_factor` run.
    """

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    decoder_attn_resolutions: tuple[int, ...] | None = None
    resolution: int = 256
    z_channels: int = 256
    double_z: bool = False
    in_channels: int = 3
    out_ch: int = 3
    mid_attention: bool = True
    attention: str = "separate"
    dropout: float = 0.0

    def __post_init__(self):
        if self.attention not in ATTENTION_STYLES:
            raise ValueError(f"attention must be one of {ATTENTION_STYLES}, got {self.attention!r}")
        if not self.ch_mult or self.num_res_blocks < 1:
            raise ValueError(f"need a non-empty ch_mult and num_res_blocks >= 1, got {self.ch_mult}, "
                             f"{self.num_res_blocks}")
        # accept lists (a config read back from JSON) and keep the dataclass hashable
        for name in ("ch_mult", "attn_resolutions", "decoder_attn_resolutions"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(v) for v in value))

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def level_has_attention(self, level: int, decoder: bool = False) -> bool:
        sides = self.attn_resolutions
        if decoder and self.decoder_attn_resolutions is not None:
            sides = self.decoder_attn_resolutions
        return self.resolution // 2 ** level in sides


def _attention(cfg: TamingConfig, channels: int) -> nn.Module:
    return ConvAttnBlock(channels, fused_qkv=cfg.attention == "fused")


_RESAMPLERS = {"downsample": Downsample, "upsample": Upsample}


class Level(nn.Module):
    """One resolution level: resnet blocks, each followed by attention where the config puts it, then resampling."""

    def __init__(self, cfg: TamingConfig, cin: int, cout: int, blocks: int, attention: bool,
                 resample: str | None):
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(cin if i == 0 else cout, cout, dropout=cfg.dropout)
                                   for i in range(blocks))
        self.attn = nn.ModuleList(_attention(cfg, cout) for _ in range(blocks if attention else 0))
        if resample is not None:
            setattr(self, resample, _RESAMPLERS[resample](cout))
        self._resample = resample

    def forward(self, x):
        for i, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        return getattr(self, self._resample)(x) if self._resample else x


class Mid(nn.Module):
    """``block_1``, ``attn_1`` (an identity when the config has no mid attention), ``block_2``."""

    def __init__(self, cfg: TamingConfig, channels: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout=cfg.dropout)
        self.attn_1 = _attention(cfg, channels) if cfg.mid_attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels, dropout=cfg.dropout)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Image (B, in_channels, H, W) -> (B, z_channels * (2 if double_z else 1), H / f, W / f)."""

    def __init__(self, cfg: TamingConfig):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        last = len(widths) - 1
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList(
            Level(cfg, cfg.ch if i == 0 else widths[i - 1], widths[i], cfg.num_res_blocks,
                  attention=cfg.level_has_attention(i), resample="downsample" if i != last else None)
            for i in range(len(widths))
        )
        self.mid = Mid(cfg, widths[-1])
        self.norm_out = group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], cfg.z_channels * (2 if cfg.double_z else 1), 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for level in self.down:
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(self.mid(x))))


class Decoder(nn.Module):
    """Latent (B, z_channels, h, w) -> image (B, out_ch, h * f, w * f); the output is not clamped."""

    def __init__(self, cfg: TamingConfig):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        last = len(widths) - 1
        self.conv_in = nn.Conv2d(cfg.z_channels, widths[-1], 3, padding=1)
        self.mid = Mid(cfg, widths[-1])
        # stored by level (0 = full resolution) as in the official files, built and run from the lowest up
        self.up = nn.ModuleList(
            Level(cfg, widths[min(i + 1, last)], widths[i], cfg.num_res_blocks + 1,
                  attention=cfg.level_has_attention(i, decoder=True), resample="upsample" if i != 0 else None)
            for i in range(len(widths))
        )
        self.norm_out = group_norm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], cfg.out_ch, 3, padding=1)

    def forward(self, z):
        x = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(x)))


TAMING_CONFIGS: dict[str, TamingConfig] = {
    # FoundationVision/VAR models/vqvae.py: the vq-f16 ddconfig at ch=160, Cvae=32; attention at the last level
    "var-ch160": TamingConfig(ch=160, z_channels=32, attention="fused"),
    # zh460045050/VQGAN-LC vqgan-gpt-lc/vqgan_configs/vq-f16.yaml
    "vqgan-lc-f16": TamingConfig(),
    # vq-f8.yaml: attn_resolutions [16] never occurs on a 256 -> 32 pyramid, so only the mid block attends
    "vqgan-lc-f8": TamingConfig(ch_mult=(1, 2, 2, 4)),
    # LTH14/mar models/vae.py AutoencoderKL(embed_dim=16, ch_mult=(1, 1, 2, 2, 4)): the Decoder's default
    # attn_resolutions is empty, the Encoder's is (16,)
    "mar-kl16": TamingConfig(z_channels=16, double_z=True, decoder_attn_resolutions=()),
    # FoundationVision/Infinity infinity/models/bsq_vae (2D, cnn_attention='no'): no attention anywhere; the
    # official module wraps each conv/norm (``conv_in.conv.weight``), the plain names here are what its loader
    # also accepts
    **{f"infinity-d{d}": TamingConfig(ch_mult=(1, 2, 4, 4, 4), attn_resolutions=(), mid_attention=False, z_channels=d)
       for d in (16, 32, 64)},
}

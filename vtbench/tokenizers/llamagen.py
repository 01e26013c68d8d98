"""LlamaGen's VQ tokenizer (Sun et al. 2024), module names as in FoundationVision/LlamaGen's ``vq_model.py``.

Encoder and decoder are lists of ``conv_blocks`` (``res``, ``attn``, ``downsample``/``upsample``), with
attention only at the lowest resolution; the decoder lists its blocks from the lowest resolution up. The
quantizer looks up the nearest of ``codebook_size`` codes after l2-normalising both the feature and the
codebook (cosine distance); its ``codebook_used`` buffer (a training-time usage window) is part of the
state dict. Inputs are in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .. import quantizers as Q
from .base import Tokenizer, TokenizerInfo
from .layers import ConvAttnBlock, Downsample, ResnetBlock, Upsample, group_norm
from .pretrained import register_architecture
from .registry import register_tokenizer
from .tokens import Tokens
from .weights import RANDOM_INIT, Checkpoint, HubFile, single_file

PAPER = "https://arxiv.org/abs/2406.06525"
CODE = "https://github.com/FoundationVision/LlamaGen"


@dataclass(frozen=True)
class VQConfig:
    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    resolution: int = 256


class Stage(nn.Module):
    """One resolution level: resnet blocks (each followed by attention at the lowest level), then resampling."""

    def __init__(self, cin: int, cout: int, blocks: int, attention: bool, resample: str | None):
        super().__init__()
        self.res = nn.ModuleList([ResnetBlock(cin if i == 0 else cout, cout) for i in range(blocks)])
        self.attn = nn.ModuleList([ConvAttnBlock(cout) for _ in range(blocks)] if attention else [])
        if resample == "down":
            self.downsample = Downsample(cout)
        elif resample == "up":
            self.upsample = Upsample(cout)
        self._resample = resample

    def forward(self, x):
        for i, block in enumerate(self.res):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        if self._resample:
            x = getattr(self, f"{self._resample}sample")(x)
        return x


def mid_blocks(ch: int) -> nn.ModuleList:
    return nn.ModuleList([ResnetBlock(ch, ch), ConvAttnBlock(ch), ResnetBlock(ch, ch)])


class EncoderTrunk(nn.Module):
    """``conv_in``, the down ``conv_blocks`` and ``mid``: everything of the encoder before its output head."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        last = len(widths) - 1
        self.width = widths[-1]
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1)
        self.conv_blocks = nn.ModuleList(
            Stage(cfg.ch if i == 0 else widths[i - 1], widths[i], cfg.num_res_blocks, attention=i == last,
                  resample="down" if i != last else None)
            for i in range(len(widths))
        )
        self.mid = mid_blocks(widths[-1])

    def trunk(self, x):
        x = self.conv_in(x)
        for stage in self.conv_blocks:
            x = stage(x)
        for block in self.mid:
            x = block(x)
        return x


class Encoder(EncoderTrunk):
    def __init__(self, cfg: VQConfig):
        super().__init__(cfg)
        self.norm_out = group_norm(self.width)
        self.conv_out = nn.Conv2d(self.width, cfg.z_channels, 3, padding=1)

    def forward(self, x):
        return self.conv_out(F.silu(self.norm_out(self.trunk(x))))


class Decoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        widths = [cfg.ch * m for m in reversed(cfg.ch_mult)]  # lowest resolution first
        last = len(widths) - 1
        self.conv_in = nn.Conv2d(cfg.z_channels, widths[0], 3, padding=1)
        self.mid = mid_blocks(widths[0])
        self.conv_blocks = nn.ModuleList(
            Stage(widths[max(i - 1, 0)], widths[i], cfg.num_res_blocks + 1, attention=i == 0,
                  resample="up" if i != last else None)
            for i in range(len(widths))
        )
        self.norm_out = group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, z):
        x = self.conv_in(z)
        for block in self.mid:
            x = block(x)
        for stage in self.conv_blocks:
            x = stage(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class VectorQuantizer(Q.VectorQuantizer):
    """The shared cosine-lookup quantizer (float32 under autocast, see `vtbench.quantizers.base`) with
    LlamaGen's ``codebook_used`` buffer (a training-time usage window kept in its checkpoints)."""

    USAGE_WINDOW = 65536

    def __init__(self, codebook_size: int, dim: int):
        super().__init__(dim, codebook_size, distance="cosine")
        self.register_buffer("codebook_used", torch.zeros(self.USAGE_WINDOW))


class LlamaGenVQ(Tokenizer):
    def __init__(self, cfg: VQConfig = VQConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = VectorQuantizer(cfg.codebook_size, cfg.codebook_embed_dim)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.codebook_embed_dim, cfg.z_channels, 1)
        down = 2 ** (len(cfg.ch_mult) - 1)
        self.info = TokenizerInfo(
            family="vq", kind="index", resolution=cfg.resolution, downsample=down,
            vocab_sizes=(cfg.codebook_size,), tokens_per_image=(cfg.resolution // down) ** 2,
            paper=PAPER, code=CODE, license="MIT", input_range="minus_one_one",
            notes=f"codes of dim {cfg.codebook_embed_dim}, cosine (l2-normalised) lookup",
        )

    def pre_quant(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features projected to the codebook dimension, before quantization."""
        return self.quant_conv(self.encoder(x))

    def _encode(self, x):
        return self._encode_features(self.pre_quant(x))

    def _neighbours(self, x, k):
        z = self.pre_quant(x)
        return self._encode_features(z), [self.quantize.neighbours(z, k)]

    def _encode_features(self, z: torch.Tensor) -> Tokens:
        return Tokens.from_indices(self.quantize(z).codes, "index", self.info.vocab_sizes)

    def _decode(self, tokens):
        return self.decoder(self.post_quant_conv(self.quantize.dequantize(tokens.indices)))


def _official_checkpoint(state: dict) -> dict:
    """LlamaGen checkpoints keep the weights under "model"."""
    return state["model"] if "model" in state else state


_README = "https://github.com/FoundationVision/LlamaGen#vq-vae-models"
#: LlamaGen's ImageNet (c2i) tokenizers: name -> config, hub file and its sha256, published figures
VARIANTS = {
    "llamagen-vq16": dict(config=VQConfig(ch_mult=(1, 1, 2, 2, 4)), file="vq_ds16_c2i.pt",
                          sha256="109aa8afb2cf3761eec23cdc8644154cb498f5ab7eef2a35264d25e5e0499f7d",
                          published={"rfid": 2.19, "dataset": "ImageNet val, 256x256", "source": _README}),
    "llamagen-vq8": dict(config=VQConfig(ch_mult=(1, 2, 2, 4)), file="vq_ds8_c2i.pt",
                         sha256="c70d2966ec012f378793214ff0755087e7c5fe6f035b469995143325dca4a4e3",
                         published={"rfid": 0.59, "dataset": "ImageNet val, 256x256", "source": _README}),
}
TINY_VQ = VQConfig(codebook_size=64, codebook_embed_dim=4, ch=32, ch_mult=(1, 2), num_res_blocks=1,
                   z_channels=32, resolution=64)

register_architecture("llamagen-vq", VQConfig)(LlamaGenVQ)
for _name, _v in VARIANTS.items():
    _side = 256 // 2 ** (len(_v["config"].ch_mult) - 1)
    register_tokenizer(
        _name,
        weights={"hub": Checkpoint({"model": HubFile("FoundationVision/LlamaGen", _v["file"], sha256=_v["sha256"])},
                                   single_file(_official_checkpoint), license="MIT", published=_v["published"])},
        description=f"LlamaGen VQ: 16384 codes of dim 8, cosine lookup, {_side}x{_side} tokens at 256 px "
                    "(ImageNet c2i)",
    )(lambda _cfg=_v["config"], **kw: LlamaGenVQ(replace(_cfg, **kw)))


@register_tokenizer("llamagen-vq-tiny", weights={"random": RANDOM_INIT},
                    description="test fixture: the LlamaGen VQ architecture at toy size, random weights")
def llamagen_vq_tiny(**kw):
    return LlamaGenVQ(replace(TINY_VQ, **kw))

"""BSQ-ViT (Zhao, Xiong & Krähenbühl 2024): a ViT encoder and decoder around binary spherical quantization, module
names as in zhaoyue-zephyrus/bsq-vit ``transcoder/models/bsqvit.py`` (``VITBSQModel``) and ``transformer.py``, so
the released ImageNet 256 px checkpoints load strictly.

Encoder: 8x8 patches flattened as ``(channel, row, column)``, embedded by a bias-free linear ``conv1``, plus a
learned position table of one row per patch of a 256 px image (so 256x256 inputs only), ``ln_pre``, 12 pre-norm
blocks run sequence-first (the official ``nn.MultiheadAttention`` is not ``batch_first``), ``ln_post``;
``quant_embed`` projects width 768 to d. Quantizer: l2-normalise the d channels, bits ``u > 0`` (zero counts as
negative), codes ``(2 bit - 1) * (1/sqrt(d))``. Channel 0 is the most significant bit of a joint id (the official
``basis`` is 2^(d-1) .. 2^0); ids are int64 (the official ``codes_to_indexes`` sums in float32, exact only up to
24 bits). Decoder: ``post_quant_embed`` (d to 768), its own position table, ``ln_pre``, 12 blocks, ``ln_post``,
``ffn`` (768 to 3072, tanh), ``conv_out`` (3072 to 3x8x8) folded back into patches, clamped to [-1, 1]. The
official training and evaluation take ``zero_mean`` data (``Normalize(0.5, 0.5)``: [-1, 1]), with the clamp
range set to match, under a bfloat16 autocast (the published figures come from that; vtbench runs in
float32).

A released file is the training checkpoint: ``state_dict`` (names prefixed ``module.``), ``ema_state_dict``
(``module.module.``), optimizer, scaler and discriminator states, the run's argparse ``args`` and its OmegaConf
``config`` (read as an inert stand-in, `weights.read_state_dict`). The converter takes the EMA weights when
present, as the official ``init_from_ckpt`` does, else ``state_dict``, or a bare state dict; nothing of the state
dict is dropped (the quantizer's constant ``basis`` and ``group_basis`` buffers are held so that it loads
strictly; nothing reads them).

The authors release the files on UTBox (README table), to be saved under the file names of `VARIANTS`;
``huaweilin/bsqvit_256x256`` on the Hugging Face Hub mirrors one of them as ``checkpoint.pt`` without saying
which bit width (the converter names the entry a file of another width belongs to).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .. import quantizers as Q
from ..quantizers.base import channels_first
from .base import Tokenizer, TokenizerInfo, _check_integer
from .layers import ResidualAttentionBlock
from .pretrained import register_architecture
from .registry import register_tokenizer
from .tokens import Tokens, unpack
from .weights import Checkpoint, ManualFile, WeightsMismatch, single_file

PAPER = "https://arxiv.org/abs/2406.07548"
CODE = "https://github.com/zhaoyue-zephyrus/bsq-vit"


@dataclass(frozen=True)
class BSQViTConfig:
    bits: int = 18
    resolution: int = 256  # the position tables fix the input size
    patch_size: int = 8
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    ffn_width: int = 3072  # the decoder's output MLP (official ``dim_ffn_output``)

    @property
    def side(self) -> int:
        return self.resolution // self.patch_size


class BSQViTQuantizer(Q.BSQ):
    """`BSQ` with the official arithmetic (codes are the signs times ``1/sqrt(d)``) and the official module's
    constant buffers."""

    def __init__(self, bits: int):
        super().__init__(bits, beta=0.0)
        self.register_buffer("basis", 2 ** torch.arange(bits - 1, -1, -1))
        self.register_buffer("group_basis", torch.ones(1, dtype=torch.long))  # groups of one bit (``b18g18``)

    def quantize(self, zl):
        u = F.normalize(zl, dim=-1)
        bits = (u > 0).long()
        return u, self.codes(bits), bits

    def codes(self, bits: torch.Tensor) -> torch.Tensor:
        """Channels-last bits -> channels-last codes."""
        return (bits.float() * 2 - 1) * (1 / self.bits ** 0.5)

    def dequantize(self, codes):
        return channels_first(self.codes(codes))


class Transformer(nn.Module):
    """``resblocks`` on ``(B, L, C)`` tokens, run sequence-first as the official modules run them."""

    def __init__(self, cfg: BSQViTConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(cfg.width, cfg.heads, cfg.mlp_ratio, batch_first=False)
                                       for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(1, 0, 2)
        for block in self.resblocks:
            x = block(x)
        return x.permute(1, 0, 2)


class Encoder(nn.Module):
    def __init__(self, cfg: BSQViTConfig):
        super().__init__()
        self.patch = cfg.patch_size
        self.conv1 = nn.Linear(3 * cfg.patch_size ** 2, cfg.width, bias=False)
        self.positional_embedding = nn.Parameter(0.02 * torch.randn(cfg.side ** 2, cfg.width))
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = Transformer(cfg)
        self.ln_post = nn.LayerNorm(cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w, p = *x.shape, self.patch
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        x = self.conv1(x) + self.positional_embedding.to(x.dtype)
        return self.ln_post(self.transformer(self.ln_pre(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: BSQViTConfig):
        super().__init__()
        self.patch = cfg.patch_size
        self.positional_embedding = nn.Parameter(0.02 * torch.randn(cfg.side ** 2, cfg.width))
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = Transformer(cfg)
        self.ln_post = nn.LayerNorm(cfg.width)
        self.ffn = nn.Sequential(nn.Linear(cfg.width, cfg.ffn_width), nn.Tanh())
        self.conv_out = nn.Linear(cfg.ffn_width, 3 * cfg.patch_size ** 2)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(B, h*w, width)`` -> images ``(B, 3, h*p, w*p)`` (not clamped)."""
        x = self.ln_pre(x + self.positional_embedding.to(x.dtype))
        x = self.conv_out(self.ffn(self.ln_post(self.transformer(x))))
        (h, w), p = grid, self.patch
        return x.reshape(len(x), h, w, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape(len(x), 3, h * p, w * p)


class BSQViT(Tokenizer):
    def __init__(self, cfg: BSQViTConfig = BSQViTConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = BSQViTQuantizer(cfg.bits)
        self.quant_embed = nn.Linear(cfg.width, cfg.bits)
        self.post_quant_embed = nn.Linear(cfg.bits, cfg.width)
        r, p, s = cfg.resolution, cfg.patch_size, cfg.side
        self.info = TokenizerInfo(
            family="bsq-vit", kind="binary", resolution=r, downsample=p, vocab_sizes=(2,) * cfg.bits,
            tokens_per_image=s * s, order="msb", fixed_resolution=True, paper=PAPER, code=CODE, license="MIT",
            input_range="minus_one_one",
            notes=f"{s}x{s} positions of {cfg.bits} bits (BSQ, channel 0 most significant); ViT encoder and "
                  f"decoder on {p}x{p} patches; {r}x{r} inputs only",
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The quantizer's input, ``quant_embed`` of the encoder's tokens, as a ``(B, d, h, w)`` map."""
        h, w = x.shape[-2] // self.cfg.patch_size, x.shape[-1] // self.cfg.patch_size
        z = self.quant_embed(self.encoder(x))
        return channels_first(z.reshape(len(z), h, w, self.cfg.bits))

    def _tokens(self, bits: torch.Tensor) -> Tokens:
        return Tokens.from_indices(bits, "binary", self.info.vocab_sizes)

    def _encode(self, x):
        return self._tokens(self.quantize(self.features(x)).codes)

    def _neighbours(self, x, k):
        z = self.features(x).float()
        return self._tokens(self.quantize(z).codes), [self.quantize.neighbours(z, k)]

    def _decode(self, tokens):
        bits = tokens.indices
        z = self.post_quant_embed(self.quantize.codes(bits).flatten(1, 2))
        return self.decoder(z, tuple(bits.shape[1:3])).clamp(-1, 1)

    def tokens_from_indices(self, indices, resolution=None) -> Tokens:
        """Also takes joint ids (channel 0 most significant): the ``(B, h, w)`` map or the flat ``(B, h*w)``
        sequence, int64 (36-bit ids do not fit in float32 or int32)."""
        grid = self.layout(resolution).scale_shapes[0]
        if torch.is_tensor(indices) and (indices.ndim == 2 or tuple(indices.shape[1:]) == grid):
            _check_integer(indices)
            indices = unpack(indices, self.info.vocab_sizes, self.info.order)
        return super().tokens_from_indices(indices, resolution)


def _converter(bits: int):
    """The released checkpoint's ``ema_state_dict`` less ``module.module.``, else its ``state_dict`` less
    ``module.``, or a bare state dict; a file of another bit width is named as such."""

    def convert(state: dict) -> dict:
        for key, prefix in (("ema_state_dict", "module.module."), ("state_dict", "module.")):
            if isinstance(state.get(key), dict):
                state = {k.removeprefix(prefix): v for k, v in state[key].items()}
                break
        embed = state.get("quant_embed.weight")
        if embed is not None and embed.shape[0] != bits:
            found = embed.shape[0]
            names = [n for n, (b, *_rest) in VARIANTS.items() if b == found]
            use = f": use {names[0]}" if names else " (no entry has that width)"
            raise WeightsMismatch(f"this BSQ-ViT file codes {found} bits per position (quant_embed has {found} "
                                  f"outputs); the entry has {bits}{use}")
        groups = state.get("quantize.group_basis")
        if groups is not None and groups.shape != (1,):
            raise WeightsMismatch(f"this BSQ-ViT file was trained with the entropy of groups of {groups.shape[0]} "
                                  "bits (the README's model without the approximation); the entries load the "
                                  "models trained with groups of one bit (b18g18, b36g36)")
        return state

    return convert


register_architecture("bsq-vit", BSQViTConfig)(BSQViT)

_README = f"{CODE}#image-reconstruction-in-1k-val-256x256"
#: the released 256 px models: name -> (bits, file name here, UTBox link, README rows on ImageNet val 256:
#: (rFID, PSNR) of the EMA weights the entry loads, then of the raw weights in the same file)
VARIANTS = {
    "bsq-vit-b18": (18, "bsqvit_b18g18_f8_256.pt", "https://utexas.box.com/s/nt9g741b1cu4nidygd3a3e26clpemr0n",
                    (1.30, 25.80), (1.14, 25.36)),
    "bsq-vit-b36": (36, "bsqvit_b36g36_f8_256.pt", "https://utexas.box.com/s/a7w3lw5q4dzxun3ai9uthhc3y8ade0pw",
                    (0.45, 28.14), (0.41, 27.88)),
}
for _name, (_bits, _file, _url, (_rfid, _psnr), (_rfid_raw, _psnr_raw)) in VARIANTS.items():
    _cfg = BSQViTConfig(bits=_bits)
    register_tokenizer(
        _name,
        weights={"release": Checkpoint({"model": ManualFile(_file, _url)}, single_file(_converter(_bits)),
                                       license="MIT",
                                       published={"rfid": _rfid, "psnr": _psnr, "dataset": "ImageNet val, 256x256",
                                                  "note": f"EMA weights; the same file's raw weights: rFID "
                                                          f"{_rfid_raw}, PSNR {_psnr_raw}",
                                                  "source": _README})},
        description=f"BSQ-ViT: 32x32 positions of {_bits} bits at 256 px (ViT-B encoder and decoder, patch 8)",
    )(lambda _c=_cfg, **kw: BSQViT(replace(_c, **kw)))

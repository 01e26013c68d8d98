"""Open-MAGVIT2's LFQ tokenizer (Luo et al. 2024), module names as in TencentARC/SEED-Voken
``src/Open_MAGVIT2/models/lfqgan.py`` (``VQModel``) and ``modules/diffusionmodules/improved_model.py``, so the
released ``imagenet_256_L.ckpt`` and ``imagenet_128_L.ckpt`` load strictly.

The autoencoder is MAGVIT-v2's, not taming's: resnet blocks with bias-free convolutions and no attention, a
stride-2 3x3 convolution (``down.{i}.downsample``) to downsample, ``num_res_blocks`` resnet blocks as the middle
(``mid_block``), a 1x1 ``conv_out`` to the code width. The decoder conditions every level on the quantized map:
``adaptive.{i}`` normalises (GroupNorm without affine) and scales / shifts by linear maps (``gamma``, ``beta``)
of the map's per-channel standard deviation (``sqrt(var + 1e-6)``, unbiased variance over positions) and mean;
it upsamples by a 3x3 convolution to 4x the channels and a depth-to-space rearrangement (depth-column-row:
output pixel ``(2y + i, 2x + j)`` of channel c reads input channel ``(2i + j) * C/4 + c``).

The quantizer is lookup-free with d = 18 (2^18 implicit codes) and no projection: each channel becomes
``+1`` if positive, else ``-1`` (not l2-normalised), and the official index is ``sum_i bit_i 2^i`` (channel 0
least significant, ``order="lsb"``). The official AR models (``cond_transformer_gpt``, ``factorized_bits``
6 and 12) predict two sub-tokens per position, channels 0-5 and 6-17, each least significant bit first;
`tokens_from_indices` takes them, and the joint index map. Inputs are in [-1, 1] (``x / 127.5 - 1``);
decoded images are clamped to [-1, 1] as the official evaluation does.

Weights. The Lightning checkpoint holds, under ``['state_dict']``, the generator (``encoder.*``,
``decoder.*``), the training losses (``loss.*``: discriminator and LPIPS) and ``LitEma``'s shadows
(``model_ema.<parameter name without dots>``, plus ``model_ema.decay`` / ``num_updates``). The official
``evaluation_image.py`` and ``reconstruct_image.py`` load the whole state dict and run the model in
``ema_scope`` (``use_ema: True`` in the released configs), so the published figures are of the EMA weights:
the default tag ``hub`` takes them, each shadow mapped back to the parameter whose name without dots it is
(a name two parameters would share is refused). The official AR configs build their first stage with
``use_ema: False``, whose ``init_from_ckpt`` takes the raw ``encoder.*`` / ``decoder.*``: tag ``hub-raw``.
Both drop ``loss.*``, the EMA counters and the shadows of loss parameters; anything else goes to the strict
load. A file without EMA shadows (trained with ``use_ema: False``) loads as it is.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

import torch
from torch import nn

from .. import quantizers as Q
from .base import Tokenizer, TokenizerInfo, _check_integer
from .pretrained import register_architecture
from .registry import register_tokenizer
from .tokens import Tokens, unpack
from .weights import Checkpoint, HubFile, WeightsMismatch, single_file

PAPER = "https://arxiv.org/abs/2409.04410"
CODE = "https://github.com/TencentARC/SEED-Voken"

EMA = "model_ema."
#: LitEma's counters and the training losses (discriminator, LPIPS): not part of the tokenizer
EMA_COUNTERS = ("model_ema.decay", "model_ema.num_updates")
TRAINING_ONLY = "loss."
_LEVEL = re.compile(r"^(?:model_ema\.)?encoder\.?down\.?(\d+)\.?block")


@dataclass(frozen=True)
class OpenMAGVIT2Config:
    """The official ``ddconfig`` (``resolution`` here is the native input side, not the config's unused one)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 4
    z_channels: int = 18  # bits per position
    resolution: int = 256
    factorized_bits: tuple[int, ...] = (6, 12)  # the AR model's sub-tokens, channels in order

    def __post_init__(self):
        for name in ("ch_mult", "factorized_bits"):  # lists from JSON; keep the dataclass hashable
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if sum(self.factorized_bits) != self.z_channels:
            raise ValueError(f"factorized_bits {self.factorized_bits} must add up to z_channels {self.z_channels}")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def _group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=affine)


class ResBlock(nn.Module):
    """norm-swish-conv twice with bias-free 3x3 convs, plus a bias-free 1x1 ``nin_shortcut`` when the width changes."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = _group_norm(cin)
        self.norm2 = _group_norm(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self._shortcut = cin != cout
        if self._shortcut:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        h = self.conv2(_swish(self.norm2(self.conv1(_swish(self.norm1(x))))))
        return h + (self.nin_shortcut(x) if self._shortcut else x)


def depth_to_space(x: torch.Tensor, block: int = 2) -> torch.Tensor:
    """(B, C, H, W) -> (B, C / block^2, H * block, W * block), channels split as (row offset, column offset, c)."""
    b, c, h, w = x.shape
    x = x.reshape(b, block, block, c // block ** 2, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, c // block ** 2, h * block, w * block)


class Upsampler(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4 * channels, 3, padding=1)

    def forward(self, x):
        return depth_to_space(self.conv1(x))


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm without affine, scaled and shifted per channel by linear maps of the quantized map's statistics."""

    def __init__(self, z_channels: int, channels: int, eps: float = 1e-6):
        super().__init__()
        self.gn = _group_norm(channels, affine=False)
        self.gamma = nn.Linear(z_channels, channels)
        self.beta = nn.Linear(z_channels, channels)
        self.eps = eps

    def forward(self, x, quantized):
        flat = quantized.flatten(2)
        scale = self.gamma((flat.var(dim=-1) + self.eps).sqrt())[..., None, None]
        shift = self.beta(flat.mean(dim=-1))[..., None, None]
        return scale * self.gn(x) + shift


class Level(nn.Module):
    """``block`` (resnet blocks), then ``downsample`` (a stride-2 conv) or ``upsample`` (an `Upsampler`) if any."""

    def __init__(self, cin: int, cout: int, blocks: int, resample: str | None):
        super().__init__()
        self.block = nn.ModuleList(ResBlock(cin if i == 0 else cout, cout) for i in range(blocks))
        if resample == "down":
            self.downsample = nn.Conv2d(cout, cout, 3, stride=2, padding=1)
        elif resample == "up":
            self.upsample = Upsampler(cout)
        self._resample = f"{resample}sample" if resample else None

    def forward(self, x):
        for block in self.block:
            x = block(x)
        return getattr(self, self._resample)(x) if self._resample else x


class Encoder(nn.Module):
    """Image (B, 3, H, W) -> features (B, z_channels, H / f, W / f)."""

    def __init__(self, cfg: OpenMAGVIT2Config):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        last = len(widths) - 1
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1, bias=False)
        self.down = nn.ModuleList(Level(cfg.ch if i == 0 else widths[i - 1], widths[i], cfg.num_res_blocks,
                                        "down" if i != last else None) for i in range(len(widths)))
        self.mid_block = nn.ModuleList(ResBlock(widths[-1], widths[-1]) for _ in range(cfg.num_res_blocks))
        self.norm_out = _group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], cfg.z_channels, 1)

    def forward(self, x):
        x = self.conv_in(x)
        for level in self.down:
            x = level(x)
        for block in self.mid_block:
            x = block(x)
        return self.conv_out(_swish(self.norm_out(x)))


class Decoder(nn.Module):
    """Quantized map (B, z_channels, h, w) -> image (B, 3, h * f, w * f), not clamped. ``up`` and ``adaptive``
    are stored by level (0 = full resolution) and run from the lowest resolution up."""

    def __init__(self, cfg: OpenMAGVIT2Config):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        last = len(widths) - 1
        cin = [widths[min(i + 1, last)] for i in range(len(widths))]  # each level's input width
        self.conv_in = nn.Conv2d(cfg.z_channels, widths[-1], 3, padding=1)
        self.mid_block = nn.ModuleList(ResBlock(widths[-1], widths[-1]) for _ in range(cfg.num_res_blocks))
        self.up = nn.ModuleList(Level(cin[i], widths[i], cfg.num_res_blocks, "up" if i != 0 else None)
                                for i in range(len(widths)))
        self.adaptive = nn.ModuleList(AdaptiveGroupNorm(cfg.z_channels, cin[i]) for i in range(len(widths)))
        self.norm_out = _group_norm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, quantized):
        x = self.conv_in(quantized)
        for block in self.mid_block:
            x = block(x)
        for i in reversed(range(len(self.up))):
            x = self.up[i](self.adaptive[i](x, quantized))
        return self.conv_out(_swish(self.norm_out(x)))


class OpenMAGVIT2(Tokenizer):
    def __init__(self, cfg: OpenMAGVIT2Config = OpenMAGVIT2Config()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = Q.LFQ(cfg.z_channels, entropy_weight=0.0)  # the entropy term is training-only
        f, d = cfg.downsample_factor, cfg.z_channels
        side = cfg.resolution // f
        self.info = TokenizerInfo(
            family="open-magvit2", kind="binary", resolution=cfg.resolution, downsample=f, vocab_sizes=(2,) * d,
            tokens_per_image=side * side, order="lsb", paper=PAPER, code=CODE, license="Apache-2.0",
            input_range="minus_one_one",
            notes=f"LFQ: {side}x{side} positions of {d} bits (codes +-1, channel 0 least significant); "
                  f"the AR model's sub-tokens: {' + '.join(map(str, cfg.factorized_bits))} bits",
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's ``z_channels`` map before quantization, in float32."""
        return self.encoder(x).float()

    def _tokens(self, codes: torch.Tensor) -> Tokens:
        return Tokens.from_indices(codes, "binary", self.info.vocab_sizes)

    def _encode(self, x):
        return self._tokens(self.quantize(self.features(x)).codes)

    def _neighbours(self, x, k):
        z = self.features(x)
        return self._tokens(self.quantize(z).codes), [self.quantize.neighbours(z, k)]

    def _decode(self, tokens):
        return self.decoder(self.quantize.dequantize(tokens.indices)).clamp(-1, 1)

    def tokens_from_indices(self, indices, resolution=None) -> Tokens:
        """Also takes the official joint index (``sum_i bit_i 2^i``) as a map ``(B, h, w)`` or a sequence
        ``(B, h*w)``, and the official AR model's sub-tokens ``(pre, post)`` (each ``(B, h*w)`` or ``(B, h, w)``,
        least significant bit first). A ``(B, n, d)`` tensor is a flat bit sequence, as the base class reads it."""
        d = self.cfg.z_channels
        if not torch.is_tensor(indices):
            parts = list(indices)
            widths = self.cfg.factorized_bits
            if len(parts) != len(widths) or any(not torch.is_tensor(p) for p in parts) or \
                    len({tuple(p.shape) for p in parts}) != 1:
                raise ValueError(f"{self._name()} takes the AR model's {len(widths)} sub-tokens of {widths} bits "
                                 "as tensors of one shape, or one tensor of indices")
            for p in parts:
                _check_integer(p)
            indices = torch.cat([unpack(p, (2,) * n, "lsb") for p, n in zip(parts, widths)], dim=-1)
        elif indices.ndim == 2 or (indices.ndim == 3 and indices.shape[-1] != d):
            _check_integer(indices)
            indices = unpack(indices, self.info.vocab_sizes, "lsb")
        return super().tokens_from_indices(indices, resolution)


def _stripped_names(keys) -> dict[str, str]:
    """LitEma's buffer name (the parameter name without dots) -> the parameter name."""
    out = {}
    for key in keys:
        short = key.replace(".", "")
        if short in out:
            raise WeightsMismatch(f"{out[short]} and {key} are both {short} without dots: their EMA copies "
                                  "cannot be told apart")
        out[short] = key
    return out


@functools.lru_cache(maxsize=None)
def _own_keys(cfg: OpenMAGVIT2Config) -> frozenset[str]:
    """The tokenizer's state-dict keys: parameters only (it has no buffers), so each has an EMA shadow."""
    with torch.device("meta"):
        return frozenset(OpenMAGVIT2(cfg).state_dict())


def _check_variant(state: dict, cfg: OpenMAGVIT2Config) -> None:
    levels = {int(m.group(1)) for m in map(_LEVEL.match, state) if m}
    if levels and max(levels) + 1 != len(cfg.ch_mult):
        n = max(levels) + 1
        raise WeightsMismatch(f"this Open-MAGVIT2 file has {n} encoder levels ({2 ** (n - 1)}x downsampling); the "
                              f"entry has {len(cfg.ch_mult)}{_use(n)}")
    conv_out = state.get("encoder.conv_out.weight", state.get(f"{EMA}encoderconv_outweight"))
    if conv_out is not None and conv_out.shape[0] != cfg.z_channels:
        raise WeightsMismatch(f"this file codes {conv_out.shape[0]} bits per position (encoder.conv_out has "
                              f"{conv_out.shape[0]} output channels); the entry has {cfg.z_channels}")


def _converter(cfg: OpenMAGVIT2Config, ema: bool):
    """The released Lightning checkpoint (``{'state_dict': ...}``; a bare state dict is taken too) -> the
    tokenizer's state dict: the EMA shadows (``ema``) or the raw generator, less the training-only entries."""

    def convert(state: dict) -> dict:
        if isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        _check_variant(state, cfg)
        kept = {k: v for k, v in state.items() if not k.startswith((EMA, TRAINING_ONLY))}
        shadows = {k[len(EMA):]: v for k, v in state.items() if k.startswith(EMA) and k not in EMA_COUNTERS}
        if not ema or not shadows:
            return kept
        own = _own_keys(cfg)
        names = _stripped_names(own)
        out = {k: v for k, v in kept.items() if k not in own}  # unknown raw keys: for the strict load
        for short, value in shadows.items():
            if short in names:
                out[names[short]] = value
            elif not short.startswith(TRAINING_ONLY.rstrip(".")):
                raise WeightsMismatch(f"the EMA entry {EMA}{short} is no parameter of this Open-MAGVIT2 tokenizer")
        missing = sorted(own - set(out))
        if missing:
            raise WeightsMismatch(f"the file's EMA copies lack {len(missing)} of the tokenizer's parameters: "
                                  f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        return out

    return convert


def _use(levels: int) -> str:
    names = [n for n, (c, *_rest) in VARIANTS.items() if len(c.ch_mult) == levels]
    return f": use {' or '.join(names)}" if names else " (no released entry has that many)"


register_architecture("open-magvit2", OpenMAGVIT2Config)(OpenMAGVIT2)

_DOCS = f"{CODE}/blob/main/docs/Open-MAGVIT2.md"
#: the ImageNet tokenizers: name -> config, hub repository and file, published figures (docs/Open-MAGVIT2.md)
VARIANTS = {
    "open-magvit2-256": (OpenMAGVIT2Config(), "TencentARC/Open-MAGVIT2-Tokenizer-256-resolution",
                         "imagenet_256_L.ckpt",
                         {"rfid": 1.17, "psnr": 21.90, "dataset": "ImageNet val, 256x256",
                          "note": "EMA weights (the official evaluation_image.py)"}),
    "open-magvit2-128": (OpenMAGVIT2Config(ch_mult=(1, 2, 2, 4), resolution=128),
                         "TencentARC/Open-MAGVIT2-Tokenizer-128-resolution", "imagenet_128_L.ckpt",
                         {"rfid": 1.18, "psnr": 25.08, "dataset": "ImageNet val, 128x128",
                          "note": "EMA weights; ImageNet val 256x256 (32x32 tokens, no fine-tuning): rFID 0.34, "
                                  "PSNR 26.19"}),
}
for _name, (_cfg, _repo, _file, _published) in VARIANTS.items():
    _side = _cfg.resolution // _cfg.downsample_factor
    _hub = {"model": HubFile(_repo, _file)}
    register_tokenizer(
        _name,
        weights={"hub": Checkpoint(_hub, single_file(_converter(_cfg, ema=True)), license="Apache-2.0",
                                   published={**_published, "source": _DOCS}),
                 "hub-raw": Checkpoint(_hub, single_file(_converter(_cfg, ema=False)), license="Apache-2.0",
                                       published={"note": "the raw (non-EMA) weights of the same file, which the "
                                                          "official AR configs load (use_ema: False)"})},
        description=f"Open-MAGVIT2 LFQ (ImageNet {_cfg.resolution}): {_side}x{_side} positions of 18 bits "
                    f"(2^18 codes) at {_cfg.resolution} px",
    )(lambda _c=_cfg, **kw: OpenMAGVIT2(replace(_c, **kw)))

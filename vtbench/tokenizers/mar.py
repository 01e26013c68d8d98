"""MAR's KL-16 VAE (Li et al. 2024) and TokenBridge's post-training quantization of it (Wang et al. 2025).

`MARKL16`: the LDM-style KL autoencoder of LTH14/mar ``models/vae.py`` (taming names: ``encoder.down.{i}``,
``decoder.up.{i}``, ``quant_conv`` 1x1 to mean and log-variance, ``post_quant_conv``; attention at side 16 in
the encoder and in both mid blocks only), so the released ``kl16.ckpt`` (``['model']``) loads strictly. A
256 px image becomes a 16x16x16 latent; `encode` gives the posterior mean (MAR's training and TokenBridge's
reconstruction script sample it: `encode_posterior(x).sample(generator)` does that), and MAR's generator
sees the latent times 0.2325 (`to_generator_space`).

`TokenBridgeKL16`: the same VAE with YuqingWang1029/TokenBridge's quantizer on the scaled latent, channel by
channel: [-5, 5] mapped linearly onto [-3, 3] and clamped, then the nearest of 64 reconstruction values (6
bits): the means of a standard normal within 64 equal-probability bins cut at +-3. Nothing is trained; the
weights are MAR's. Tokens are (16x16 positions, 16 channels) in TokenBridge's AR channel order
(`CHANNEL_ORDER`: component j is latent channel ``CHANNEL_ORDER[j]``), which is what its channel-wise AR head
predicts, so ``tokens.flat()`` is a trainer's target sequence as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..quantizers.scalar import DimensionWiseQuantizer, GaussianPosterior
from .base import Tokenizer, TokenizerInfo
from .pretrained import register_architecture
from .registry import register_tokenizer
from .taming import TAMING_CONFIGS, Decoder, Encoder, TamingConfig
from .tokens import Tokens
from .weights import Checkpoint, ManualFile, single_file

MAR_PAPER = "https://arxiv.org/abs/2406.11838"
MAR_CODE = "https://github.com/LTH14/mar"
TOKENBRIDGE_PAPER = "https://arxiv.org/abs/2503.16430"
TOKENBRIDGE_CODE = "https://github.com/YuqingWang1029/TokenBridge"
#: the authors' release (their ``util/download.py``); not on the Hugging Face Hub
KL16_URL = "https://www.dropbox.com/scl/fi/hhmuvaiacrarfg28qxhwz/kl16.ckpt?rlkey=l44xipsezc8atcffdp4q7mwmh&dl=0"
#: TokenBridge ``models/tokenbridge.py``: the order its channel-wise AR head predicts the latent channels in
CHANNEL_ORDER = (8, 1, 10, 9, 6, 12, 4, 0, 3, 11, 7, 14, 2, 15, 13, 5)


@dataclass(frozen=True)
class MARConfig:
    taming: TamingConfig = TAMING_CONFIGS["mar-kl16"]
    scaling_factor: float = 0.2325
    resolution: int = 256

    def __post_init__(self):
        if isinstance(self.taming, dict):  # read back from config.json
            object.__setattr__(self, "taming", TamingConfig(**self.taming))


class MARKL16(Tokenizer):
    def __init__(self, cfg: MARConfig = MARConfig()):
        super().__init__()
        self.cfg = cfg
        dim = cfg.taming.z_channels
        self.encoder = Encoder(cfg.taming)
        self.decoder = Decoder(cfg.taming)
        self.quant_conv = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.post_quant_conv = nn.Conv2d(dim, dim, 1)
        f = cfg.taming.downsample_factor
        self.info = TokenizerInfo(
            family="mar", kind="continuous", resolution=cfg.resolution, downsample=f, vocab_sizes=(),
            tokens_per_image=(cfg.resolution // f) ** 2, latent_channels=dim, scaling_factor=cfg.scaling_factor,
            paper=MAR_PAPER, code=MAR_CODE, license="MIT", input_range="minus_one_one",
            notes="encode gives the posterior mean (MAR trains on samples: encode_posterior(x).sample()); "
                  f"MAR's generator sees latents x {cfg.scaling_factor}",
        )

    def _posterior(self, x: torch.Tensor) -> GaussianPosterior:
        return GaussianPosterior.from_moments(self.quant_conv(self.encoder(x)))

    def _encode(self, x):
        return Tokens.from_latents(self._posterior(x).mean)

    def _decode(self, tokens):
        return self.decode_latents(tokens.latents)

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Images from unscaled latents ``(B, C, h, w)``."""
        return self.decoder(self.post_quant_conv(z))


def _official_points(levels: int, limit: float) -> torch.Tensor:
    """TokenBridge's reconstruction values, in its float32 arithmetic: normal quantiles of float32 probabilities
    clamped to +-limit, then the truncated normal's mean on each bin. On the CPU (constants, never meta)."""
    probs = torch.linspace(0, 1, levels + 1, dtype=torch.float32, device="cpu").double()
    edges = _normal_ppf(probs)
    edges = edges.float().clamp(-limit, limit)
    a, b = edges[:-1], edges[1:]
    pdf_a, pdf_b = (torch.exp(-0.5 * e ** 2) / math.sqrt(2 * math.pi) for e in (a, b))
    cdf_a, cdf_b = (0.5 * (1 + torch.erf(e / math.sqrt(2))) for e in (a, b))
    mass = cdf_b - cdf_a
    return (pdf_a - pdf_b) / torch.where(mass == 0, 1e-10, mass)


def _normal_ppf(p: torch.Tensor) -> torch.Tensor:
    """Standard normal quantiles in float64 (+-inf at 0 and 1)."""
    return math.sqrt(2) * torch.erfinv(2 * p - 1)


class TokenBridgeQuantizer(DimensionWiseQuantizer):
    """`DimensionWiseQuantizer` with TokenBridge's own float32 arithmetic (its reconstruction values, the
    ``(x - min) / (max - min) * 2s - s`` mapping and its inverse), so level indices match the official ones
    to the last bit, and its channel order on the component axis."""

    def __init__(self, channels: int = 16, bits: int = 6, value_range: float = 5.0,
                 channel_order: tuple[int, ...] = CHANNEL_ORDER):
        if sorted(channel_order) != list(range(channels)):
            raise ValueError(f"channel_order must order the {channels} channels, got {channel_order}")
        super().__init__(channels, bits, value_range)
        # fixed constants, not weights: the released file (MAR's) does not hold them
        self.register_buffer("points", _official_points(2 ** bits, self.STD_RANGE), persistent=False)
        self.register_buffer("value_range", torch.tensor(float(value_range)), persistent=False)
        self.register_buffer("channel_order", torch.tensor(channel_order), persistent=False)

    def _mapped(self, zl):
        lo, hi, s = -self.value_range, self.value_range, self.STD_RANGE
        return ((zl - lo) / (hi - lo) * (2 * s) - s).clamp(-s, s)

    def _values(self, codes):
        lo, hi, s = -self.value_range, self.value_range, self.STD_RANGE
        return ((self.points + s) / (2 * s) * (hi - lo) + lo)[codes]

    def forward(self, z):
        q = super().forward(z)
        return replace(q, codes=q.codes[..., self.channel_order])

    def dequantize(self, codes):
        return super().dequantize(codes[..., self.channel_order.argsort()])

    def neighbours(self, z, k: int):
        return super().neighbours(z, k)[..., self.channel_order]


@dataclass(frozen=True)
class TokenBridgeConfig(MARConfig):
    bits: int = 6
    value_range: float = 5.0  # of the scaled latent, mapped onto +-3 standard deviations
    channel_order: tuple[int, ...] = CHANNEL_ORDER

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "channel_order", tuple(int(c) for c in self.channel_order))


class TokenBridgeKL16(MARKL16):
    def __init__(self, cfg: TokenBridgeConfig = TokenBridgeConfig()):
        super().__init__(cfg)
        dim = cfg.taming.z_channels
        self.quantize = TokenBridgeQuantizer(dim, cfg.bits, cfg.value_range, cfg.channel_order)
        self.info = replace(
            self.info, family="tokenbridge", kind="levels", vocab_sizes=(2 ** cfg.bits,) * dim, latent_channels=0,
            scaling_factor=1.0, paper=TOKENBRIDGE_PAPER, code=TOKENBRIDGE_CODE,
            notes=f"MAR's KL-16 latent (posterior mean) x {cfg.scaling_factor}, {cfg.bits} bits per channel on "
                  f"[-{cfg.value_range:g}, {cfg.value_range:g}]; components in TokenBridge's AR channel order "
                  f"{','.join(map(str, cfg.channel_order))}",
        )

    def scaled_latents(self, x: torch.Tensor) -> torch.Tensor:
        """What TokenBridge quantizes: the posterior mean times the scaling factor, channels-first."""
        return self._posterior(x).mean * self.cfg.scaling_factor

    def _tokens(self, codes) -> Tokens:
        return Tokens.from_indices(codes, "levels", self.info.vocab_sizes)

    def _encode(self, x):
        return self._tokens(self.quantize(self.scaled_latents(x)).codes)

    def _neighbours(self, x, k):
        z = self.scaled_latents(x)
        return self._tokens(self.quantize(z).codes), [self.quantize.neighbours(z, k)]

    def _decode(self, tokens):
        return self.decode_latents(self.quantize.dequantize(tokens.indices) / self.cfg.scaling_factor)


def _model_state(state: dict) -> dict:
    """``kl16.ckpt`` keeps the VAE under ``['model']``."""
    return state["model"] if isinstance(state.get("model"), dict) else state


_KL16 = ManualFile("kl16.ckpt", KL16_URL)
register_architecture("mar-kl16", MARConfig)(MARKL16)
register_architecture("tokenbridge-kl16", TokenBridgeConfig)(TokenBridgeKL16)


@register_tokenizer(
    "mar-kl16",
    weights={"release": Checkpoint({"model": _KL16}, single_file(_model_state), license="MIT",
                                   published={"rfid": 0.53, "dataset": "ImageNet val, 256x256",
                                              "note": "measured by users on val; the paper's 1.22 is on train",
                                              "source": f"{TOKENBRIDGE_CODE}#readme"})},
    description="MAR's KL-16 VAE: continuous 16x16x16 latents at 256 px (generator scale 0.2325)",
)
def mar_kl16(**kw):
    return MARKL16(replace(MARConfig(), **kw))


@register_tokenizer(
    "tokenbridge-kl16",
    weights={"release": Checkpoint({"model": _KL16}, single_file(_model_state), license="MIT",
                                   published={"rfid": 0.53, "dataset": "ImageNet val, 256x256",
                                              "note": "~0.53 (6 bits, range 5)",
                                              "source": f"{TOKENBRIDGE_CODE}#readme"})},
    description="TokenBridge: MAR's KL-16 latents quantized per channel to 64 levels, 16x16 positions x 16",
)
def tokenbridge_kl16(**kw):
    return TokenBridgeKL16(replace(TokenBridgeConfig(), **kw))

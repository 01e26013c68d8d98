"""Continuous KL-VAE (Stable Diffusion's autoencoder), with diffusers' `AutoencoderKL` module names.

The module tree mirrors diffusers so that ``stabilityai/sd-vae-ft-mse`` and friends load with
``strict=True``: ``encoder.down_blocks.{i}.resnets.{j}``, ``.downsamplers.0.conv``, ``mid_block.attentions.0``
(``group_norm``, ``to_q``, ``to_k``, ``to_v``, ``to_out.0``), ``decoder.up_blocks.{i}`` listed from the
lowest resolution up, ``quant_conv`` and ``post_quant_conv``. Files saved before diffusers renamed its
attention weights (``query``, ``key``, ``value``, ``proj_attn``) are accepted and renamed on load.

Encoding returns the posterior mode (its mean), unscaled; ``encode_posterior`` gives the distribution to
sample from, and ``info.scaling_factor`` is the factor latent-diffusion models multiply latents by
(``to_generator_space``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers.scalar import GaussianPosterior
from .base import Tokenizer, TokenizerInfo
from .layers import Downsample, ResnetBlock, Upsample, group_norm
from .pretrained import register_architecture
from .registry import register_tokenizer
from .tokens import Tokens
from .weights import RANDOM_INIT, Checkpoint, HubFile, single_file

SD_VAE_PAPER = "https://arxiv.org/abs/2112.10752"
SD_VAE_CODE = "https://github.com/huggingface/diffusers"


@dataclass(frozen=True)
class KLVAEConfig:
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 256
    scaling_factor: float = 0.18215


def _resnet(cin: int, cout: int, groups: int) -> ResnetBlock:
    return ResnetBlock(cin, cout, groups, shortcut_name="conv_shortcut")


class Attention(nn.Module):
    """Single-head self-attention over all positions, with a residual connection."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = group_norm(channels, groups)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x):
        b, c, h, w = x.shape
        seq = self.group_norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q, k, v = (proj(seq).unsqueeze(1) for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        out = self.to_out[1](self.to_out[0](out))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class MidBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([_resnet(channels, channels, groups) for _ in range(2)])
        self.attentions = nn.ModuleList([Attention(channels, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class ResnetStage(nn.Module):
    """Resnet blocks at one resolution, then optional resampling stored as ``downsamplers``/``upsamplers``."""

    def __init__(self, cin: int, cout: int, layers: int, groups: int, resample: str | None):
        super().__init__()
        self.resnets = nn.ModuleList([_resnet(cin if i == 0 else cout, cout, groups) for i in range(layers)])
        self._resample = {"down": "downsamplers", "up": "upsamplers", None: None}[resample]
        if resample:
            setattr(self, self._resample, nn.ModuleList([(Downsample if resample == "down" else Upsample)(cout)]))

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return getattr(self, self._resample)[0](x) if self._resample else x


class Encoder(nn.Module):
    def __init__(self, cfg: KLVAEConfig):
        super().__init__()
        ch, g = cfg.block_out_channels, cfg.norm_num_groups
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            ResnetStage(ch[max(i - 1, 0)], ch[i], cfg.layers_per_block, g, "down" if i < len(ch) - 1 else None)
            for i in range(len(ch))
        )
        self.mid_block = MidBlock(ch[-1], g)
        self.conv_norm_out = group_norm(ch[-1], g)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    def __init__(self, cfg: KLVAEConfig):
        super().__init__()
        ch, g = tuple(reversed(cfg.block_out_channels)), cfg.norm_num_groups
        self.conv_in = nn.Conv2d(cfg.latent_channels, ch[0], 3, padding=1)
        self.mid_block = MidBlock(ch[0], g)
        self.up_blocks = nn.ModuleList(
            ResnetStage(ch[max(i - 1, 0)], ch[i], cfg.layers_per_block + 1, g, "up" if i < len(ch) - 1 else None)
            for i in range(len(ch))
        )
        self.conv_norm_out = group_norm(ch[-1], g)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class AutoencoderKL(Tokenizer):
    def __init__(self, cfg: KLVAEConfig = KLVAEConfig(), family: str = "kl-vae"):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(cfg.latent_channels, cfg.latent_channels, 1)
        down = 2 ** (len(cfg.block_out_channels) - 1)
        self.info = TokenizerInfo(
            family=family, kind="continuous", resolution=cfg.sample_size, downsample=down, vocab_sizes=(),
            tokens_per_image=(cfg.sample_size // down) ** 2, paper=SD_VAE_PAPER, code=SD_VAE_CODE,
            license="MIT (sd-vae-ft weights)", input_range="minus_one_one",
            latent_channels=cfg.latent_channels, scaling_factor=cfg.scaling_factor,
        )

    def _posterior(self, x: torch.Tensor) -> GaussianPosterior:
        """The diagonal Gaussian posterior (log-variance clamped to [-30, 20])."""
        return GaussianPosterior.from_moments(self.quant_conv(self.encoder(x)))

    def _encode(self, x):
        return Tokens.from_latents(self._posterior(x).mean)


    def _decode(self, tokens):
        return self.decoder(self.post_quant_conv(tokens.latents))


_OLD_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_OLD_ATTENTION_KEY = re.compile(r"(\.attentions\.\d+\.)(query|key|value|proj_attn)\.")


def convert_diffusers_state_dict(state: dict) -> dict:
    """Rename pre-0.14 diffusers attention weights (query/key/value/proj_attn) to the current names."""
    out = {}
    for k, v in state.items():
        m = _OLD_ATTENTION_KEY.search(k)
        if m:
            k = k[: m.start()] + m.group(1) + _OLD_ATTENTION_NAMES[m.group(2)] + "." + k[m.end():]
            if v.ndim == 4:  # 1x1 conv kernels stored for what is now a linear layer
                v = v[:, :, 0, 0]
        out[k] = v
    return out


_SD_CARD = "https://huggingface.co/stabilityai/sd-vae-ft-mse#evaluation"
#: Stable Diffusion's KL-f8 VAE with fine-tuned decoders: name -> sha256, revision, how it was fine-tuned, and
#: the published evaluation (COCO 2017 val, 256x256, 5000 images)
SD_VAES = {
    "sd-vae-ft-mse": ("a1d993488569e928462932c8c38a0760b874d166399b14414135bd9c42df5815",
                      "31f26fdeee1355a5c34592e401dd41e45d25a493", "MSE+LPIPS",
                      {"rfid": 4.70, "psnr": 24.5, "ssim": 0.71}),
    "sd-vae-ft-ema": ("32db726da04f06c1b6b14c0043ce115cc87a501482945c5add89a40d838fcb46",
                      "f04b2c4b98319346dad8c65879f680b1997b204a", "L1+LPIPS, EMA weights",
                      {"rfid": 4.42, "psnr": 23.8, "ssim": 0.69}),
}
TINY_KL_VAE = KLVAEConfig(block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
                          norm_num_groups=8, sample_size=64)

register_architecture("kl-vae", KLVAEConfig)(AutoencoderKL)
for _name, (_sha, _rev, _how, _published) in SD_VAES.items():
    register_tokenizer(
        _name,
        weights={"hub": Checkpoint(
            {"model": HubFile(f"stabilityai/{_name}", "diffusion_pytorch_model.safetensors", _sha, _rev)},
            single_file(convert_diffusers_state_dict), license="MIT",
            published={**_published, "dataset": "COCO 2017 val, 256x256, 5000 images", "source": _SD_CARD})},
        description=f"Stable Diffusion KL-f8 VAE, decoder fine-tuned ({_how}); the continuous reference line",
    )(lambda **kw: AutoencoderKL(replace(KLVAEConfig(), **kw)))


@register_tokenizer("kl-vae-tiny", weights={"random": RANDOM_INIT},
                    description="test fixture: the KL-VAE architecture at toy size, random weights")
def kl_vae_tiny(**kw):
    return AutoencoderKL(replace(TINY_KL_VAE, **kw))

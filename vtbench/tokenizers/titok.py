"""TiTok (Yu et al. 2024): every released tokenizer, module names as in bytedance/1d-tokenizer
``modeling/titok.py`` and ``modeling/modules/blocks.py``, so the hub's ``model.safetensors`` and the older
``fun-research/TiTok`` ``.bin`` files (both a flat state dict) load strictly.

A ViT reads the 16x16 patches of a 256 px image next to ``num_latent_tokens`` learned latent tokens; the
latent tokens' outputs, after ``ln_post`` and a 1x1 ``conv_out``, are the tokens. A decoder ViT puts a grid of
mask tokens next to the (embedded) tokens and turns the grid's outputs into the image. Three kinds:

* two-stage (L-32, B-64, S-128; ``legacy``): 4096 codes of 12 dims, looked up by cosine (feature and codebook
  l2-normalised). The decoder's ``ffn`` gives logits over the 1024 codes of MaskGIT's VQGAN at each grid
  position, their softmax mixes that VQGAN's code embeddings (``pixel_quantize``) and its decoder
  (``pixel_decoder``, `vtbench.tokenizers.maskgit_vqgan`) paints the image. The encoder's output is
  re-read with a raw ``reshape`` of ``(B, N, width)`` to ``(B, width, N, 1)`` (not a transpose) before
  ``conv_out``, as the released weights were trained.
* VQ (BL-64, BL-128, SL-256 ``_vq8k``): 8192 codes of 64 dims, plain l2 lookup; the decoder predicts pixels
  (a 1x1 conv to a 16x16 patch per grid position, then a 3x3 ``conv_out``).
* VAE (LL-32, BL-64, BL-128 ``_vae_c16``): continuous, 16 channels per token; `encode` gives the posterior
  mean (the official ``encode`` samples it: `encode_posterior(x).sample(generator)` does that).

Inputs are in [0, 1] inside (vtbench's [-1, 1] is converted); the output is clamped to [0, 1], as the
official demo does. Lookups and the posterior run in float32 with autocast off. Tokens are a 1D sequence
``(B, N)`` (``(B, N, 16)`` latents for the VAEs); the learned positional embeddings fix the input at 256x256.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from .. import quantizers as Q
from ..quantizers.scalar import GaussianPosterior
from .base import Tokenizer, TokenizerInfo
from .layers import ResidualAttentionBlock
from .maskgit_vqgan import MaskGITVQGANConfig, PixelCodebook, PixelDecoder
from .pretrained import register_architecture
from .registry import register_tokenizer
from .tokens import Tokens
from .weights import Checkpoint, HubFile, WeightsMismatch, single_file

PAPER = "https://arxiv.org/abs/2406.07550"
CODE = "https://github.com/bytedance/1d-tokenizer"
README = f"{CODE}/blob/main/README_TiTok.md"
LICENSE = "Apache-2.0 (model cards); README_TiTok: for research purposes only"
#: the official ViT sizes: (width, layers, heads)
VIT = {"small": (512, 8, 8), "base": (768, 12, 12), "large": (1024, 24, 16)}


@dataclass(frozen=True)
class TiTokConfig:
    num_latent_tokens: int = 32
    encoder: tuple[int, int, int] = VIT["large"]  # (width, layers, heads)
    decoder: tuple[int, int, int] = VIT["large"]
    quantize_mode: str = "vq"  # "vq" or "vae"
    codebook_size: int = 4096  # vq only
    token_size: int = 12  # channels of a token (vae: of the posterior mean)
    use_l2_norm: bool = True  # vq: cosine lookup
    legacy: bool = True  # two-stage: raw-reshape encoder head, decoder to MaskGIT-VQGAN logits
    pixel: MaskGITVQGANConfig = MaskGITVQGANConfig()  # legacy only
    patch_size: int = 16
    resolution: int = 256

    def __post_init__(self):
        if isinstance(self.pixel, dict):  # read back from config.json
            object.__setattr__(self, "pixel", MaskGITVQGANConfig(**self.pixel))
        for name in ("encoder", "decoder"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.quantize_mode not in ("vq", "vae"):
            raise ValueError(f"quantize_mode is 'vq' or 'vae', got {self.quantize_mode!r}")
        if self.legacy and (self.quantize_mode != "vq" or self.pixel.upsample_factor != self.patch_size):
            raise ValueError("the two-stage (legacy) decoder needs vq tokens and a MaskGIT-VQGAN that upsamples "
                             f"by the patch size {self.patch_size}")
        if self.resolution % self.patch_size:
            raise ValueError(f"resolution {self.resolution} is not a multiple of the patch size {self.patch_size}")

    @property
    def grid(self) -> int:
        return self.resolution // self.patch_size


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(shape[-1] ** -0.5 * torch.randn(*shape))


class _Trunk(nn.Module):
    """Class token, grid and latent positions, ``ln_pre``, pre-norm blocks run sequence-first, ``ln_post``."""

    def __init__(self, vit: tuple[int, int, int], grid: int, tokens: int):
        super().__init__()
        width, layers, heads = vit
        self.width, self.grid = width, grid
        self.class_embedding = _param(1, width)
        self.positional_embedding = _param(grid * grid + 1, width)
        self.latent_token_positional_embedding = _param(tokens, width)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList(ResidualAttentionBlock(width, heads, batch_first=False)
                                         for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)

    def run(self, grid_tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``grid_tokens`` (B, g*g, w) and ``latent`` (B, N, w) without positions -> outputs for
        [class, grid, latent] (B, 1 + g*g + N, w)."""
        b = grid_tokens.shape[0]
        x = torch.cat([self.class_embedding.expand(b, 1, -1), grid_tokens], 1) + self.positional_embedding
        x = torch.cat([x, latent + self.latent_token_positional_embedding], 1)
        x = self.ln_pre(x).transpose(0, 1)
        for block in self.transformer:
            x = block(x)
        return x.transpose(0, 1)


class TiTokEncoder(_Trunk):
    def __init__(self, cfg: TiTokConfig):
        super().__init__(cfg.encoder, cfg.grid, cfg.num_latent_tokens)
        self.legacy = cfg.legacy
        out = cfg.token_size * (2 if cfg.quantize_mode == "vae" else 1)
        self.patch_embed = nn.Conv2d(3, self.width, cfg.patch_size, stride=cfg.patch_size)
        self.conv_out = nn.Conv2d(self.width, out, 1)

    def forward(self, x: torch.Tensor, latent_tokens: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, R, R) in [0, 1] -> token features (B, C, N)."""
        b, n = x.shape[0], latent_tokens.shape[0]
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        out = self.run(patches, latent_tokens.expand(b, -1, -1))
        latent = self.ln_post(out[:, 1 + self.grid ** 2:])
        if self.legacy:  # the released two-stage weights read (B, N, w) memory as (B, w, N, 1)
            latent = latent.reshape(b, self.width, n, 1)
        else:
            latent = latent.transpose(1, 2).unsqueeze(-1)
        return self.conv_out(latent).flatten(2)


class PatchesToImage(nn.Module):
    """(B, p*p*3, g, g), channels ordered (row, column, colour) -> (B, 3, g*p, g*p)."""

    def __init__(self, patch_size: int):
        super().__init__()
        self.p = patch_size

    def forward(self, x):
        b, _, g, _ = x.shape
        p = self.p
        return x.view(b, p, p, 3, g, g).permute(0, 3, 4, 1, 5, 2).reshape(b, 3, g * p, g * p)


class TiTokDecoder(_Trunk):
    def __init__(self, cfg: TiTokConfig):
        super().__init__(cfg.decoder, cfg.grid, cfg.num_latent_tokens)
        w, p = self.width, cfg.patch_size
        self.decoder_embed = nn.Linear(cfg.token_size, w)
        self.mask_token = _param(1, 1, w)
        if cfg.legacy:  # logits over the MaskGIT-VQGAN codes
            self.ffn = nn.Sequential(nn.Conv2d(w, 2 * w, 1), nn.Tanh(), nn.Conv2d(2 * w, cfg.pixel.codebook_size, 1))
            self.conv_out = nn.Identity()
        else:
            self.ffn = nn.Sequential(nn.Conv2d(w, p * p * 3, 1), PatchesToImage(p))
            self.conv_out = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Tokens (B, C, N) -> images (B, 3, R, R), or (legacy) code logits (B, 1024, g, g)."""
        b, g = z.shape[0], self.grid
        out = self.run(self.mask_token.expand(b, g * g, -1), self.decoder_embed(z.transpose(1, 2)))
        x = self.ln_post(out[:, 1:1 + g * g])
        return self.conv_out(self.ffn(x.transpose(1, 2).reshape(b, self.width, g, g)))


class TiTok(Tokenizer):
    def __init__(self, cfg: TiTokConfig = TiTokConfig()):
        super().__init__()
        self.cfg = cfg
        self.latent_tokens = _param(cfg.num_latent_tokens, cfg.encoder[0])
        self.encoder = TiTokEncoder(cfg)
        self.decoder = TiTokDecoder(cfg)
        vq = cfg.quantize_mode == "vq"
        if vq:
            self.quantize = Q.VectorQuantizer(cfg.token_size, cfg.codebook_size,
                                              distance="cosine" if cfg.use_l2_norm else "l2")
        if cfg.legacy:
            self.pixel_quantize = PixelCodebook(cfg.pixel)
            self.pixel_decoder = PixelDecoder(cfg.pixel)
        n = cfg.num_latent_tokens
        self.info = TokenizerInfo(
            family="titok", kind="index" if vq else "continuous", resolution=cfg.resolution,
            downsample=cfg.patch_size, vocab_sizes=(cfg.codebook_size,) if vq else (), tokens_per_image=n,
            spatial_dims=1, latent_channels=0 if vq else cfg.token_size, fixed_resolution=True, paper=PAPER,
            code=CODE, license=LICENSE, input_range="zero_one", notes=_notes(cfg),
        )

    def check_size(self, height, width):
        r = self.info.resolution
        if (height, width) != (r, r):
            raise ValueError(f"{self._name()} encodes {r}x{r} images only (its positional embeddings are for a "
                             f"{self.cfg.grid}x{self.cfg.grid} patch grid), got {height}x{width}; "
                             f"resize or crop to {r}x{r}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's token features (B, C, N) (VAE: mean and log-variance stacked, 2C channels)."""
        return self.encoder(x, self.latent_tokens)

    def _tokens(self, codes: torch.Tensor) -> Tokens:
        return Tokens.from_indices(codes, "index", self.info.vocab_sizes, spatial_dims=1)

    def _posterior(self, x):
        z = self.features(x)
        with torch.autocast(z.device.type, enabled=False):
            return GaussianPosterior.from_moments(z.float())

    def _encode(self, x):
        if self.cfg.quantize_mode == "vae":
            return Tokens.from_latents(self._posterior(x).mean)
        return self._tokens(self.quantize(self.features(x)).codes)

    def _neighbours(self, x, k):
        z = self.features(x).float()
        with torch.autocast(z.device.type, enabled=False):
            return self._tokens(self.quantize(z).codes), [self.quantize.neighbours(z, k)]

    def _decode(self, tokens):
        if self.cfg.quantize_mode == "vae":
            return self.decode_latents(tokens.latents)
        return self.decode_latents(self.quantize.dequantize(tokens.indices))

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from token embeddings (B, C, N): codebook rows, or VAE latents."""
        x = self.decoder(z)
        if self.cfg.legacy:
            x = self.pixel_decoder(self.pixel_quantize.soft_embed(x))
        return x.clamp(0, 1)

    def tokens_from_indices(self, indices, resolution=None) -> Tokens:
        """Also takes the official ``(B, 1, N)`` form (``min_encoding_indices``)."""
        if torch.is_tensor(indices) and indices.ndim == 3 and indices.shape[1] == 1:
            indices = indices.squeeze(1)
        return super().tokens_from_indices(indices, resolution)


def _notes(cfg: TiTokConfig) -> str:
    if cfg.quantize_mode == "vae":
        return (f"{cfg.num_latent_tokens} continuous tokens of {cfg.token_size} channels (posterior mean); "
                "256 px only")
    lookup = "cosine" if cfg.use_l2_norm else "l2"
    stage = "; decoded through MaskGIT-VQGAN (two-stage)" if cfg.legacy else ""
    return (f"{cfg.num_latent_tokens} tokens of {cfg.codebook_size} codes (dim {cfg.token_size}, {lookup} lookup)"
            f"{stage}; 256 px only")


def _signature(tokens: int, mode: str, codes: int, dim: int, legacy: bool) -> str:
    kind = f"VAE of {dim} channels" if mode == "vae" else f"VQ {codes} x {dim}"
    return f"{tokens} tokens, {kind}, {'two-stage' if legacy else 'single-stage'}"


def _config_signature(cfg: TiTokConfig) -> str:
    vq = cfg.quantize_mode == "vq"
    return _signature(cfg.num_latent_tokens, cfg.quantize_mode, cfg.codebook_size if vq else 0, cfg.token_size,
                      cfg.legacy)


def _file_signature(state: dict) -> str | None:
    """What a TiTok state dict holds, by the shapes that tell the released variants apart."""
    if "latent_tokens" not in state or "encoder.conv_out.weight" not in state:
        return None
    tokens = state["latent_tokens"].shape[0]
    legacy = any(k.startswith("pixel_decoder.") for k in state)
    codebook = state.get("quantize.embedding.weight")
    if codebook is not None:
        return _signature(tokens, "vq", codebook.shape[0], codebook.shape[1], legacy)
    return _signature(tokens, "vae", 0, state["encoder.conv_out.weight"].shape[0] // 2, legacy)


def _converter(cfg: TiTokConfig):
    """The released files are the flat state dict (``model.safetensors`` and the ``.bin`` files alike); a file
    of another TiTok variant is named as such."""
    expected = _config_signature(cfg)

    def convert(state: dict) -> dict:
        found = _file_signature(state)
        if found is not None and found != expected:
            other = [name for name, (c, *_rest) in VARIANTS.items() if _config_signature(c) == found]
            use = f": use {other[0]}" if other else " (no released entry has it)"
            raise WeightsMismatch(f"this TiTok checkpoint has {found}; the entry has {expected}{use}")
        return state

    return convert


register_architecture("titok", TiTokConfig)(TiTok)

_TWO_STAGE = dict(codebook_size=4096, token_size=12, use_l2_norm=True, legacy=True)
_VQ8K = dict(codebook_size=8192, token_size=64, use_l2_norm=False, legacy=False)
_VAE = dict(quantize_mode="vae", token_size=16, legacy=False)
#: the released ImageNet tokenizers: name -> (config, hub repo, file in fun-research/TiTok or None, rFID on
#: ImageNet val 256 from README_TiTok)
VARIANTS = {
    "titok-l32": (TiTokConfig(32, VIT["large"], VIT["large"], **_TWO_STAGE), "tokenizer_titok_l32_imagenet",
                  "tokenizer_titok_l32.bin", 2.21),
    "titok-b64": (TiTokConfig(64, VIT["base"], VIT["base"], **_TWO_STAGE), "tokenizer_titok_b64_imagenet",
                  "tokenizer_titok_b64.bin", 1.70),
    "titok-s128": (TiTokConfig(128, VIT["small"], VIT["small"], **_TWO_STAGE), "tokenizer_titok_s128_imagenet",
                   "tokenizer_titok_s128.bin", 1.71),
    "titok-bl64-vq8k": (TiTokConfig(64, VIT["base"], VIT["large"], **_VQ8K), "tokenizer_titok_bl64_vq8k_imagenet",
                        None, 2.06),
    "titok-bl128-vq8k": (TiTokConfig(128, VIT["base"], VIT["large"], **_VQ8K),
                         "tokenizer_titok_bl128_vq8k_imagenet", None, 1.49),
    "titok-sl256-vq8k": (TiTokConfig(256, VIT["small"], VIT["large"], **_VQ8K),
                         "tokenizer_titok_sl256_vq8k_imagenet", None, 1.03),
    "titok-ll32-vae": (TiTokConfig(32, VIT["large"], VIT["large"], **_VAE), "tokenizer_titok_ll32_vae_c16_imagenet",
                       None, 1.61),
    "titok-bl64-vae": (TiTokConfig(64, VIT["base"], VIT["large"], **_VAE), "tokenizer_titok_bl64_vae_c16_imagenet",
                       None, 1.25),
    "titok-bl128-vae": (TiTokConfig(128, VIT["base"], VIT["large"], **_VAE),
                        "tokenizer_titok_bl128_vae_c16_imagenet", None, 0.84),
}
for _name, (_cfg, _repo, _bin, _rfid) in VARIANTS.items():
    _published = {"rfid": _rfid, "dataset": "ImageNet val, 256x256", "source": README}
    _weights = {"hub": Checkpoint({"model": HubFile(f"yucornetto/{_repo}", "model.safetensors")},
                                  single_file(_converter(_cfg)), license=LICENSE, published=_published)}
    if _bin:
        _weights["bin"] = Checkpoint({"model": HubFile("fun-research/TiTok", _bin)}, single_file(_converter(_cfg)),
                                     license=LICENSE, published=_published)
    register_tokenizer(
        _name, weights=_weights,
        description=f"TiTok {_name[6:].upper()}: {_notes(_cfg)}",
    )(lambda _c=_cfg, **kw: TiTok(replace(_c, **kw)))

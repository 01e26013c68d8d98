"""The mini-zoo's 1D tokenizers: a ViT reads a 256 px image into an ordered sequence of latent tokens.

TiTok-style (Yu et al. 2024): patch tokens and a fixed set of learned latent tokens go through one
transformer; the latent tokens' outputs are quantized. The decoder puts the quantized tokens next to a grid
of mask tokens, and the mask tokens' outputs become pixels (one 1x1 conv to a patch each, then a 3x3
conv), as in TiTok's pixel-predicting decoder. Module names follow TiTok's (``encoder.patch_embed``,
``latent_token_positional_embedding``, ``transformer.N.attn``, ``decoder.ffn``, ...).

FlexTok-style (Bachmann et al. 2025): the same ViT with FlexTok's two ingredients for ordered tokens: a
causal mask over the register (latent) tokens in the encoder, so token i depends on the image and tokens
``< i`` only, and nested dropout in training, which keeps only the first k tokens (k a random power of
two) and hands the decoder a learned mask embedding for the rest. Any prefix then decodes to an image.
FlexTok's decoder is a rectified-flow transformer; the mini version decodes deterministically with the
TiTok-style decoder above, trained with L1 + LPIPS, so its short prefixes give blurry averages where the
real FlexTok samples sharp plausible images. The faithful ports are separate work.

Both are fixed-resolution tokenizers (256 px, patch 16): they encode 256x256 images only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .. import quantizers as Q
from .base import Tokenizer, TokenizerInfo
from .layers import ResidualAttentionBlock
from .tokens import Tokens


@dataclass(frozen=True)
class Mini1DConfig:
    family: str
    quantizer: str  # "vq" or "fsq" (see mini.build_quantizer)
    quantizer_args: dict = field(default_factory=dict)
    code_channels: int = 12  # token_size: channels of one latent token as the quantizer sees it
    num_latent_tokens: int = 128
    width: int = 128
    depth: int = 4  # transformer blocks in the encoder and in the decoder each
    heads: int = 4
    patch_size: int = 16
    resolution: int = 256
    ordered: bool = False  # FlexTok: causal register mask + nested dropout
    paper: str = ""
    notes: str = ""


def _param(*shape: int, width: int) -> nn.Parameter:
    return nn.Parameter(width ** -0.5 * torch.randn(*shape))


def _expand(t: torch.Tensor, batch: int) -> torch.Tensor:
    return t.unsqueeze(0).expand(batch, *t.shape)


class _ViT(nn.Module):
    """Shared trunk: class token + a positional grid + latent positions, ln_pre, blocks, ln_post."""

    def __init__(self, cfg: Mini1DConfig):
        super().__init__()
        w, self.grid = cfg.width, cfg.resolution // cfg.patch_size
        self.class_embedding = _param(1, w, width=w)
        self.positional_embedding = _param(self.grid ** 2 + 1, w, width=w)
        self.latent_token_positional_embedding = _param(cfg.num_latent_tokens, w, width=w)
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = nn.ModuleList(ResidualAttentionBlock(w, cfg.heads) for _ in range(cfg.depth))
        self.ln_post = nn.LayerNorm(w)

    def run(self, grid_tokens: torch.Tensor, latent: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``grid_tokens`` (B, g*g, w) and ``latent`` (B, K, w), positions not yet added; returns the
        transformer's output for [class, grid, latent]."""
        b = grid_tokens.shape[0]
        x = torch.cat([_expand(self.class_embedding, b), grid_tokens], 1) + self.positional_embedding
        x = torch.cat([x, latent + self.latent_token_positional_embedding], 1)
        x = self.ln_pre(x)
        for block in self.transformer:
            x = block(x, mask)
        return x


class Mini1DEncoder(_ViT):
    def __init__(self, cfg: Mini1DConfig):
        super().__init__(cfg)
        self.patch_embed = nn.Conv2d(3, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        self.conv_out = nn.Conv2d(cfg.width, cfg.code_channels, 1)
        self.register_buffer("mask", _register_mask(self.grid ** 2 + 1, cfg.num_latent_tokens) if cfg.ordered
                             else None, persistent=False)

    def forward(self, x: torch.Tensor, latent_tokens: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, R, R) -> latent token features (B, code_channels, K)."""
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        out = self.run(patches, _expand(latent_tokens, x.shape[0]), self.mask)
        latent = self.ln_post(out[:, 1 + self.grid ** 2:])
        return self.conv_out(latent.transpose(1, 2).unsqueeze(2)).squeeze(2)


class Mini1DDecoder(_ViT):
    def __init__(self, cfg: Mini1DConfig):
        super().__init__(cfg)
        w, p = cfg.width, cfg.patch_size
        self.patch_size = p
        self.decoder_embed = nn.Linear(cfg.code_channels, w)
        self.mask_token = _param(1, 1, w, width=w)
        if cfg.ordered:  # FlexTok: what the decoder sees in place of dropped (or not transmitted) tokens
            self.register_mask_token = _param(1, 1, w, width=w)
        self.ffn = nn.Conv2d(w, p * p * 3, 1)
        self.conv_out = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, z_q: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Quantized tokens (B, C, n), n <= K (a prefix) -> images (B, 3, R, R). ``keep`` (B,) optionally
        drops every token at or after position keep[b] (nested dropout)."""
        b, _, n = z_q.shape
        k = self.latent_token_positional_embedding.shape[0]
        latent = self.decoder_embed(z_q.transpose(1, 2))
        if n < k or keep is not None:
            if not hasattr(self, "register_mask_token"):
                raise ValueError(f"this tokenizer decodes all {k} tokens only (got {n}); prefixes need an ordered "
                                 "(FlexTok-style) tokenizer")
            latent = torch.cat([latent, self.register_mask_token.expand(b, k - n, -1)], 1)
            if keep is not None:
                dropped = torch.arange(k, device=z_q.device)[None, :] >= keep[:, None]
                latent = torch.where(dropped[..., None], self.register_mask_token, latent)
        return self.pixels(self.mask_token.expand(b, self.grid ** 2, -1), latent)

    def pixels(self, grid_tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Run the transformer on ``grid_tokens`` (B, g*g, w) next to ``latent`` (B, K, w); the grid outputs
        become the image (B, 3, R, R)."""
        b = grid_tokens.shape[0]
        out = self.run(grid_tokens, latent, None)
        x = self.ln_post(out[:, 1:1 + self.grid ** 2])
        x = self.ffn(x.transpose(1, 2).reshape(b, -1, self.grid, self.grid))
        return self.conv_out(_patches_to_image(x, self.patch_size))


def _patches_to_image(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, p*p*3, g, g) with channels ordered (row, column, colour) -> (B, 3, g*p, g*p)."""
    b, _, g, _ = x.shape
    return x.view(b, p, p, 3, g, g).permute(0, 3, 4, 1, 5, 2).reshape(b, 3, g * p, g * p)


def _register_mask(grid_tokens: int, registers: int) -> torch.Tensor:
    """Boolean attention mask (True = blocked): image tokens see image tokens only; register i sees the
    image and registers 0..i."""
    n = grid_tokens + registers
    blocked = torch.zeros(n, n, dtype=torch.bool)
    blocked[:grid_tokens, grid_tokens:] = True
    blocked[grid_tokens:, grid_tokens:] = torch.ones(registers, registers, dtype=torch.bool).triu(1)
    return blocked


def nested_dropout_keep(batch: int, tokens: int, device=None) -> torch.Tensor:
    """FlexTok's nested dropout: per image, a prefix length drawn uniformly from 1, 2, 4, ..., tokens."""
    powers = [2 ** i for i in range(tokens.bit_length())]  # every power of two <= tokens
    options = torch.tensor(powers + ([tokens] if powers[-1] != tokens else []), device=device)
    return options[torch.randint(len(options), (batch,), device=device)]


class Mini1DTokenizer(Tokenizer):
    """A TiTok- or FlexTok-style mini tokenizer. ``keep_tokens`` makes `encode` return only that prefix
    (ordered tokenizers only), so a truncated FlexTok is a tokenizer of its own on the leaderboard."""

    def __init__(self, cfg: Mini1DConfig, quantizer: Q.Quantizer, keep_tokens: int | None = None):
        super().__init__()
        if keep_tokens is not None and not (cfg.ordered and 1 <= keep_tokens <= cfg.num_latent_tokens):
            raise ValueError(f"keep_tokens needs an ordered tokenizer and 1..{cfg.num_latent_tokens}")
        self.cfg, self.keep_tokens = cfg, keep_tokens
        self.latent_tokens = _param(cfg.num_latent_tokens, cfg.width, width=cfg.width)
        self.encoder = Mini1DEncoder(cfg)
        self.quantize = quantizer
        self.decoder = Mini1DDecoder(cfg)
        n = keep_tokens or cfg.num_latent_tokens
        notes = cfg.notes + (f"; first {n} of {cfg.num_latent_tokens} tokens" if keep_tokens else "")
        self.info = TokenizerInfo(
            family=cfg.family, kind=quantizer.kind, resolution=cfg.resolution, downsample=cfg.patch_size,
            vocab_sizes=quantizer.vocab_sizes, tokens_per_image=n, spatial_dims=1, paper=cfg.paper,
            code="vtbench (vtbench/tokenizers/mini1d.py)", license="Apache-2.0", input_range="minus_one_one",
            notes=notes, fixed_resolution=True, ordered=cfg.ordered,
        )

    @property
    def quantizer(self) -> Q.Quantizer:
        return self.quantize

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: (reconstruction, quantizer loss); ordered tokenizers apply nested dropout."""
        out = self.quantize(self.latents(x))
        keep = nested_dropout_keep(x.shape[0], self.cfg.num_latent_tokens, x.device) if self.cfg.ordered else None
        return self.decoder(out.z_q, keep), out.loss

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        return self.encoder(x, self.latent_tokens)

    def _tokens(self, codes: torch.Tensor) -> Tokens:
        if self.keep_tokens:
            codes = codes[:, :self.keep_tokens]
        return Tokens((codes,), self.quantize.kind, self.quantize.vocab_sizes, spatial_dims=1)

    def _encode(self, x):
        return self._tokens(self.quantize(self.latents(x)).codes)

    def _neighbours(self, x, k):
        z = self.latents(x)
        cand = self.quantize.neighbours(z, k)
        return self._tokens(self.quantize(z).codes), [cand[:, :self.keep_tokens] if self.keep_tokens else cand]

    def _decode(self, tokens):
        """Ordered tokenizers decode a common prefix, or per-sample prefixes (``tokens.lengths``)."""
        return self.decoder(self.quantize.dequantize(tokens.scales[0]), tokens.lengths)

"""Parameter-free reference tokenizers: what a learned tokenizer has to beat at the same bit rate.

``bicubic-fN`` keeps an antialiased bicubic thumbnail at 1/N of the resolution, stored as 8-bit RGB
(so its tokens are one of 256 levels per channel per position, 24/N^2 bits per pixel), and decodes it
by bicubic upsampling; ``bicubic-f8-4bit`` stores 4 bits per channel (0.1875 bpp, the 2D mini-zoo's rate);
``bicubic-f32``, ``-f64`` and ``-f128`` spend exactly the bits of 128, 32 and 8 tokens of 12 bits at 256 px
(the 1D minis and their prefixes).
They need no weights, so they run on any machine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..quantizers.neighbours import level_candidates
from .base import Tokenizer, TokenizerInfo
from .registry import register_tokenizer
from .tokens import Tokens
from .weights import NO_WEIGHTS


class BicubicThumbnail(Tokenizer):
    def __init__(self, factor: int, bits: int = 8, resolution: int = 256):
        super().__init__()
        self.factor, self.top = factor, 2 ** bits - 1
        self.info = TokenizerInfo(
            family="baseline", kind="levels", resolution=resolution, downsample=factor, vocab_sizes=(2 ** bits,) * 3,
            tokens_per_image=(resolution // factor) ** 2, license="Apache-2.0", input_range="zero_one",
            notes=f"antialiased bicubic downsample to {bits}-bit RGB, bicubic upsample",
        )

    def _thumbnail(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last thumbnail on the level axis (0 .. 255, float)."""
        h, w = x.shape[-2] // self.factor, x.shape[-1] // self.factor
        small = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        return (small * self.top).clamp(0, self.top).movedim(1, -1)

    def _encode(self, x):
        return Tokens((self._thumbnail(x).round().long(),), "levels", self.info.vocab_sizes)

    def _neighbours(self, x, k):
        values = self._thumbnail(x)
        flat = values.reshape(-1, 3)
        cand = level_candidates(flat, flat.round().long(), torch.full((3,), self.top + 1), k)
        codes = values.round().long()
        return Tokens((codes,), "levels", self.info.vocab_sizes), [cand.view(*codes.shape[:-1], *cand.shape[1:])]

    def _decode(self, tokens):
        small = tokens.scales[0].movedim(-1, 1).float() / self.top
        size = (small.shape[-2] * self.factor, small.shape[-1] * self.factor)
        return F.interpolate(small, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def _register(factor: int, bits: int) -> None:
    name = f"bicubic-f{factor}" + ("" if bits == 8 else f"-{bits}bit")
    bpp = 3 * bits / factor ** 2
    register_tokenizer(
        name, weights={"none": NO_WEIGHTS},
        description=f"baseline: {bits}-bit RGB thumbnail at 1/{factor} resolution ({bpp:.3g} bpp), bicubic up",
    )(lambda **kw: BicubicThumbnail(factor, bits, **kw))


for _f, _bits in ((8, 8), (16, 8), (8, 4), (32, 8), (64, 8), (128, 8)):
    _register(_f, _bits)

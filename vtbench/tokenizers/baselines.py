"""Parameter-free reference tokenizers: what a learned tokenizer has to beat at the same bit rate.

``bicubic-fN`` keeps an antialiased bicubic thumbnail at 1/N of the resolution, stored as 8-bit RGB
(so its tokens are one of 256 levels per channel per position, 24/N^2 bits per pixel), and decodes it
by bicubic upsampling; ``bicubic-f8-4bit`` stores 4 bits per channel (0.1875 bpp, the 2D mini-zoo's rate);
``bicubic-f32``, ``-f64`` and ``-f128`` spend exactly the bits of 128, 32 and 8 tokens of 12 bits at 256 px
(the 1D minis and their prefixes).

``jpeg-qN`` and ``webp-qN`` are the classical codecs through Pillow, in memory, at quality N: the tokens of an
image are the bytes of its file (vocabulary 256, headers included) with per-image ``lengths``, so bits per
pixel is ``8 * len(file) / (H * W)``. The layout declares a capacity of ``3 * H * W + 1024`` bytes (raw RGB
plus room for headers) and pads with zeros past each length; a file is self-delimiting, so padded rows decode
too. A byte stream has no neighbouring codes: pFID does not apply.
They need no weights, so they run on any machine.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import PIL
import torch
import torch.nn.functional as F
from PIL import Image, features

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


#: quality sweeps: about 0.12 to 2.1 bpp (JPEG) and 0.12 to 1.7 bpp (WebP) on the builtin photos at 256 px;
#: JPEG's lowest setting is 1 (libjpeg clamps 0 to 1), WebP's is 0
CODEC_QUALITIES = {"jpeg": (1, 5, 10, 20, 30, 50, 75, 90), "webp": (0, 5, 10, 20, 30, 50, 75, 90)}
HEADER_ROOM = 1024  # bytes the declared capacity allows beyond raw RGB


@dataclass(frozen=True)
class CodecInfo(TokenizerInfo):
    """`TokenizerInfo` of a codec baseline: the codec and its settings, machine-readable in result files."""

    codec: str = ""
    quality: int = 0
    subsampling: str = ""


class PillowCodec(Tokenizer):
    """A classical codec as a tokenizer: images -> file bytes (1D, vocabulary 256, per-image lengths) -> images."""

    def __init__(self, codec: str, quality: int, resolution: int = 256):
        super().__init__()
        if codec not in CODEC_QUALITIES:
            raise ValueError(f"codec is one of {sorted(CODEC_QUALITIES)}, got {codec!r}")
        top = 95 if codec == "jpeg" else 100
        if not 0 <= quality <= top:
            raise ValueError(f"{codec} quality is in 0..{top}, got {quality}")
        self.codec, self.quality = codec, quality
        pil = f"Pillow {PIL.__version__}"
        if codec == "jpeg":
            self.options = dict(format="JPEG", quality=quality, subsampling="4:2:0", optimize=True)
            turbo = features.version("libjpeg_turbo")
            lib = f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"
            how = (f"JPEG via {pil} ({lib}), quality {quality}, 4:2:0 chroma subsampling, baseline with "
                   "optimized Huffman tables, JFIF headers counted")
        else:
            self.options = dict(format="WEBP", quality=quality, method=6)
            how = (f"lossy WebP via {pil} (libwebp {features.version('webp')}), quality {quality}, method 6, "
                   "4:2:0 (VP8), RIFF container counted")
        self.info = CodecInfo(
            family="baseline", kind="index", resolution=resolution, downsample=16, vocab_sizes=(256,),
            tokens_per_image=3 * resolution ** 2 + HEADER_ROOM, spatial_dims=1, license="Apache-2.0",
            caveat="a classical codec, not a tokenizer: its tokens are the bytes of a compressed file, so codebook "
                   "usage and token entropy describe byte values, and pFID does not apply",
            notes=f"{how}; tokens: the file's bytes (vocabulary 256) with per-image lengths, zero padding past them",
            codec=codec, quality=quality, subsampling="4:2:0",
        )

    def scale_shapes(self, height, width):
        return ((3 * height * width + HEADER_ROOM,),)

    def _encode(self, x):
        pixels = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        files = []
        for a in pixels:
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, **self.options)
            files.append(buf.getvalue())
        capacity = self.scale_shapes(*x.shape[-2:])[0][0]
        codes = torch.zeros(len(files), capacity, dtype=torch.long)
        for b, f in enumerate(files):
            if len(f) > capacity:
                raise ValueError(f"{self._name()}: image {b} takes {len(f)} bytes, over the declared {capacity}")
            codes[b, :len(f)] = torch.frombuffer(bytearray(f), dtype=torch.uint8)
        lengths = torch.tensor([len(f) for f in files], device=x.device)
        return Tokens((codes.to(x.device),), "index", (256,), 1, lengths=lengths)

    def _neighbours(self, x, k):
        # one message for every entry, so a leaderboard states it once
        raise NotImplementedError("codec baselines (JPEG, WebP) have no neighbouring codes: their tokens are "
                                  "file bytes, and a byte swapped for a nearby value corrupts the file, so pFID "
                                  "does not apply")

    def _check_tokens(self, tokens):
        """Any number of bytes (the capacity of any size), with or without lengths."""
        if not isinstance(tokens, Tokens):
            raise TypeError(f"decode takes vtbench.Tokens, got {type(tokens).__name__}; use decode_indices for ids")
        if (tokens.kind, tokens.vocab_sizes, tokens.spatial_dims, tokens.multiscale) != ("index", (256,), 1, False):
            raise ValueError(f"{self._name()} decodes 1D index tokens of vocabulary (256,) (file bytes), got "
                             f"{tokens.spatial_dims}D {tokens.kind} tokens of vocabulary {tokens.vocab_sizes}")
        if tokens.batch_size == 0:
            raise ValueError("cannot decode an empty batch")
        tokens.validate()

    def _decode(self, tokens):
        codes = tokens.scales[0].to("cpu", torch.uint8).numpy()
        ends = tokens.lengths.tolist() if tokens.lengths is not None else [codes.shape[1]] * len(codes)
        images, fmt = [], [self.options["format"]]
        for b, n in enumerate(ends):
            try:
                images.append(np.asarray(Image.open(io.BytesIO(codes[b, :n].tobytes()), formats=fmt).convert("RGB")))
            except (OSError, SyntaxError, ValueError) as e:
                raise ValueError(f"{self._name()}: image {b} is not a decodable {self.codec} file ({e})") from e
        if len({a.shape for a in images}) > 1:
            raise ValueError(f"{self._name()}: the files of one batch decode to different sizes")
        out = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(tokens.scales[0].device)
        return out.float() / 127.5 - 1


def _register_codec(codec: str, quality: int) -> None:
    register_tokenizer(
        f"{codec}-q{quality}", weights={"none": NO_WEIGHTS},
        description=f"baseline: {codec.upper()} at quality {quality} (Pillow, in memory); bits are the file's bytes",
        default_run=False,
    )(lambda **kw: PillowCodec(codec, **{"quality": quality, **kw}))


for _codec, _qualities in CODEC_QUALITIES.items():
    for _q in _qualities:
        _register_codec(_codec, _q)

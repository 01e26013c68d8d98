"""`Tokens`: the one container every tokenizer's `encode` returns and every `decode` takes.

A token set is a tuple of *scales*. Each scale is a tensor whose leading axis is the batch, followed by
the positions of that scale (``(h, w)`` for a grid, ``(n,)`` for a 1D sequence), followed, when a
position carries more than one code, by a component axis of length ``len(vocab_sizes)``.

The ``kind`` says what a component is:

========== ============================================ ===================== ===================
kind       one position holds                           ``vocab_sizes``       example
========== ============================================ ===================== ===================
index      one codebook index                           ``(V,)``              VQGAN, LlamaGen
factorized one index per sub-codebook                   ``(V1, ..., VK)``     FQGAN
binary     ``d`` bits (0/1)                             ``(2,) * d``          BSQ, LFQ, Infinity
levels     one quantization level per latent channel    ``(L,) * C``          TokenBridge, FSQ
continuous a float vector (channels last)               ``()``                KL-VAE
========== ============================================ ===================== ===================

``multiscale`` marks a residual pyramid (VAR, Infinity): several scales decoded together. The
information an image costs is ``bits_per_image``: ``sum(log2 V_k)`` per position for discrete kinds, and
a declared storage width (``latent_bits``, 32 unless a tokenizer says otherwise) per continuous value.

`TokenLayout` describes the tokens of a tokenizer at one input size without encoding anything; `flat`
and `Tokens.from_flat` go between the scales and the ``(B, L[, K])`` sequence an AR model trains on, and
`pack`/`unpack` between several components per position and one joint id (mixed radix; the order of
significance is declared per family). 1D sequences may carry per-sample ``lengths`` (ordered tokenizers
such as FlexTok decode any prefix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import torch

KINDS = ("index", "factorized", "binary", "levels", "continuous")


BIT_ORDERS = ("msb", "lsb")


def pack(codes: torch.Tensor, vocab_sizes: Sequence[int], order: str = "msb") -> torch.Tensor:
    """Multi-component codes ``(..., K)`` -> joint ids ``(...)`` in int64 (mixed radix over ``vocab_sizes``).

    ``order="msb"``: component 0 is the most significant digit; ``"lsb"``: component 0 the least (as
    vector-quantize-pytorch's FSQ ``codes_to_indices`` and MAGVIT-v2's LFQ). Raises when the joint vocabulary
    does not fit in int64.
    """
    vocab = _check_packable(vocab_sizes, order)
    if codes.shape[-1] != len(vocab):
        raise ValueError(f"codes have {codes.shape[-1]} components, the vocabulary {len(vocab)}")
    weights = torch.tensor(_radix_weights(vocab, order), dtype=torch.int64, device=codes.device)
    return (codes.long() * weights).sum(-1)


def unpack(ids: torch.Tensor, vocab_sizes: Sequence[int], order: str = "msb") -> torch.Tensor:
    """Inverse of `pack`: joint ids ``(...)`` -> codes ``(..., K)``."""
    vocab = _check_packable(vocab_sizes, order)
    ids = ids.long()
    if bool((ids < 0).any()) or bool((ids >= math.prod(vocab)).any()):
        raise ValueError(f"joint ids outside [0, {math.prod(vocab)})")
    weights = torch.tensor(_radix_weights(vocab, order), dtype=torch.int64, device=ids.device)
    sizes = torch.tensor(vocab, dtype=torch.int64, device=ids.device)
    return torch.div(ids[..., None], weights, rounding_mode="floor") % sizes


def joint_vocab_size(vocab_sizes: Sequence[int]) -> int:
    return math.prod(vocab_sizes)


def _radix_weights(vocab: tuple[int, ...], order: str) -> list[int]:
    digits = vocab if order == "lsb" else vocab[::-1]
    weights, w = [], 1
    for v in digits:
        weights.append(w)
        w *= v
    return weights if order == "lsb" else weights[::-1]


def _check_packable(vocab_sizes: Sequence[int], order: str) -> tuple[int, ...]:
    vocab = tuple(int(v) for v in vocab_sizes)
    if order not in BIT_ORDERS:
        raise ValueError(f"order is one of {BIT_ORDERS}, got {order!r}")
    if not vocab:
        raise ValueError("continuous tokens have no ids to pack")
    if math.prod(vocab) > 2 ** 63 - 1:
        raise ValueError(f"a joint vocabulary of {math.prod(vocab):.3g} ids does not fit in int64; pack in groups")
    return vocab


def _row_major(t: torch.Tensor) -> torch.Tensor:
    strides, step = [], 1
    for size in reversed(t.shape):
        strides.append(step)
        step *= size
    return t if t.stride() == tuple(reversed(strides)) else t.clone(memory_format=torch.contiguous_format)


@dataclass(frozen=True)
class TokenLayout:
    """What a tokenizer's tokens look like at one input size: everything an AR model needs to know.

    ``scale_shapes`` holds the positions of each scale (``(h, w)`` grids, ``(n,)`` sequences; several for
    multi-scale tokenizers, coarse to fine). A position holds ``len(vocab_sizes)`` components (``channels``
    floats for continuous latents). ``order`` says how `pack` forms one joint id from several components,
    ``latent_bits`` the storage width a continuous value is counted with (a declared constant, not the
    dtype of a run).
    """

    kind: str
    vocab_sizes: tuple[int, ...]
    scale_shapes: tuple[tuple[int, ...], ...]
    spatial_dims: int = 2
    multiscale: bool = False
    channels: int = 0  # continuous latents only
    order: str = "msb"
    latent_bits: int = 32

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown token kind {self.kind!r}; expected one of {KINDS}")
        if any(len(s) != self.spatial_dims for s in self.scale_shapes):
            raise ValueError(f"scale shapes {self.scale_shapes} do not have {self.spatial_dims} dims")
        if len(self.scale_shapes) != 1 and not self.multiscale:
            raise ValueError("several scales given but multiscale=False")
        if self.order not in BIT_ORDERS:
            raise ValueError(f"order is one of {BIT_ORDERS}")

    @property
    def discrete(self) -> bool:
        return self.kind != "continuous"

    @property
    def components(self) -> int:
        return len(self.vocab_sizes) if self.discrete else self.channels

    @property
    def seq_len(self) -> int:
        """Positions per image over all scales: the length of `Tokens.flat`."""
        return sum(math.prod(s) for s in self.scale_shapes)

    @property
    def joint_vocab_size(self) -> int | None:
        """Ids one position can take when its components are packed into one id; None when continuous."""
        return joint_vocab_size(self.vocab_sizes) if self.discrete else None

    @property
    def bits_per_position(self) -> float:
        if self.discrete:
            return sum(math.log2(v) for v in self.vocab_sizes)
        return self.channels * self.latent_bits

    @property
    def bits_per_image(self) -> float:
        return self.seq_len * self.bits_per_position

    def pack(self, codes: torch.Tensor) -> torch.Tensor:
        """``(..., K)`` codes -> joint ids, in this layout's order (identity for one component)."""
        if self.components == 1 and self.discrete:
            return codes.long()
        return pack(codes, self.vocab_sizes, self.order)

    def unpack(self, ids: torch.Tensor) -> torch.Tensor:
        if self.components == 1 and self.discrete:
            return ids.long()
        return unpack(ids, self.vocab_sizes, self.order)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "vocab_sizes": list(self.vocab_sizes),
                "scale_shapes": [list(s) for s in self.scale_shapes], "spatial_dims": self.spatial_dims,
                "multiscale": self.multiscale, "channels": self.channels, "order": self.order,
                "latent_bits": self.latent_bits, "seq_len": self.seq_len,
                "joint_vocab_size": self.joint_vocab_size, "bits_per_image": self.bits_per_image}


@dataclass(frozen=True)
class Tokens:
    scales: tuple[torch.Tensor, ...]
    kind: str
    vocab_sizes: tuple[int, ...]
    spatial_dims: int = 2
    multiscale: bool = False
    #: (B,) per-sample lengths of 1D variable-length tokens; positions at or past a length are padding
    lengths: torch.Tensor | None = None
    order: str = "msb"  # how `joint_ids` packs several components into one id
    latent_bits: int = 32  # declared storage width of one continuous value

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown token kind {self.kind!r}; expected one of {KINDS}")
        if not self.scales:
            raise ValueError("Tokens needs at least one scale")
        # row-major strides whatever produced them, so that equal tokens decode to equal images (a decoder's
        # memory format, and with it its rounding, follows its input's strides)
        object.__setattr__(self, "scales", tuple(_row_major(s) for s in self.scales))
        if self.spatial_dims not in (1, 2):
            raise ValueError("spatial_dims must be 1 (sequence) or 2 (grid)")
        if len(self.scales) > 1 and not self.multiscale:
            raise ValueError("several scales given but multiscale=False")
        if self.order not in BIT_ORDERS:
            raise ValueError(f"order is one of {BIT_ORDERS}, got {self.order!r}")
        continuous = self.kind == "continuous"
        if continuous != (len(self.vocab_sizes) == 0):
            raise ValueError("continuous tokens have no vocabulary; discrete tokens need one")
        if self.kind == "index" and len(self.vocab_sizes) != 1:
            raise ValueError("kind 'index' has exactly one vocabulary")
        if self.kind == "binary" and any(v != 2 for v in self.vocab_sizes):
            raise ValueError("binary tokens have vocabulary 2 per component")
        batch = self.scales[0].shape[0]
        expected_ndim = 1 + self.spatial_dims + (1 if self.components > 1 or continuous else 0)
        for s in self.scales:
            if s.ndim != expected_ndim or s.shape[0] != batch:
                raise ValueError(
                    f"scale of shape {tuple(s.shape)} does not fit kind={self.kind!r} with "
                    f"{self.spatial_dims} spatial dims and {self.components} components per position"
                )
            if continuous != s.is_floating_point():
                raise ValueError("continuous tokens are float tensors; discrete tokens are integer tensors")
            if not continuous and self.components > 1 and s.shape[-1] != self.components:
                raise ValueError(f"last axis {s.shape[-1]} != number of components {self.components}")
        if self.lengths is not None:
            if self.spatial_dims != 1 or self.multiscale:
                raise ValueError("per-sample lengths are for single-scale 1D token sequences")
            n = self.scales[0].shape[1]
            if self.lengths.shape != (batch,) or bool((self.lengths < 1).any()) or bool((self.lengths > n).any()):
                raise ValueError(f"lengths must be a ({batch},) tensor with values in 1..{n}")

    # --- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_indices(cls, indices: torch.Tensor | Sequence[torch.Tensor], kind: str,
                     vocab_sizes: Sequence[int], spatial_dims: int = 2, **fields) -> "Tokens":
        """Wrap index tensors (one tensor, or a list of scales) produced by an AR model."""
        multiscale = not torch.is_tensor(indices)
        scales = (indices,) if not multiscale else tuple(indices)
        return cls(tuple(s.long() for s in scales), kind, tuple(vocab_sizes), spatial_dims, multiscale, **fields)

    @classmethod
    def from_latents(cls, latents: torch.Tensor, latent_bits: int = 32) -> "Tokens":
        """Continuous latents given channels-first ``(B, C, h, w)`` (a grid) or ``(B, C, n)`` (a 1D sequence);
        stored channels-last."""
        return cls((latents.movedim(1, -1).contiguous(),), "continuous", (), latents.ndim - 2, False,
                   latent_bits=latent_bits)

    @classmethod
    def from_flat(cls, seq: torch.Tensor, layout: TokenLayout, lengths: torch.Tensor | None = None) -> "Tokens":
        """Inverse of `flat`: ``(B, L)`` or ``(B, L, K)`` (channels for continuous) back into the scales of
        ``layout``. Raises ValueError when the sequence does not have the layout's length or components."""
        multi = layout.components > 1 or not layout.discrete
        if seq.ndim != 2 + multi or seq.shape[1] != layout.seq_len or (multi and seq.shape[2] != layout.components):
            want = f"(B, {layout.seq_len}" + (f", {layout.components})" if multi else ")")
            raise ValueError(f"a flat token sequence of this layout is {want}, got {tuple(seq.shape)}")
        tail = seq.shape[2:]
        sizes = [math.prod(s) for s in layout.scale_shapes]
        scales = tuple(part.reshape(seq.shape[0], *shape, *tail)
                       for part, shape in zip(seq.split(sizes, dim=1), layout.scale_shapes))
        if layout.discrete and seq.is_floating_point():
            raise TypeError(f"token ids are integers, got {seq.dtype}")
        return cls(tuple(s.long() for s in scales) if layout.discrete else scales, layout.kind, layout.vocab_sizes,
                   layout.spatial_dims, layout.multiscale, lengths, layout.order, layout.latent_bits)

    # --- views --------------------------------------------------------------------------------------
    @property
    def components(self) -> int:
        return len(self.vocab_sizes) if self.vocab_sizes else self.scales[0].shape[-1]

    @property
    def is_discrete(self) -> bool:
        return self.kind != "continuous"

    @property
    def indices(self) -> torch.Tensor | list[torch.Tensor]:
        """Index tensors as AR trainers use them: one LongTensor, or a list for multi-scale tokens."""
        if not self.is_discrete:
            raise TypeError("continuous tokens have no indices; use .latents")
        return list(self.scales) if self.multiscale else self.scales[0]

    @property
    def latents(self) -> torch.Tensor:
        """Continuous latents channels-first: ``(B, C, h, w)``, or ``(B, C, n)`` for a 1D sequence."""
        if self.is_discrete:
            raise TypeError(f"{self.kind} tokens are discrete; use .indices")
        return self.scales[0].movedim(-1, 1)

    @property
    def batch_size(self) -> int:
        return self.scales[0].shape[0]

    @property
    def scale_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(s.shape[1:1 + self.spatial_dims]) for s in self.scales)

    @property
    def layout(self) -> TokenLayout:
        """The layout these tokens have (at the size they were encoded at)."""
        return TokenLayout(self.kind, self.vocab_sizes, self.scale_shapes, self.spatial_dims, self.multiscale,
                           0 if self.is_discrete else self.components, self.order, self.latent_bits)

    @property
    def positions_per_image(self) -> float:
        """Token positions per image, summed over scales (what an AR model predicts per image); the mean over
        the batch when lengths vary."""
        if self.lengths is not None:
            return float(self.lengths.double().mean())
        return sum(math.prod(shape) for shape in self.scale_shapes)

    @property
    def bits_per_position(self) -> float:
        return self.layout.bits_per_position

    @property
    def bits_per_image(self) -> float:
        return self.positions_per_image * self.bits_per_position

    def bits_per_pixel(self, height: int, width: int) -> float:
        return self.bits_per_image / (height * width)

    def flat(self) -> torch.Tensor:
        """All scales concatenated in raster order: ``(B, L)`` or ``(B, L, K)`` for several components."""
        tail = self.scales[0].shape[1 + self.spatial_dims:]
        return torch.cat([s.reshape(s.shape[0], -1, *tail) for s in self.scales], dim=1)

    def valid(self) -> torch.Tensor:
        """(B, L) booleans: False at padding positions past a sample's length."""
        b, n = self.batch_size, sum(math.prod(shape) for shape in self.scale_shapes)
        if self.lengths is None:
            return torch.ones(b, n, dtype=torch.bool, device=self.scales[0].device)
        return torch.arange(n, device=self.lengths.device)[None, :] < self.lengths[:, None]

    def joint_ids(self) -> torch.Tensor:
        """``(B, L)`` int64: each position's components packed into one id (`pack`, in ``order``)."""
        if not self.is_discrete:
            raise TypeError("continuous tokens have no ids")
        flat = self.flat()
        return flat.long() if self.components == 1 else pack(flat, self.vocab_sizes, self.order)

    # --- manipulation -------------------------------------------------------------------------------
    def map(self, fn) -> "Tokens":
        """Apply ``fn`` to every scale tensor (device moves, truncation to a 1D prefix); lengths follow."""
        scales = tuple(fn(s) for s in self.scales)
        if self.lengths is None:
            return replace(self, scales=scales)
        if scales[0].shape[0] != self.batch_size:
            raise ValueError("map changed the batch of variable-length tokens; select images with tokens[i]")
        return replace(self, scales=scales, lengths=self.lengths.to(scales[0].device).clamp_max(scales[0].shape[1]))

    def with_lengths(self, lengths: torch.Tensor | Sequence[int] | None) -> "Tokens":
        """The same tokens with per-sample lengths (each image keeps only its first ``lengths[b]`` tokens)."""
        if lengths is not None and not torch.is_tensor(lengths):
            lengths = torch.tensor(list(lengths), dtype=torch.long)
        return replace(self, lengths=None if lengths is None else lengths.to(self.scales[0].device).long())

    def to(self, *args, **kwargs) -> "Tokens":
        return self.map(lambda s: s.to(*args, **kwargs))

    def __getitem__(self, batch_index) -> "Tokens":
        out = replace(self, scales=tuple(s[batch_index] for s in self.scales), lengths=None)
        return out if self.lengths is None else replace(out, lengths=self.lengths[batch_index])

    def validate(self) -> "Tokens":
        """Check every index lies inside its vocabulary; returns self so it can be chained."""
        if self.is_discrete:
            limits = torch.tensor(self.vocab_sizes, device=self.scales[0].device)
            for s in self.scales:
                if (s < 0).any() or (s >= limits).any():
                    lo, hi = int(s.min()), int(s.max())
                    raise ValueError(f"token indices outside the vocabulary {self.vocab_sizes}: values in [{lo}, {hi}]")
        elif not all(bool(torch.isfinite(s).all()) for s in self.scales):
            raise ValueError("continuous latents contain NaN or infinite values")
        return self

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
the storage width of the float dtype per value for continuous latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import torch

KINDS = ("index", "factorized", "binary", "levels", "continuous")


@dataclass(frozen=True)
class Tokens:
    scales: tuple[torch.Tensor, ...]
    kind: str
    vocab_sizes: tuple[int, ...]
    spatial_dims: int = 2
    multiscale: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown token kind {self.kind!r}; expected one of {KINDS}")
        if not self.scales:
            raise ValueError("Tokens needs at least one scale")
        if self.spatial_dims not in (1, 2):
            raise ValueError("spatial_dims must be 1 (sequence) or 2 (grid)")
        if len(self.scales) > 1 and not self.multiscale:
            raise ValueError("several scales given but multiscale=False")
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

    # --- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_indices(cls, indices: torch.Tensor | Sequence[torch.Tensor], kind: str,
                     vocab_sizes: Sequence[int], spatial_dims: int = 2) -> "Tokens":
        """Wrap index tensors (one tensor, or a list of scales) produced by an AR model."""
        multiscale = not torch.is_tensor(indices)
        scales = (indices,) if not multiscale else tuple(indices)
        return cls(tuple(s.long() for s in scales), kind, tuple(vocab_sizes), spatial_dims, multiscale)

    @classmethod
    def from_latents(cls, latents: torch.Tensor) -> "Tokens":
        """Continuous latents given channels-first ``(B, C, h, w)``; stored channels-last."""
        return cls((latents.movedim(1, -1).contiguous(),), "continuous", (), 2, False)

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
        """Continuous latents channels-first ``(B, C, h, w)``."""
        if self.is_discrete:
            raise TypeError(f"{self.kind} tokens are discrete; use .indices")
        return self.scales[0].movedim(-1, 1)

    @property
    def batch_size(self) -> int:
        return self.scales[0].shape[0]

    @property
    def positions_per_image(self) -> int:
        """Token positions per image, summed over scales (what an AR model predicts per image)."""
        return sum(math.prod(s.shape[1:1 + self.spatial_dims]) for s in self.scales)

    @property
    def bits_per_position(self) -> float:
        if self.is_discrete:
            return sum(math.log2(v) for v in self.vocab_sizes)
        return self.components * torch.finfo(self.scales[0].dtype).bits

    @property
    def bits_per_image(self) -> float:
        return self.positions_per_image * self.bits_per_position

    def bits_per_pixel(self, height: int, width: int) -> float:
        return self.bits_per_image / (height * width)

    def flat(self) -> torch.Tensor:
        """All scales concatenated in raster order: ``(B, L)`` or ``(B, L, K)`` for several components."""
        tail = self.scales[0].shape[1 + self.spatial_dims:]
        return torch.cat([s.reshape(s.shape[0], -1, *tail) for s in self.scales], dim=1)

    # --- manipulation -------------------------------------------------------------------------------
    def map(self, fn) -> "Tokens":
        """Apply ``fn`` to every scale tensor (device moves, batch slicing)."""
        return replace(self, scales=tuple(fn(s) for s in self.scales))

    def to(self, *args, **kwargs) -> "Tokens":
        return self.map(lambda s: s.to(*args, **kwargs))

    def __getitem__(self, batch_index) -> "Tokens":
        return self.map(lambda s: s[batch_index])

    def validate(self) -> "Tokens":
        """Check every index lies inside its vocabulary; returns self so it can be chained."""
        if self.is_discrete:
            limits = torch.tensor(self.vocab_sizes, device=self.scales[0].device)
            for s in self.scales:
                if (s < 0).any() or (s >= limits).any():
                    raise ValueError(f"token indices outside the vocabulary {self.vocab_sizes}")
        return self

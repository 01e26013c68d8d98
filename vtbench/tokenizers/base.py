"""The tokenizer interface: images in [-1, 1] in, `Tokens` out, and back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from torch import nn

from .tokens import Tokens

@dataclass(frozen=True)
class TokenizerInfo:
    """Static facts about a tokenizer, shown by `vtbench list` and carried into every result file."""

    family: str
    kind: str  # a `Tokens.kind`
    resolution: int  # native input resolution (square)
    downsample: int  # spatial reduction of the token grid (1D tokenizers: patch size of the encoder)
    vocab_sizes: tuple[int, ...]  # per component; () for continuous
    tokens_per_image: int  # positions at the native resolution, summed over scales
    spatial_dims: int = 2  # 2 for a token grid, 1 for a 1D sequence (TiTok, FlexTok)
    paper: str = ""
    code: str = ""
    license: str = ""
    input_range: str = "minus_one_one"  # the backend's own convention: "minus_one_one" or "zero_one"
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def discrete(self) -> bool:
        return self.kind != "continuous"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["vocab_sizes"] = list(self.vocab_sizes)
        d["discrete"] = self.discrete
        return d


class Tokenizer(nn.Module):
    """Base class of every backend.

    Subclasses set ``info`` and implement ``_encode`` / ``_decode`` in their native input convention
    (``info.input_range``); the public methods take and return images as float tensors ``(B, 3, H, W)``
    in [-1, 1] and do the conversion, so callers never need to know a backend's convention.
    """

    info: TokenizerInfo

    def _encode(self, x: torch.Tensor) -> Tokens:
        raise NotImplementedError

    def _decode(self, tokens: Tokens) -> torch.Tensor:
        raise NotImplementedError

    # --- public API ---------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> Tokens:
        _check_images(images)
        return self._encode(self._to_native(images))

    def decode(self, tokens: Tokens) -> torch.Tensor:
        return self._from_native(self._decode(tokens))

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def encode_perturbed(self, images: torch.Tensor, alpha: float, delta: int, generator: torch.Generator,
                         **kwargs) -> Tokens:
        """Tokens with a fraction ``alpha`` of them moved to one of their ``delta`` nearest codes (pFID's
        latent perturbation, defined in `vtbench.quantizers.perturb`); ``alpha = 0`` equals `encode`."""
        _check_images(images)
        return self._perturb(self._to_native(images), alpha, delta, generator, **kwargs)

    def _perturb(self, x: torch.Tensor, alpha: float, delta: int, generator: torch.Generator, **kwargs) -> Tokens:
        raise NotImplementedError(f"{type(self).__name__} does not implement latent perturbation (pFID)")

    def tokens_from_indices(self, indices: torch.Tensor | Sequence[torch.Tensor]) -> Tokens:
        """Rebuild `Tokens` from the index tensors an AR model produced (the way back to images)."""
        if not self.info.discrete:
            raise TypeError(f"{type(self).__name__} is continuous; build Tokens.from_latents instead")
        return Tokens.from_indices(indices, self.info.kind, self.info.vocab_sizes, self.info.spatial_dims)

    def decode_indices(self, indices: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return self.decode(self.tokens_from_indices(indices))

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    # --- conventions --------------------------------------------------------------------------------
    def _to_native(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.info.input_range == "minus_one_one" else (images + 1) / 2

    def _from_native(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.info.input_range == "minus_one_one" else images * 2 - 1


def _check_images(images: torch.Tensor) -> None:
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"expected images as a (B, 3, H, W) tensor, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"expected float images in [-1, 1], got dtype {images.dtype}; divide uint8 by 127.5 and subtract 1")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"expected images in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                         "map [0, 255] with x / 127.5 - 1 and [0, 1] with 2 x - 1")

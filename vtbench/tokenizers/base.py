"""The tokenizer interface: images in [-1, 1] in, `Tokens` out, and back.

Every backend subclasses `Tokenizer`, sets ``info`` and implements ``_encode`` / ``_decode`` in its native
input convention; the public methods check what comes in, convert the pixel range, and return images in
[-1, 1]. The contract an AR trainer relies on:

* ``tok.layout(resolution)``: the `TokenLayout` at that size (declared, not measured), or a ValueError
  naming the sizes the tokenizer can take;
* ``tok.encode(x).flat()`` is the training sequence and ``tok.decode_indices(seq)`` its way back to images,
  for every discrete tokenizer (``tok.unflat(seq)`` gives the `Tokens`);
* multi-scale tokenizers: ``teacher_forcing_inputs(tokens)`` and ``next_scale_input(k, f_hat, codes)``
  (VAR's ``idxBl_to_var_input`` and its generation-time step);
* continuous tokenizers: ``encode_posterior(x)`` (sample with a generator) and the scale/shift a generator
  sees (``to_generator_space`` / ``from_generator_space``);
* ``decode(tokens, generator=None, **sampling)``: stochastic decoders are seeded; deterministic ones refuse
  sampling options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch
from torch import nn

from .tokens import TokenLayout, Tokens


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
    multiscale: bool = False  # a residual pyramid of scales (VAR, Infinity)
    latent_channels: int = 0  # continuous latents: channels per position
    order: str = "msb"  # which component is the most significant digit of a joint id ("msb": component 0)
    latent_bits: int = 32  # continuous: the storage width bits per pixel count per value
    scaling_factor: float = 1.0  # continuous: a generator sees (latent - shift_factor) * scaling_factor
    shift_factor: float = 0.0
    fixed_resolution: bool = False  # encodes ``resolution`` x ``resolution`` images only
    ordered: bool = False  # 1D: any prefix of the sequence decodes (FlexTok)
    caveat: str = ""  # what the shipped weights cannot show; leaderboards mark the row and print it
    paper: str = ""
    code: str = ""
    license: str = ""
    input_range: str = "minus_one_one"  # the backend's own convention: "minus_one_one" or "zero_one"
    notes: str = ""

    @property
    def discrete(self) -> bool:
        return self.kind != "continuous"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["vocab_sizes"] = list(self.vocab_sizes)
        d["discrete"] = self.discrete
        return d


class Tokenizer(nn.Module):
    """Base class of every backend (see the module docstring for the contract)."""

    info: TokenizerInfo
    #: keyword options `decode` accepts (stochastic decoders: steps, guidance, ...); empty: deterministic
    sampling_options: tuple[str, ...] = ()
    # set by `load_tokenizer`
    label: str = ""
    registry_name: str = ""
    loaded_weights = None  # a `LoadedWeights`

    def _encode(self, x: torch.Tensor) -> Tokens:
        raise NotImplementedError

    def _decode(self, tokens: Tokens, **sampling) -> torch.Tensor:
        raise NotImplementedError

    # --- layout -------------------------------------------------------------------------------------
    def scale_shapes(self, height: int, width: int) -> tuple[tuple[int, ...], ...]:
        """Positions of each scale for an input of that size (sizes already checked)."""
        if self.info.spatial_dims == 1:
            return ((self.info.tokens_per_image,),)
        f = self.info.downsample
        return ((height // f, width // f),)

    def check_size(self, height: int, width: int) -> None:
        """Raise ValueError, naming the sizes it can take, when the tokenizer cannot encode this size."""
        r, f = self.info.resolution, self.info.downsample
        if self.info.fixed_resolution and (height, width) != (r, r):
            raise ValueError(f"{self._name()} encodes {r}x{r} images only, got {height}x{width}")
        if height < f or width < f or height % f or width % f:
            raise ValueError(f"{self._name()} takes heights and widths that are multiples of {f} "
                             f"(e.g. {r}x{r}), got {height}x{width}")

    def layout(self, resolution: int | tuple[int, int] | None = None) -> TokenLayout:
        """The tokens of one image at ``resolution`` (an int for square, or (height, width))."""
        h, w = _size(resolution if resolution is not None else self.info.resolution)
        self.check_size(h, w)
        return self._layout_at(h, w)

    def _layout_at(self, height: int, width: int) -> TokenLayout:
        i = self.info
        return TokenLayout(i.kind, i.vocab_sizes, self.scale_shapes(height, width), i.spatial_dims, i.multiscale,
                           i.latent_channels, i.order, i.latent_bits)

    # --- encode / decode ----------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> Tokens:
        images = self._checked(images)
        tokens = self._encode(self._to_native(images))
        return replace(tokens, order=self.info.order, latent_bits=self.info.latent_bits)

    def decode(self, tokens: Tokens, generator: torch.Generator | None = None, **sampling) -> torch.Tensor:
        """Images in [-1, 1] from ``tokens``. ``generator`` and ``sampling`` options are for stochastic
        decoders (``sampling_options``); a deterministic decoder refuses options it does not have."""
        self._check_sampling(sampling)
        self._check_tokens(tokens)
        if self.sampling_options:
            return self._from_native(self._decode(tokens, generator=generator, **sampling))
        return self._from_native(self._decode(tokens))

    def _check_sampling(self, options: dict) -> None:
        unknown = sorted(set(options) - set(self.sampling_options))
        if unknown:
            have = ", ".join(self.sampling_options) or "none: it decodes deterministically"
            raise TypeError(f"{self._name()} has no decoding option {', '.join(unknown)} (options: {have})")

    @property
    def sampling(self) -> dict:
        """The decoding options `decode` uses when a call names none (what a result records)."""
        return {k: getattr(self, k) for k in self.sampling_options}

    def set_sampling(self, **options) -> None:
        """Change decoding defaults (``tok.set_sampling(steps=8)``); each value keeps its option's type."""
        self._check_sampling(options)
        for k, v in options.items():
            old = getattr(self, k)
            ok = isinstance(v, type(old)) or (type(old) is float and type(v) is int)
            if not ok or isinstance(v, bool) != isinstance(old, bool):
                raise TypeError(f"{self._name()} decoding option {k} takes a {type(old).__name__}, got {v!r}")
            setattr(self, k, type(old)(v))

    def reconstruct(self, images: torch.Tensor, **decode_options) -> torch.Tensor:
        return self.decode(self.encode(images), **decode_options)

    def encode_neighbours(self, images: torch.Tensor, k: int) -> tuple[Tokens, list[torch.Tensor]]:
        """The tokens of ``images`` and, per scale, every token's ``k`` nearest codes in the quantizer's own
        distance (layouts in `vtbench.quantizers.neighbours`): what pFID's perturbation draws from."""
        if not self.info.discrete:
            raise TypeError(f"{self._name()} is continuous; its latents have no neighbouring codes")
        if k < 1:
            raise ValueError(f"k counts candidate codes and is at least 1, got {k}")
        tokens, candidates = self._neighbours(self._to_native(self._checked(images)), k)
        return replace(tokens, order=self.info.order), candidates

    def _neighbours(self, x: torch.Tensor, k: int) -> tuple[Tokens, list[torch.Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} does not give neighbouring codes (pFID)")

    # --- the AR model's side ------------------------------------------------------------------------
    def unflat(self, seq: torch.Tensor, resolution: int | tuple[int, int] | None = None,
               lengths: torch.Tensor | Sequence[int] | None = None) -> Tokens:
        """`Tokens` from a flat ``(B, L[, K])`` sequence. Without ``resolution`` the size is the square one
        whose layout has length L."""
        layout = self.layout(resolution) if resolution is not None else self._layout_for_length(seq.shape[1])
        if lengths is not None and not torch.is_tensor(lengths):
            lengths = torch.tensor(list(lengths), dtype=torch.long, device=seq.device)
        return Tokens.from_flat(seq, layout, lengths)

    def tokens_from_indices(self, indices: torch.Tensor | Sequence[torch.Tensor],
                            resolution: int | tuple[int, int] | None = None) -> Tokens:
        """`Tokens` from what an AR model produced: the flat sequence ``(B, L[, K])``, the native tensor
        (``(B, h, w[, K])`` grids), or a list of per-scale tensors (multi-scale)."""
        if not self.info.discrete:
            raise TypeError(f"{self._name()} is continuous; build Tokens.from_latents instead")
        i = self.info
        if torch.is_tensor(indices):
            _check_integer(indices)
            flat_ndim = 2 + (len(i.vocab_sizes) > 1)
            if i.multiscale or (i.spatial_dims == 2 and indices.ndim == flat_ndim) or i.spatial_dims == 1:
                return self.unflat(indices, resolution)
            return Tokens.from_indices(indices, i.kind, i.vocab_sizes, i.spatial_dims, order=i.order)
        scales = list(indices)
        for s in scales:
            _check_integer(s)
        if not i.multiscale:
            raise ValueError(f"{self._name()} has one scale; pass one tensor, not a list of {len(scales)}")
        return Tokens.from_indices(scales, i.kind, i.vocab_sizes, i.spatial_dims, order=i.order)

    def decode_indices(self, indices: torch.Tensor | Sequence[torch.Tensor],
                       resolution: int | tuple[int, int] | None = None, **decode_options) -> torch.Tensor:
        return self.decode(self.tokens_from_indices(indices, resolution), **decode_options)

    def teacher_forcing_inputs(self, tokens: Tokens) -> torch.Tensor:
        """Multi-scale: the input of every scale after the first, given the ground-truth codes of the scales
        before it, concatenated as ``(B, L - L_0, C)`` (VAR's ``idxBl_to_var_input``)."""
        raise TypeError(f"{self._name()} is not a multi-scale tokenizer")

    def next_scale_input(self, k: int, f_hat: torch.Tensor | None, codes: torch.Tensor,
                         scale_shapes: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-scale generation step: add scale ``k``'s ``codes`` to the running feature ``f_hat`` (None at
        k = 0) and return ``(f_hat, input of scale k + 1)`` (the final f_hat twice after the last scale)."""
        raise TypeError(f"{self._name()} is not a multi-scale tokenizer")

    # --- continuous latents -------------------------------------------------------------------------
    def encode_posterior(self, images: torch.Tensor):
        """Continuous tokenizers: the posterior `GaussianPosterior` (``.mean``, ``.sample(generator)``)."""
        if self.info.discrete:
            raise TypeError(f"{self._name()} is discrete; it has no posterior")
        return self._posterior(self._to_native(self._checked(images)))

    def _posterior(self, x: torch.Tensor):
        raise NotImplementedError(f"{type(self).__name__} does not expose its posterior")

    def to_generator_space(self, latents: torch.Tensor) -> torch.Tensor:
        """What a latent generator models: ``(latent - shift_factor) * scaling_factor``."""
        return (latents - self.info.shift_factor) * self.info.scaling_factor

    def from_generator_space(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.info.scaling_factor + self.info.shift_factor

    # --- properties ---------------------------------------------------------------------------------
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

    # --- checks and conventions ---------------------------------------------------------------------
    def _name(self) -> str:
        return self.label or type(self).__name__

    def _checked(self, images: torch.Tensor) -> torch.Tensor:
        """Images as float32 (float16/bfloat16/float64 are cast, documented), checked for shape, range, size."""
        _check_images(images)
        if images.dtype != torch.float32:
            images = images.float()
        self.check_size(images.shape[-2], images.shape[-1])
        return images

    def _check_tokens(self, tokens: Tokens) -> None:
        i = self.info
        if not isinstance(tokens, Tokens):
            raise TypeError(f"decode takes vtbench.Tokens, got {type(tokens).__name__}; use decode_indices for ids")
        if tokens.kind != i.kind or tuple(tokens.vocab_sizes) != tuple(i.vocab_sizes):
            raise ValueError(f"{self._name()} decodes {i.kind} tokens of vocabulary {i.vocab_sizes}, got "
                             f"{tokens.kind} tokens of vocabulary {tokens.vocab_sizes}")
        if tokens.spatial_dims != i.spatial_dims or tokens.multiscale != i.multiscale:
            raise ValueError(f"{self._name()} decodes {i.spatial_dims}D {'multi-scale ' if i.multiscale else ''}"
                             f"tokens, got {tokens.spatial_dims}D {'multi-scale ' if tokens.multiscale else ''}ones")
        if tokens.batch_size == 0:
            raise ValueError("cannot decode an empty batch")
        if not i.discrete and tokens.components != i.latent_channels:
            raise ValueError(f"{self._name()} decodes latents of {i.latent_channels} channels, got {tokens.components}")
        tokens.validate()
        shapes = tokens.scale_shapes
        if i.spatial_dims == 1:
            n = shapes[0][0]
            if n != i.tokens_per_image and not (i.ordered and 1 <= n <= i.tokens_per_image):
                what = f"1..{i.tokens_per_image}" if i.ordered else str(i.tokens_per_image)
                raise ValueError(f"{self._name()} decodes sequences of {what} tokens, got {n}")
            if tokens.lengths is not None and not i.ordered:
                raise ValueError(f"{self._name()} is not ordered: per-sample lengths are for prefix-decodable tokens")
            return
        h, w = shapes[-1]
        expected = self.scale_shapes(h * i.downsample, w * i.downsample)
        if shapes != expected:
            raise ValueError(f"{self._name()} expects scales {list(expected)} for a {h}x{w} final grid, "
                             f"got {list(shapes)}")

    def _to_native(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.info.input_range == "minus_one_one" else (images + 1) / 2

    def _from_native(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.info.input_range == "minus_one_one" else images * 2 - 1

    def _layout_for_length(self, length: int) -> TokenLayout:
        """The square layout whose sequence has ``length`` positions."""
        i = self.info
        if i.spatial_dims == 1:
            return self.layout()
        side = 1
        while side * side <= length:  # the final grid alone has side^2 positions
            size = side * i.downsample
            try:
                self.check_size(size, size)
            except ValueError:
                side += 1
                continue
            lay = self._layout_at(size, size)
            if lay.seq_len == length:
                return lay
            side += 1
        native = self.layout().seq_len
        raise ValueError(f"no square input size gives {length} tokens for {self._name()} (at its native "
                         f"{i.resolution} px it has {native}); pass resolution=")


def _size(resolution: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(resolution, int):
        return resolution, resolution
    h, w = resolution
    return int(h), int(w)


def _check_integer(t: torch.Tensor) -> None:
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"token ids are integer tensors, got {t.dtype}")


def _check_images(images: torch.Tensor) -> None:
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"expected images as a (B, 3, H, W) tensor, got {shape}")
    if images.shape[0] == 0:
        raise ValueError("expected at least one image, got an empty batch")
    if not images.is_floating_point():
        raise TypeError(f"expected float images in [-1, 1], got dtype {images.dtype}; "
                        "divide uint8 by 127.5 and subtract 1")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"expected images in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                         "map [0, 255] with x / 127.5 - 1 and [0, 1] with 2 x - 1")

"""pFID's sampling policy: which tokens move, and to which of their nearest codes.

Each token (see `vtbench.quantizers.neighbours`) is replaced with probability ``alpha`` by a uniform draw
among its ``delta`` nearest codes, the code itself included (so ``delta = 1`` changes nothing).
Multi-scale tokenizers can be perturbed at some scales only (``scales``); the candidates of every scale
come from the clean residual path, so perturbing one scale does not move another's candidates.

Continuous latents have no codes: a fraction ``alpha`` of positions get Gaussian noise whose std per
channel is ``strength`` times that channel's std over the image's positions, which moves a position by ``strength``
times the latent's spread (RMS). The default, 0.35, matches what a jump to one of the 100 nearest codes
does to the mini-zoo's discrete tokenizers (0.29 FSQ, 0.36 VQ, 0.41 TokenBridge, measured on the builtin
photographs), so continuous and discrete tokenizers are perturbed alike.

All draws use the given ``torch.Generator``, or a list of one generator per image (each image's draws
then depend on its own generator only, not on the batch it is in), so a seed fixes the result exactly.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Callable, Sequence

import torch

from ..tokenizers.tokens import Tokens

CONTINUOUS_STRENGTH = 0.35
#: kinds whose candidates carry a trailing code axis (a position's bits or levels move together)
_VECTOR_KINDS = ("binary", "levels")


Generators = torch.Generator | Sequence[torch.Generator]


def _draw(sample: Callable[[tuple, torch.Generator], torch.Tensor], shape: tuple, generator: Generators
          ) -> torch.Tensor:
    """``sample(shape, generator)``; with per-image generators, image by image along the leading axis."""
    if isinstance(generator, torch.Generator):
        return sample(tuple(shape), generator)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.stack([sample(tuple(shape[1:]), g) for g in generator])


def _rand(shape, generator, device):
    return torch.rand(shape, generator=generator, device=device)


def _randn(shape, generator, device):
    return torch.randn(shape, generator=generator, device=device)


def _randint(high, shape, generator, device):
    return torch.randint(high, shape, generator=generator, device=device)


def perturb(tokens: Tokens, candidates: list[torch.Tensor], alpha: float, generator: Generators,
            scales: set[int] | None = None) -> Tokens:
    """``tokens`` with a fraction ``alpha`` of them replaced by a uniform draw from their candidates
    (`Tokenizer.encode_neighbours`); only the scales in ``scales`` when given."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha is a fraction in [0, 1], got {alpha}")
    if alpha == 0:
        return tokens
    vector = tokens.kind in _VECTOR_KINDS
    out = []
    for i, (clean, cand) in enumerate(zip(tokens.scales, candidates)):
        if scales is not None and i not in scales:
            out.append(clean)
            continue
        k_axis = cand.ndim - (2 if vector else 1)
        shape = cand.shape[:k_axis]
        swap = _draw(functools.partial(_rand, device=cand.device), shape, generator) < alpha
        col = _draw(functools.partial(_randint, cand.shape[k_axis], device=cand.device), shape, generator)
        if vector:
            picked = cand.gather(k_axis, col[..., None, None].expand(*shape, 1, cand.shape[-1])).squeeze(k_axis)
            out.append(torch.where(swap[..., None], picked, clean))
        else:
            out.append(torch.where(swap, cand.gather(k_axis, col[..., None]).squeeze(k_axis), clean))
    return replace(tokens, scales=tuple(out))


def perturb_continuous(tokens: Tokens, alpha: float, generator: Generators,
                       strength: float = CONTINUOUS_STRENGTH) -> Tokens:
    """Continuous latents: Gaussian noise on a fraction ``alpha`` of positions (see the module docstring)."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha is a fraction in [0, 1], got {alpha}")
    if alpha == 0:
        return tokens
    latents = tokens.latents
    std = latents.flatten(2).std(dim=2).view(*latents.shape[:2], *[1] * (latents.ndim - 2))
    dev = latents.device
    mask = _draw(functools.partial(_rand, device=dev), (latents.shape[0], 1, *latents.shape[2:]), generator) < alpha
    noise = _draw(functools.partial(_randn, device=dev), latents.shape, generator)
    return Tokens.from_latents(latents + mask * noise * std * strength, tokens.latent_bits)

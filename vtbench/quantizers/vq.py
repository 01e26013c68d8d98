"""Nearest-code vector quantization: a learned codebook (VQ-VAE / VQGAN / LlamaGen) and a frozen one
behind a trainable projector (VQGAN-LC)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantized, Quantizer, channels_first, channels_last, straight_through
from .neighbours import nearest_candidates

#: most bytes of (rows x codes) float32 distance matrices a lookup holds at once, intermediates included (the l2
#: sum keeps three alive); larger batches are cut into row chunks
LOOKUP_BUDGET_BYTES = 256 * 2**20
_LIVE_MATRICES = 3

Distances = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sq_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Squared l2 distances (N, K) from each row of ``z`` (N, D) to each codebook row, summed in the order
    of the taming/LlamaGen lookup (``|z|^2 + |e|^2 - 2 z.e``), so near-ties resolve as theirs do."""
    return (z.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1)) - 2 * (z @ codebook.t())


def _row_chunks(z: torch.Tensor, codes: int, max_bytes: int | None) -> tuple[torch.Tensor, ...]:
    rows = max(1, (max_bytes or LOOKUP_BUDGET_BYTES) // (4 * codes * _LIVE_MATRICES))
    return z.split(rows) if len(z) > rows else (z,)


def nearest(z: torch.Tensor, codebook: torch.Tensor, distances: Distances = sq_distances,
            max_bytes: int | None = None) -> torch.Tensor:
    """Index of the codebook row nearest to each row of ``z`` (N, D), by ``distances`` (squared l2), never
    holding more than ``max_bytes`` (default `LOOKUP_BUDGET_BYTES`) of distances at once."""
    return torch.cat([distances(c, codebook).argmin(dim=1) for c in _row_chunks(z, len(codebook), max_bytes)])


def lookup_neighbours(z: torch.Tensor, codebook: torch.Tensor, k: int, distances: Distances = sq_distances,
                      max_bytes: int | None = None) -> torch.Tensor:
    """The ``k`` nearest codes ``(*positions, k)`` of channels-last features ``z`` (in the lookup's space)."""
    flat = z.reshape(-1, z.shape[-1])
    cand = torch.cat([nearest_candidates(distances(c, codebook), k)
                      for c in _row_chunks(flat, len(codebook), max_bytes)])
    return cand.view(*z.shape[:-1], cand.shape[-1])


class VectorQuantizer(Quantizer):
    """``codebook_size`` codes of dimension ``dim``; l2 lookup, or cosine (both sides l2-normalised).

    Loss: ``||sg(z) - e||^2 + beta ||z - sg(e)||^2`` (codebook + commitment), straight-through gradients.
    ``hits`` counts how often each code was chosen in training; `restart_dead_codes` re-seeds codes that
    were not chosen since the last call from recent encoder outputs (a common fix for codebook collapse).
    """

    kind = "index"

    def __init__(self, dim: int, codebook_size: int, distance: str = "l2", beta: float = 0.25):
        super().__init__()
        if distance not in ("l2", "cosine"):
            raise ValueError("distance is 'l2' or 'cosine'")
        self.dim, self.distance, self.beta = dim, distance, beta
        self.vocab_sizes = (codebook_size,)
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.register_buffer("hits", torch.zeros(codebook_size), persistent=False)

    def codebook(self) -> torch.Tensor:
        w = self.embedding.weight
        return F.normalize(w, dim=-1) if self.distance == "cosine" else w

    def _prepare(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z, dim=-1) if self.distance == "cosine" else z

    def forward(self, z):
        zl = self._prepare(channels_last(z))
        flat = zl.reshape(-1, self.dim)
        codebook = self.codebook()
        idx = nearest(flat, codebook)
        e = codebook[idx].view_as(zl)
        loss = F.mse_loss(e, zl.detach()) + self.beta * F.mse_loss(zl, e.detach())
        if self.training:
            self.hits += torch.bincount(idx, minlength=self.hits.numel()).to(self.hits)
            self._recent = flat.detach()
        return Quantized(channels_first(straight_through(zl, e)), idx.view(zl.shape[:-1]), loss)

    def dequantize(self, codes):
        return channels_first(F.embedding(codes, self.codebook()))

    def neighbours(self, z, k: int):
        return lookup_neighbours(self._prepare(channels_last(z)), self.codebook(), k)

    @torch.no_grad()
    def restart_dead_codes(self) -> int:
        """Move every code unused since the last call onto a random recent encoder output; returns how many."""
        dead = (self.hits == 0).nonzero().flatten()
        recent = getattr(self, "_recent", None)
        if len(dead) and recent is not None:
            pick = torch.randint(len(recent), (len(dead),), device=recent.device)
            self.embedding.weight[dead] = recent[pick] + 1e-3 * torch.randn_like(recent[pick])
        self.hits.zero_()
        return len(dead)


class FrozenCodebookVQ(Quantizer):
    """VQGAN-LC: a large frozen codebook of pretrained-network features, mapped into the quantizer's space
    by one trainable linear projector; l2 lookup against the projected codebook. Loss as the official
    code: ``||z - sg(e)||^2 + 0.33 ||sg(z) - e||^2``.

    Only the projector learns (through the codebook term of the loss), so every code moves together and
    utilisation stays high however large the codebook is.
    """

    kind = "index"

    def __init__(self, features: torch.Tensor, dim: int, codebook_weight: float = 0.33):
        super().__init__()
        self.register_buffer("codebook_features", features.float())  # (N, F), frozen
        self.projector = nn.Linear(features.shape[1], dim)
        nn.init.normal_(self.projector.weight, std=dim ** -0.5)
        self.dim, self.codebook_weight = dim, codebook_weight
        self.vocab_sizes = (features.shape[0],)

    def codebook(self) -> torch.Tensor:
        return self.projector(self.codebook_features)

    def forward(self, z):
        zl = channels_last(z)
        codebook = self.codebook()
        idx = nearest(zl.reshape(-1, self.dim), codebook)
        e = codebook[idx].view_as(zl)
        loss = F.mse_loss(zl, e.detach()) + self.codebook_weight * F.mse_loss(e, zl.detach())
        return Quantized(channels_first(straight_through(zl, e)), idx.view(zl.shape[:-1]), loss)

    def dequantize(self, codes):
        return channels_first(F.embedding(codes, self.codebook()))

    def neighbours(self, z, k: int):
        return lookup_neighbours(channels_last(z), self.codebook(), k)

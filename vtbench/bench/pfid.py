"""pFID: reconstruction FID after perturbing a fraction of the tokens (latent-perturbation robustness).

"Robust Latent Matters" (RobustTok) proposed pFID because rFID hardly predicts generation quality: an
AR generator feeds the decoder slightly wrong tokens, and what matters is how gracefully the decoder
takes them. Its authors did not release code; this is vtbench's definition:

1. Encode each image; with probability ``alpha`` replace each token by a uniform draw among its ``delta``
   nearest codes (nearest to the encoder's pre-quantization feature, in the quantizer's distance; the
   candidates of binary and level layouts are defined in `vtbench.quantizers.neighbours`, the draws and
   the Gaussian noise of continuous latents in `vtbench.bench.perturbation`).
2. Decode, round to 8 bits, and compute FID against the original images with exactly the rFID pipeline
   (same Inception, same cached features of the originals).

So pFID at ``alpha = 0`` is rFID. The draws come from one ``torch.Generator`` seeded with ``--seed`` and
consumed in dataset order, so a seed reproduces the value exactly. Every ``alpha`` of the sweep is
reported as a curve; the headline ``pfid`` is the value at ``alpha = 0.1`` (or the largest alpha swept
when 0.1 is not). Multi-scale tokenizers also get a per-scale sensitivity report: pFID with only scale k
perturbed, at the headline alpha.
"""

from __future__ import annotations

import torch

from ..tokenizers.tokens import Tokens
from .metrics import EvalBatch, Metric, to_uint8
from .perceptual import FID, FeatureCache
from .perturbation import perturb, perturb_continuous

HEADLINE_ALPHA = 0.1


class PFID(Metric):
    name = "pfid"
    version = 2  # v2: draws from `vtbench.bench.perturbation` (candidates per token, then the draw)
    description = "reconstruction FID after perturbing a fraction alpha of tokens to near neighbours"
    outputs = {"pfid": (False, "")}

    def __init__(self, alphas=(0.0, 0.05, 0.1, 0.2, 0.3), delta: int = 100, seed: int = 0,
                 cache: FeatureCache | None = None):
        super().__init__()
        self.alphas = tuple(sorted(set(float(a) for a in alphas)))
        self.headline = HEADLINE_ALPHA if HEADLINE_ALPHA in self.alphas else max(self.alphas)
        self.delta, self.seed, self.cache = delta, seed, cache or FeatureCache()
        self.implementation = (f"vtbench pFID: tokens replaced with probability alpha by a uniform draw among "
                               f"their delta={delta} nearest codes, then rFID; seed {seed}")
        self.fids = {a: FID(self.cache, seed) for a in self.alphas}
        self.per_scale: dict[int, FID] = {}
        self._gen: torch.Generator | None = None

    def _update(self, batch: EvalBatch):
        tok = batch.tokenizer
        if self._gen is None:
            self._gen = torch.Generator(device=batch.device).manual_seed(self.seed)
        x = batch.originals.float() / 127.5 - 1
        perturbed = self._sampler(tok, x, batch.tokens)
        for a, fid in self.fids.items():
            recon = batch.reconstructions if a == 0 else to_uint8(tok.decode(perturbed(a)))
            fid.update(EvalBatch(batch.ids, batch.originals, recon, batch.tokens, batch.meta, 0.0, 0.0))
            if fid.unavailable:  # the Inception weights are missing: so is pFID
                self.unavailable = fid.unavailable
                return None
        if batch.tokens.multiscale:
            for k in range(len(batch.tokens.scales)):
                fid = self.per_scale.setdefault(k, FID(self.cache, self.seed))
                fid.update(EvalBatch(batch.ids, batch.originals, to_uint8(tok.decode(perturbed(self.headline, {k}))),
                                     batch.tokens, batch.meta, 0.0, 0.0))
        return None

    def _sampler(self, tok, x: torch.Tensor, clean: Tokens):
        """``(alpha, scales=None) -> Tokens``: the batch's tokens perturbed with this metric's generator."""
        if not clean.is_discrete:
            return lambda alpha, scales=None: perturb_continuous(clean, alpha, self._gen)
        tokens, candidates = tok.encode_neighbours(x, self.delta)
        return lambda alpha, scales=None: perturb(tokens, candidates, alpha, self._gen, scales)

    def _compute(self):
        curve = []
        for a, fid in self.fids.items():
            v = fid.compute()["rfid"]
            curve.append({"alpha": a, "pfid": v.value, "count": v.count})
        head = next(c for c in curve if c["alpha"] == self.headline)
        extra = {"alpha": self.headline, "delta": self.delta, "seed": self.seed, "curve": curve}
        if self.per_scale:
            extra["per_scale"] = [{"scale": k, "pfid": f.compute()["rfid"].value}
                                  for k, f in sorted(self.per_scale.items())]
        note = f"alpha={self.headline:g}, delta={self.delta}; FID on {head['count']} images (see rfid's caveat)"
        return {"pfid": self._value("pfid", head["pfid"], head["count"], note, extra)}


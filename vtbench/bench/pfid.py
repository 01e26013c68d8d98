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

So pFID at ``alpha = 0`` is rFID. Each image draws from its own ``torch.Generator``, seeded from ``--seed`` and
the image's position in the sample list, so a seed reproduces the value exactly however the images are
batched or split over processes. Every ``alpha`` of the sweep is reported as a curve; the headline ``pfid``
is the value at ``alpha = 0.1`` (or the largest alpha swept when 0.1 is not). Multi-scale tokenizers also
get a per-scale sensitivity report: pFID with only scale k perturbed, at the headline alpha. The originals'
features are accumulated once and their covariance square root computed once for the whole sweep. The headline
carries rFID's 95% interval (`perceptual.fid_interval`, a bootstrap over images) and minimum count.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..tokenizers.tokens import Tokens
from .metrics import EvalBatch, Metric, to_uint8
from .networks import inception_network
from .perceptual import (
    FID_STABLE_N,
    FeatureCache,
    FeatureStats,
    Reference,
    fid,
    fid_interval,
    real_features,
    with_interval,
)
from .perturbation import perturb, perturb_continuous

HEADLINE_ALPHA = 0.1


def image_generators(seed: int, index: torch.Tensor, device: torch.device) -> list[torch.Generator]:
    """One generator per image, seeded from (``seed``, the image's sample position)."""
    return [torch.Generator(device=device).manual_seed(
        int(np.random.SeedSequence([seed, int(i)]).generate_state(1, np.uint64)[0])) for i in index.tolist()]


class PFID(Metric):
    name = "pfid"
    version = 4  # v4: the headline's 95% interval and min_count (v3: per-image generators)
    description = "reconstruction FID after perturbing a fraction alpha of tokens to near neighbours"
    outputs = {"pfid": (False, "")}

    def __init__(self, alphas=(0.0, 0.05, 0.1, 0.2, 0.3), delta: int = 100, seed: int = 0,
                 cache: FeatureCache | None = None, num_scales: int = 1):
        super().__init__()
        self.alphas = tuple(sorted(set(float(a) for a in alphas)))
        self.headline = HEADLINE_ALPHA if HEADLINE_ALPHA in self.alphas else max(self.alphas)
        self.delta, self.seed, self.cache = delta, seed, cache or FeatureCache()
        self.implementation = (f"vtbench pFID: tokens replaced with probability alpha by a uniform draw among "
                               f"their delta={delta} nearest codes, then rFID; seed {seed}, per-image draws; 95% "
                               "interval at the headline alpha: rFID's basic bootstrap over images")
        self.real = FeatureStats()
        self.fakes = nn.ModuleList(FeatureStats() for _ in self.alphas)
        #: multi-scale tokenizers: one set per scale, only that scale perturbed at the headline alpha
        self.per_scale = nn.ModuleList(FeatureStats() for _ in range(num_scales if num_scales > 1 else 0))

    def _update(self, batch: EvalBatch):
        tok = batch.tokenizer
        net = inception_network(str(batch.device))
        gens = image_generators(self.seed, batch.index, batch.device)
        x = batch.originals.float() / 127.5 - 1
        try:
            perturbed = self._sampler(tok, x, batch.tokens, gens)
        except NotImplementedError as e:  # no neighbouring codes (codec baselines): pFID does not apply
            self.unavailable = str(e)
            return None
        self.real.update(real_features(batch, self.cache), batch.index)
        for a, fake in zip(self.alphas, self.fakes):
            recon = batch.reconstructions if a == 0 else to_uint8(tok.decode(perturbed(a)))
            fake.update(net(recon), batch.index)
        for k, fake in enumerate(self.per_scale):
            fake.update(net(to_uint8(tok.decode(perturbed(self.headline, {k})))), batch.index)
        return None

    def _sampler(self, tok, x: torch.Tensor, clean: Tokens, gens: list[torch.Generator]):
        """``(alpha, scales=None) -> Tokens``: the batch's tokens perturbed with the per-image generators."""
        if not clean.is_discrete:
            return lambda alpha, scales=None: perturb_continuous(clean, alpha, gens)
        tokens, candidates = tok.encode_neighbours(x, self.delta)
        return lambda alpha, scales=None: perturb(tokens, candidates, alpha, gens, scales)

    def _compute(self):
        real = self.real.compute()
        reference = Reference(real.mu, real.sigma)
        fakes = [f.compute() for f in self.fakes]
        curve = [{"alpha": a, "pfid": fid(real, fake, reference)[0], "count": real.n}
                 for a, fake in zip(self.alphas, fakes)]
        head = curve[self.alphas.index(self.headline)]
        extra = {"alpha": self.headline, "delta": self.delta, "seed": self.seed, "curve": curve}
        if len(self.per_scale):
            extra["per_scale"] = [{"scale": k, "pfid": fid(real, f.compute(), reference)[0]}
                                  for k, f in enumerate(self.per_scale)]
        note = f"alpha={self.headline:g}, delta={self.delta}; FID on {head['count']} images (see rfid's caveat)"
        interval = fid_interval(real, fakes[self.alphas.index(self.headline)]) if head["pfid"] is not None else None
        return {"pfid": with_interval(self._value("pfid", head["pfid"], head["count"], note, extra,
                                                   min_count=FID_STABLE_N), interval)}

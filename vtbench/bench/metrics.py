"""Metrics on torchmetrics' `Metric`: ``update(batch)`` per batch, ``compute()`` at the end.

Every state is declared up front with its reduction (``add_state(name, default, dist_reduce_fx=...)``),
lives on the metric's device (``metric.to(device)``), is cleared by ``reset()``, and is combined across
processes by torchmetrics when ``compute`` runs under an initialised ``torch.distributed`` process group
(any backend; a synced metric restores its local states afterwards). Sums are float64, so a sharded run
equals a one-process run to rounding. ``update`` leaves its per-image values (for the per-image rows) in
``metric.rows``; ``compute`` returns named `MetricValue`s, each saying which direction is better and what
computed it. A metric whose network weights or optional package are missing reports every value it would
have produced as unavailable, with the reason and the fix, and the run goes on.

Image metrics see uint8 tensors ``(B, 3, H, W)``: the original, and the reconstruction rounded to
8 bits, so a saved PNG of the reconstruction reproduces every number. ``EvalBatch.index`` holds each
image's position in the evaluated sample list: metrics that keep per-image data (KID features) or draw
per-image randomness (pFID) key on it, so how images are split over batches and processes changes nothing.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
import torchmetrics

from .._extras import MissingExtra
from ..tokenizers.tokens import Tokens
from .intervals import bootstrap_mean
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
    index: torch.Tensor | None = None  # (B,) int64 positions in the evaluated sample list; None: 0..B-1

    def __post_init__(self):
        if self.index is None:
            self.index = torch.arange(len(self.ids), dtype=torch.int64)

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
    ci_low: float | None = None  # 95% interval (`intervals`), where the metric has one
    ci_high: float | None = None
    min_count: int = 0  # below this many images (``count``) the value must not be ranked

    def as_dict(self) -> dict:
        return asdict(self)


class Metric(torchmetrics.Metric):
    name: str = ""
    description: str = ""
    implementation: str = ""
    #: bump whenever a change to the code can change a value: results of another version are recomputed
    version: int = 1
    #: value name -> (higher_is_better, unit) for every value `compute` returns
    outputs: dict[str, tuple[bool | None, str]] = {}
    full_state_update = False

    def __init__(self):
        super().__init__()
        self.unavailable: str | None = None
        self.rows: dict[str, torch.Tensor | list] | None = None  # per-image values of the last update

    def update(self, batch: EvalBatch) -> None:
        self.rows = None
        if self.unavailable:
            return
        try:
            self.rows = self._update(batch)
        except (MetricWeightsUnavailable, MissingExtra) as e:
            self.unavailable = str(e)

    def compute(self) -> dict[str, MetricValue]:
        if self.unavailable:
            return {k: MetricValue(None, hib, self.implementation, unit, 0, False, self.unavailable)
                    for k, (hib, unit) in self.outputs.items()}
        return self._compute()

    def _update(self, batch: EvalBatch):
        raise NotImplementedError

    def _compute(self) -> dict[str, MetricValue]:
        raise NotImplementedError

    def _value(self, key: str, value: float | None, count: int, note: str = "", extra: dict | None = None,
               **fields) -> MetricValue:
        """The `MetricValue` of output ``key``; ``fields``: its other fields (``min_count``, the interval)."""
        hib, unit = self.outputs[key]
        return MetricValue(value, hib, self.implementation, unit, count, note=note, extra=extra or {}, **fields)


def f64(*shape: int) -> torch.Tensor:
    """A float64 zero state (sums are kept in float64 so merging processes is exact to rounding)."""
    return torch.zeros(shape, dtype=torch.float64)


class MeanMetric(Metric):
    """Mean over images of a per-image value, with its 95% bootstrap interval (`intervals.bootstrap_mean`
    over the per-image values, kept with their sample positions); subclasses implement `per_image`."""

    higher_is_better: bool | None = True
    unit = ""
    version = 3  # v2: the interval; v3: the expanded percentile interval (wider on few images)

    def __init__(self):
        super().__init__()
        self.outputs = {self.name: (self.higher_is_better, self.unit)}
        self.add_state("total", f64(), dist_reduce_fx="sum")
        self.add_state("count", f64(), dist_reduce_fx="sum")
        self.add_state("values", [], dist_reduce_fx="cat")
        self.add_state("index", [], dist_reduce_fx="cat")

    def per_image(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _update(self, batch):
        values = self.per_image(batch.originals, batch.reconstructions).double()
        self.total += values.sum().to(self.total.device)
        self.count += values.numel()
        self.values.append(values.to(self.total.device))
        self.index.append(batch.index.to(self.total.device))
        return {self.name: values}

    def _compute(self):
        n = int(self.count)
        v = self._value(self.name, float(self.total / self.count) if n else None, n)
        if n:
            values, index = (torchmetrics.utilities.dim_zero_cat(x) for x in (self.values, self.index))
            ci = bootstrap_mean(values[index.argsort()].cpu().numpy())
            v.ci_low, v.ci_high = ci or (None, None)
        return {self.name: v}


PSNR_CAP_DB = 100.0


class PSNR(MeanMetric):
    name = "psnr"
    unit = "dB"
    description = "peak signal-to-noise ratio on 8-bit RGB, mean over images"
    implementation = (f"vtbench: per-image MSE over all pixels and channels, data range 255, capped at "
                      f"{PSNR_CAP_DB:g} dB for identical images; matches skimage.metrics.peak_signal_noise_ratio")

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


#: vocabularies up to this many ids are counted in a dense histogram; larger ones as sparse (id, count) pairs
DENSE_MAX_IDS = 2 ** 20


class IdCounts(torchmetrics.Metric):
    """How often each id of a vocabulary of ``size`` ids occurred: a child state of `TokenStats`.

    A dense histogram (summed across processes) up to `DENSE_MAX_IDS` ids; beyond that (id, count) pairs of
    the ids seen (concatenated across processes, merged when read), so a 2^36-id joint vocabulary costs
    memory for the ids that occur only. Pending pairs are merged once they outnumber the merged ones.
    ``compute()`` gives the (ids, counts) seen, ids ascending, over all processes.
    """

    full_state_update = False

    def __init__(self, size: int):
        super().__init__()
        self.size, self.dense = size, size <= DENSE_MAX_IDS
        if self.dense:
            self.add_state("hist", torch.zeros(size, dtype=torch.int64), dist_reduce_fx="sum")
        else:
            self.add_state("ids", [], dist_reduce_fx="cat")
            self.add_state("counts", [], dist_reduce_fx="cat")

    def update(self, ids: torch.Tensor) -> None:
        """Count a 1D tensor of ids."""
        if self.dense:
            self.hist += torch.bincount(ids.to(self.hist.device), minlength=self.size)
            return
        pairs = torch.unique(ids, return_counts=True)
        self.ids.append(pairs[0])
        self.counts.append(pairs[1])
        if sum(len(i) for i in self.ids[1:]) > max(len(self.ids[0]), DENSE_MAX_IDS):
            merged = _merge_pairs(self.ids, self.counts)
            self.ids, self.counts = [merged[0]], [merged[1]]

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dense:
            ids = self.hist.nonzero().squeeze(1)
            return ids, self.hist[ids]
        if not len(self.ids):
            empty = torch.zeros(0, dtype=torch.int64)
            return empty, empty
        return _merge_pairs(self.ids, self.counts)


def _merge_pairs(ids, counts) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, counts) pairs (lists of tensors, or concatenated) merged: each id once, ascending."""
    ids, counts = torchmetrics.utilities.dim_zero_cat(ids), torchmetrics.utilities.dim_zero_cat(counts)
    unique, inverse = torch.unique(ids, return_inverse=True)
    return unique, torch.zeros(len(unique), dtype=torch.int64, device=ids.device).index_add_(0, inverse, counts)


def _usage_and_entropy(counts: torch.Tensor, size: int) -> tuple[float, float]:
    """(distinct ids / vocabulary size, entropy in bits) of the nonzero ``counts`` of one vocabulary."""
    p = counts.double() / counts.sum()
    return len(counts) / size, float(-(p * p.log2()).sum())


class TokenStats(Metric):
    """Codebook usage, token entropy/perplexity and bits per pixel over the whole dataset.

    ``codebook_usage``, ``token_entropy`` and ``token_perplexity`` are joint: each position's components
    packed into one id (`Tokens.joint_ids`; a single-component token is its own id), usage = distinct ids
    seen / joint vocabulary size, entropy in bits of the id distribution, perplexity = 2^entropy. They are
    unavailable, with the reason, when the joint vocabulary does not fit in int64. ``marginal_codebook_usage``
    and ``marginal_entropy`` are the same figures per component codebook (sub-codebook, bit or level
    channel), averaged over components. Multi-scale tokens are counted over all scales (one vocabulary);
    positions past ``Tokens.lengths`` are padding and not counted. Continuous tokens (``vocab_sizes=()``)
    get bits and tokens per image only.

    ``vocab_sizes`` is the tokenizer's (`TokenLayout.vocab_sizes`), declared up front so every process holds
    the same states; tokens of another vocabulary are refused.
    """

    name = "tokens"
    version = 2  # v1: usage/entropy per component averaged, under the joint names
    description = "joint and per-component codebook usage, token entropy and perplexity, bits per pixel"
    implementation = ("vtbench: counts of joint ids (components packed, mixed radix) and of each component's codes "
                      "over every non-padding position of the dataset")
    outputs = {"bits_per_pixel": (None, "bpp"), "tokens_per_image": (None, "tokens"),
               "codebook_usage": (True, "fraction"), "token_entropy": (True, "bits"), "token_perplexity": (True, ""),
               "marginal_codebook_usage": (True, "fraction"), "marginal_entropy": (True, "bits")}

    def __init__(self, vocab_sizes: tuple[int, ...] = ()):
        super().__init__()
        self.vocab = tuple(vocab_sizes)
        for name in ("bits", "pixels", "positions", "images"):
            self.add_state(name, f64(), dist_reduce_fx="sum")
        joint = math.prod(self.vocab)
        #: None when the joint vocabulary does not fit in int64
        self.joint = IdCounts(joint) if self.vocab and joint <= torch.iinfo(torch.int64).max else None
        #: every component's codes, offset into one concatenated vocabulary (the joint one for one component)
        self.marginal = IdCounts(sum(self.vocab)) if len(self.vocab) > 1 else self.joint

    def _update(self, batch):
        t = batch.tokens
        h, w = batch.originals.shape[-2:]
        self.bits += t.bits_per_image * t.batch_size
        self.pixels += h * w * t.batch_size
        self.positions += t.positions_per_image * t.batch_size
        self.images += t.batch_size
        if not t.is_discrete:
            return None
        if tuple(t.vocab_sizes) != self.vocab:
            raise ValueError(f"tokens of vocabulary {tuple(t.vocab_sizes)} in a run declared for {self.vocab}")
        valid = t.valid()
        if self.joint is not None:
            self.joint.update(t.joint_ids()[valid])
        if len(self.vocab) > 1:
            offsets = torch.tensor([0, *self.vocab[:-1]], device=valid.device).cumsum(0)
            self.marginal.update((t.flat()[valid] + offsets).flatten())
        return None

    def _compute(self):
        n_img = int(self.images)
        bpp, per_image = ((float(self.bits / self.pixels), float(self.positions / self.images)) if n_img
                          else (None, None))
        out = {"bits_per_pixel": self._value("bits_per_pixel", bpp, n_img),
               "tokens_per_image": self._value("tokens_per_image", per_image, n_img)}
        if not self.vocab:
            return out
        n = round(float(self.positions))  # non-padding positions, every one counted
        out.update(self._joint_values(n))
        ids, counts = (t.cpu() for t in self.marginal.compute())
        usage, entropy = [], []
        for lo, size in zip([0, *itertools.accumulate(self.vocab)], self.vocab):
            inside = (ids >= lo) & (ids < lo + size)
            u, h = _usage_and_entropy(counts[inside], size)
            usage.append(u)
            entropy.append(h)
        out["marginal_codebook_usage"] = self._value("marginal_codebook_usage", sum(usage) / len(usage), n)
        out["marginal_entropy"] = self._value("marginal_entropy", sum(entropy) / len(entropy), n)
        return out

    def _joint_values(self, n: int) -> dict[str, MetricValue]:
        keys = ("codebook_usage", "token_entropy", "token_perplexity")
        size = math.prod(self.vocab)
        if self.joint is None:
            sizes = sorted(set(self.vocab))
            parts = (f"{len(self.vocab)} components of {sizes[0]} codes" if len(sizes) == 1
                     else f"codes {list(self.vocab)}")
            reason = (f"the joint vocabulary of 2^{math.log2(size):.4g} ids ({parts}) does not fit in "
                      "int64; see marginal_codebook_usage and marginal_entropy")
            return {k: MetricValue(None, self.outputs[k][0], self.implementation, self.outputs[k][1], 0, False, reason)
                    for k in keys}
        usage, h = _usage_and_entropy(self.joint.compute()[1].cpu(), size)
        note = ""
        if n < size:
            note = f"{n} positions seen, {size} ids: usage cannot exceed {n / size:.3g}"
        return {"codebook_usage": self._value("codebook_usage", usage, n, note),
                "token_entropy": self._value("token_entropy", h, n),
                "token_perplexity": self._value("token_perplexity", 2 ** h, n)}


class Throughput(Metric):
    """Images per second for encode and for decode (wall clock, includes device sync); over several
    processes, the rate of one process (images / summed seconds)."""

    name = "throughput"
    description = "encode and decode images per second"
    implementation = "wall clock around tokenizer.encode / tokenizer.decode per batch"
    outputs = {"encode_images_per_s": (True, "img/s"), "decode_images_per_s": (True, "img/s")}

    def __init__(self):
        super().__init__()
        for name in ("encode_s", "decode_s", "images"):
            self.add_state(name, f64(), dist_reduce_fx="sum")

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

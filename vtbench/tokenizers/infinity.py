"""Infinity's bitwise multi-scale VAE (Han et al. 2024), module names as in FoundationVision/Infinity
``infinity/models/bsq_vae/`` (``vae.py``, ``flux_vqgan.py``, ``multiscale_bsq.py``, ``conv.py``), so the released
``infinity_vae_d{16,24,32,64}.pth`` and ``infinity_vae_d32reg.pth`` (state dict under ``['vae']``) load strictly.

The autoencoder is the taming tree without attention (``TAMING_CONFIGS["infinity-d32"]``: ch 128, ch_mult
1,2,4,4,4, two resnet blocks per level, stride 16) whose encoder emits d channels directly: no
``quant_conv``/``post_quant_conv``, no projection (the codebook has 2^d implicit codes). The quantizer codes
the d-channel map as a pyramid of bit maps. At scale k the remaining residual is area-downsampled to the
k-th side (the last scale is the map itself), l2-normalised over channels and quantized to
``sign / sqrt(d)`` (a zero channel counts as negative; the value is the straight-through
``u + (q - u)`` as in the official ``quantize_new``), upsampled back trilinearly (on a one-frame
``(B, d, 1, h, w)`` volume, as the official code does) and subtracted. Bits are ``u > 0``; channel 0 is the
most significant bit of an integer label (the official ``mask`` is ``2^(d-1) .. 2^0``).

The schedule is Infinity's square one (``dynamic_resolution`` ratio 1.0): sides 1, 2, 4, 6, 8, 12, 16, 20,
24, 32, 40, 48, 64, of which a final side of 16 / 32 / 64 (256 / 512 / 1024 px) takes the first 7 / 10 / 13
(521 / 2,521 / 10,521 positions of d bits). Decoding from bits follows ``indices_to_codes``:
``l2norm(bits * 2s - s)`` with ``s = 1/sqrt(d)``, each scale upsampled trilinearly to the final side,
summed, decoded and clamped to [-1, 1]. The AR model's next-scale input (generation in
``autoregressive_infer_cfg``, training in ``bitwise_self_correction.flip_requant``) is that running sum
resampled *trilinearly* (not area) to the next side; `next_scale_input` and `teacher_forcing_inputs` do so.

The official modules wrap each conv and norm (``encoder.conv_in.conv.weight``, ``...norm1.norm.weight``) and
its loader accepts the plain taming names too; the converter here takes either form (not both for one
tensor) and drops only the quantizer's ``mask`` buffer (``quantizer.lfq.mask``, aliased as
``quantize.lfq.mask``), a constant the decoder never reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .. import quantizers as Q
from ..quantizers.base import channels_first, channels_last, straight_through
from ..quantizers.multiscale import _down, _square_side
from ..quantizers.neighbours import binary_candidates
from .base import Tokenizer, TokenizerInfo
from .pretrained import register_architecture
from .registry import register_tokenizer
from .taming import TAMING_CONFIGS, Decoder, Encoder, TamingConfig
from .tokens import Tokens
from .weights import Checkpoint, HubFile, WeightsMismatch, single_file

PAPER = "https://arxiv.org/abs/2412.04431"
CODE = "https://github.com/FoundationVision/Infinity"
HUB_REPO = "FoundationVision/Infinity"

#: Infinity's square token-map sides (``infinity/models/bsq_vae/dynamic_resolution.py``, ratio 1.0) and how many
#: of them a schedule takes (7, 10, 13: final sides 16, 32, 64)
SCALE_SIDES = (1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64)
SCHEDULE_LENGTHS = (7, 10, 13)

#: the released file's only tensors outside the autoencoder: the BSQ ``mask`` buffer, under both module aliases
LEFTOVERS = ("quantizer.lfq.mask", "quantize.lfq.mask")
#: the official wrappers: ``<conv>.conv.<param>`` and ``<norm>.norm.<param>`` are taming's ``<conv>.<param>``
_WRAPPED = re.compile(r"(\.(?:conv_in|conv_out|conv1|conv2|nin_shortcut|conv))\.conv(\.(?:weight|bias))$"
                      r"|(\.(?:norm1|norm2|norm_out))\.norm(\.(?:weight|bias))$")


@dataclass(frozen=True)
class InfinityConfig:
    taming: TamingConfig = TAMING_CONFIGS["infinity-d32"]  # z_channels = d, the bits per position
    scale_sides: tuple[int, ...] = SCALE_SIDES
    schedule_lengths: tuple[int, ...] = SCHEDULE_LENGTHS
    resolution: int = 256

    def __post_init__(self):
        if isinstance(self.taming, dict):  # read back from config.json
            object.__setattr__(self, "taming", TamingConfig(**self.taming))
        for name in ("scale_sides", "schedule_lengths"):  # lists from JSON; keep the dataclass hashable
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if max(self.schedule_lengths) > len(self.scale_sides):
            raise ValueError(f"schedule_lengths {self.schedule_lengths} exceed the {len(self.scale_sides)} sides")

    @property
    def bits(self) -> int:
        return self.taming.z_channels


class InfinityBSQ(Q.BSQ):
    """BSQ with the official arithmetic: the sign times ``1/sqrt(d)`` (not divided by ``sqrt(d)``), channels
    normalised on a contiguous copy, and codes from bits as ``l2norm(bits * 2s - s)``."""

    def quantize(self, zl):
        u = F.normalize(zl.contiguous(), dim=-1)
        q = torch.where(u > 0, 1.0, -1.0).to(u) * (1 / self.bits ** 0.5)
        return u, q, (u > 0).long()

    def codes(self, bits: torch.Tensor) -> torch.Tensor:
        s = 1 / self.bits ** 0.5
        return F.normalize(bits.float() * s * 2 - s, dim=-1)

    def dequantize(self, codes):
        return channels_first(self.codes(codes))


def _resample(x: torch.Tensor, side: int) -> torch.Tensor:
    """Channels-first ``(B, d, h, w)`` resampled trilinearly on a one-frame volume, as the official code does."""
    if x.shape[-1] == side:
        return x
    return F.interpolate(x.unsqueeze(2), size=(1, side, side), mode="trilinear").squeeze(2)


class InfinityQuantizer(Q.MultiScaleBSQ):
    """`MultiScaleBSQ` with Infinity's schedule table, trilinear resampling and official code arithmetic."""

    def __init__(self, bits: int, scale_sides: tuple[int, ...] = SCALE_SIDES,
                 schedule_lengths: tuple[int, ...] = SCHEDULE_LENGTHS):
        super().__init__(bits)
        self.bsq = InfinityBSQ(bits)
        self.schedules = {scale_sides[n - 1]: list(scale_sides[:n]) for n in schedule_lengths}

    def sides_for(self, side: int) -> list[int]:
        if side not in self.schedules:
            raise ValueError(f"Infinity has token-map schedules for final sides {sorted(self.schedules)}, got {side}")
        return list(self.schedules[side])

    @staticmethod
    def _up(q: torch.Tensor, side: int) -> torch.Tensor:
        return _resample(channels_first(q), side)

    def _code(self, bits: torch.Tensor) -> torch.Tensor:
        return self.bsq.codes(bits)

    def next_scale_input(self, k: int, f_hat, codes: torch.Tensor, sides) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation: add scale ``k``'s bits (upsampled to the final side) to ``f_hat`` (None at k = 0); the
        next scale's input is ``f_hat`` resampled trilinearly to its side (``autoregressive_infer_cfg``)."""
        h = self._up(self._code(codes), sides[-1])
        f_hat = h if f_hat is None else f_hat + h
        return f_hat, (f_hat if k == len(sides) - 1 else _resample(f_hat, sides[k + 1]))

    def neighbours(self, z, k: int):
        """Per scale, the clean bits and their cheapest single flips (smallest ``|u|`` first), on the residual
        left by the clean bits before it, computed as `forward` computes it."""
        side = _square_side(z)
        rest, out = z, []
        for s in self.sides_for(side):
            u, q, bits = self.bsq.quantize(channels_last(_down(rest, s)))
            rest = rest - self._up(straight_through(u, q), side)
            cand = binary_candidates(u.reshape(-1, self.bsq.bits), bits.reshape(-1, self.bsq.bits), k)
            out.append(cand.view(*bits.shape[:-1], *cand.shape[1:]))
        return out


class InfinityVAE(Tokenizer):
    def __init__(self, cfg: InfinityConfig = InfinityConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg.taming)
        self.decoder = Decoder(cfg.taming)
        self.quantizer = InfinityQuantizer(cfg.bits, cfg.scale_sides, cfg.schedule_lengths)
        f = cfg.taming.downsample_factor
        native = self.quantizer.sides_for(cfg.resolution // f)
        sizes = ", ".join(f"{s * f}x{s * f}" for s in sorted(self.quantizer.schedules))
        self.info = TokenizerInfo(
            family="infinity", kind="binary", resolution=cfg.resolution, downsample=f, vocab_sizes=(2,) * cfg.bits,
            tokens_per_image=sum(s * s for s in native), multiscale=True, order="msb", paper=PAPER, code=CODE,
            license="MIT", input_range="minus_one_one",
            notes=f"{len(native)} scales {','.join(map(str, native))} of {cfg.bits} bits (BSQ per scale, "
                  f"channel 0 most significant); takes {sizes} inputs",
        )

    def scale_shapes(self, height, width):
        return tuple((s, s) for s in self.quantizer.sides_for(height // self.info.downsample))

    def check_size(self, height, width):
        f = self.info.downsample
        if height != width or height % f or height // f not in self.quantizer.schedules:
            sizes = ", ".join(f"{s * f}x{s * f}" for s in sorted(self.quantizer.schedules))
            raise ValueError(f"{self._name()} takes square images with an Infinity scale schedule: {sizes} "
                             f"(multiples of {f} with a schedule), got {height}x{width}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's d-channel map, in float32 (the official ``encode_for_raw_features``)."""
        return self.encoder(x).float()

    def _tokens(self, codes) -> Tokens:
        return Tokens.from_indices(list(codes), "binary", self.info.vocab_sizes)

    def _encode(self, x):
        return self._tokens(self.quantizer(self.features(x)).codes)

    def _neighbours(self, x, k):
        z = self.features(x)
        with torch.autocast(z.device.type, enabled=False):
            return self._tokens(self.quantizer(z).codes), self.quantizer.neighbours(z, k)

    def f_hat(self, tokens: Tokens) -> torch.Tensor:
        """The decoder's input: every scale's codes upsampled to the final side and summed, in float32 and in
        channels-last memory layout, as the official sum of ``indices_to_codes`` outputs is (convolutions round
        differently in the two layouts: about 2e-4 on the images of a random-weight decoder at 512 px)."""
        with torch.autocast(tokens.scales[0].device.type, enabled=False):
            f_hat = self.quantizer.dequantize([s.contiguous() for s in tokens.scales])
        return f_hat.contiguous(memory_format=torch.channels_last)

    def _decode(self, tokens):
        return self.decoder(self.f_hat(tokens)).clamp(-1, 1).contiguous()

    def tokens_from_indices(self, indices, resolution=None) -> Tokens:
        """Also takes Infinity's own per-scale bit labels: ``(B, 1, h, w, d)`` (``idx_Bld`` in
        ``autoregressive_infer_cfg``) or ``(B, h * w, d)`` (``gt_ms_idx_Bl`` in training)."""
        if torch.is_tensor(indices):
            return super().tokens_from_indices(indices, resolution)
        scales = list(indices)
        d = self.info.vocab_sizes
        if any(torch.is_tensor(s) and s.ndim == 3 for s in scales):
            schedule = next((v for v in self.quantizer.schedules.values() if len(v) == len(scales)), None)
            if schedule is None:
                lengths = sorted(len(v) for v in self.quantizer.schedules.values())
                raise ValueError(f"{self._name()} has schedules of {lengths} scales, got {len(scales)} (B, h*w, d) "
                                 "tensors")
            scales = [s.reshape(s.shape[0], n, n, len(d)) if s.ndim == 3 and s.shape[1] == n * n else s
                      for s, n in zip(scales, schedule)]
        scales = [s.squeeze(1) if torch.is_tensor(s) and s.ndim == 5 and s.shape[1] == 1 else s for s in scales]
        return super().tokens_from_indices(scales, resolution)

    def teacher_forcing_inputs(self, tokens: Tokens) -> torch.Tensor:
        self._check_tokens(tokens)
        with torch.autocast(tokens.scales[0].device.type, enabled=False):
            return self.quantizer.teacher_forcing_inputs(list(tokens.scales))

    def next_scale_input(self, k, f_hat, codes, scale_shapes):
        with torch.autocast(codes.device.type, enabled=False):
            return self.quantizer.next_scale_input(k, f_hat, codes, [s[0] for s in scale_shapes])


def _unwrap(key: str) -> str:
    return _WRAPPED.sub(lambda m: "".join(g for g in m.groups() if g), key)


def _converter(bits: int):
    """The released file: ``{'vae': state}`` (a bare state dict is taken too), in the official wrapped names
    or the plain taming names, less the quantizer's ``mask`` buffer; a file of another d is named as such."""

    def convert(state: dict) -> dict:
        if isinstance(state.get("vae"), dict):
            state = state["vae"]
        out, sources = {}, {}
        for key, value in state.items():
            if key in LEFTOVERS:
                if tuple(value.shape) != (bits,):
                    raise WeightsMismatch(f"{key} has shape {tuple(value.shape)}: a d={value.shape[0]} Infinity VAE; "
                                          f"the entry has d={bits}{_use(value.shape[0])}")
                continue
            name = _unwrap(key)
            if name in out:
                raise WeightsMismatch(f"the file holds {sources[name]} and {key}, the same tensor under the plain "
                                      "and the wrapped name")
            out[name], sources[name] = value, key
        conv_out = out.get("encoder.conv_out.weight")
        if conv_out is not None and conv_out.shape[0] != bits:
            found = conv_out.shape[0]
            raise WeightsMismatch(f"this Infinity VAE codes d={found} bits per position (encoder.conv_out has {found} "
                                  f"output channels); the entry has d={bits}{_use(found)}")
        return out

    return convert


def _use(d: int) -> str:
    names = [n for n, (b, _f, _p) in VARIANTS.items() if b == d]
    return f": use {' or '.join(names)}" if names else " (no released entry has that d)"


register_architecture("infinity-vae", InfinityConfig)(InfinityVAE)

_README = f"{CODE}#-infinity-model-zoo"
#: the released VAEs: name -> (d, hub file, published figures on ImageNet val at 256 px and 512 px, README table)
VARIANTS = {
    "infinity-vae-d16": (16, "infinity_vae_d16.pth", (1.22, 20.9, 0.31, 22.6)),
    "infinity-vae-d24": (24, "infinity_vae_d24.pth", (0.75, 22.0, 0.30, 23.5)),
    "infinity-vae-d32": (32, "infinity_vae_d32.pth", (0.61, 22.7, 0.23, 24.4)),
    "infinity-vae-d64": (64, "infinity_vae_d64.pth", (0.33, 24.9, 0.15, 26.4)),
    "infinity-vae-d32reg": (32, "infinity_vae_d32reg.pth", (0.75, 21.9, 0.32, 23.6)),
}
for _name, (_d, _file, (_rfid, _psnr, _rfid512, _psnr512)) in VARIANTS.items():
    _reg = " (the one Infinity-2B uses)" if _name.endswith("reg") else ""
    _cfg = InfinityConfig(taming=replace(TAMING_CONFIGS["infinity-d32"], z_channels=_d))
    register_tokenizer(
        _name,
        weights={"hub": Checkpoint({"model": HubFile(HUB_REPO, _file)}, single_file(_converter(_d)), license="MIT",
                                   published={"rfid": _rfid, "psnr": _psnr, "dataset": "ImageNet val, 256x256",
                                              "note": f"ImageNet val 512x512: rFID {_rfid512}, PSNR {_psnr512}",
                                              "source": _README})},
        description=f"Infinity's bitwise multi-scale VAE, d={_d}{_reg}"
                    f": 521 positions of {_d} bits at 256 px (7 scales); 512 and 1024 px too",
    )(lambda _c=_cfg, **kw: InfinityVAE(replace(_c, **kw)))

"""VAR's multi-scale residual VQVAE (Tian et al. 2024), module names as in FoundationVision/VAR ``models/vqvae.py``
and ``models/quant.py``, so the released ``vae_ch160v4096z32.pth`` loads strictly.

The taming encoder (fused-qkv attention, `TAMING_CONFIGS["var-ch160"]`) maps a 256 px image to a 16x16x32 map;
``quant_conv`` (3x3) precedes the quantizer. The quantizer codes the map as 10 token maps of sides 1, 2, 3, 4,
5, 6, 8, 10, 13, 16 (512 px: 1, 2, 3, 4, 6, 9, 13, 18, 24, 32): the remaining residual is area-downsampled to
each side, looked up in one 4096-code codebook by squared l2, bicubic-upsampled back, refined by one of four
shared ``Phi`` convs (``0.5 h + 0.5 conv(h)``; scale k takes the phi whose tick in linspace(1/12, 11/12, 4) is
nearest k/9, in float64: phis 0,0,1,1,1,2,2,3,3,3) and subtracted. The sum ``f_hat`` (float32) passes
``post_quant_conv`` and the decoder; images are clamped to [-1, 1] as the official ``fhat_to_img`` does.
``quantize.ema_vocab_hit_SV`` (per-scale code usage from training) is a buffer of the file and is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .. import quantizers as Q
from .base import Tokenizer, TokenizerInfo
from .pretrained import register_architecture
from .registry import register_tokenizer
from .taming import TAMING_CONFIGS, Decoder, Encoder, TamingConfig
from .tokens import Tokens
from .weights import Checkpoint, HubFile, single_file

PAPER = "https://arxiv.org/abs/2404.02905"
CODE = "https://github.com/FoundationVision/VAR"

#: VAR's token-map sides per final side: 256 px (VAR d16-d30) and 512 px (VAR d36)
#: stated by the file's LFS pointer, https://huggingface.co/FoundationVision/var/commit/2fc3ff144f97ddd12207727b60dd6b997bc4cb69
VAE_SHA256 = "7c3ec27ae28a3f87055e83211ea8cc8558bd1985d7b51742d074fb4c2fcf186c"
PATCH_NUMS_256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
PATCH_NUMS_512 = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)


@dataclass(frozen=True)
class VARConfig:
    taming: TamingConfig = TAMING_CONFIGS["var-ch160"]
    vocab_size: int = 4096
    patch_nums: tuple[tuple[int, ...], ...] = (PATCH_NUMS_256, PATCH_NUMS_512)  # one schedule per final side
    shared_phis: int = 4
    phi_ratio: float = 0.5
    resolution: int = 256

    def __post_init__(self):
        if isinstance(self.taming, dict):  # read back from config.json
            object.__setattr__(self, "taming", TamingConfig(**self.taming))
        object.__setattr__(self, "patch_nums", tuple(tuple(int(s) for s in p) for p in self.patch_nums))
        if len({len(p) for p in self.patch_nums}) != 1:
            raise ValueError(f"every schedule needs the same number of scales, got {self.patch_nums}")


class PhiConv(nn.Conv2d):
    """``(1 - r) h + r conv3x3(h)``; the module is the conv itself, as in the official files."""

    def __init__(self, dim: int, ratio: float):
        super().__init__(dim, dim, 3, padding=1)
        self.ratio = ratio

    def forward(self, h):
        return h * (1 - self.ratio) + super().forward(h) * self.ratio


class SharedPhis(nn.Module):
    """``qresi_ls``: K phi convs shared by the scales; scale k of n takes the phi whose tick is nearest
    k / (n - 1). Ticks: linspace(1/(3K), 1 - 1/(3K)) for K = 4, else linspace(1/(2K), 1 - 1/(2K))."""

    def __init__(self, dim: int, count: int, ratio: float):
        super().__init__()
        self.qresi_ls = nn.ModuleList(PhiConv(dim, ratio) for _ in range(count))
        edge = 1 / (3 * count) if count == 4 else 1 / (2 * count)
        self.ticks = np.linspace(edge, 1 - edge, count)  # float64, as the official argmin compares them

    def index(self, k: int, n: int) -> int:
        return int(np.argmin(np.abs(self.ticks - k / (n - 1))))


def _fused_l2(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """VAR's distance arithmetic: ``|z|^2 + |e|^2`` then ``addmm_`` of ``-2 z e^T``."""
    d = z.square().sum(1, keepdim=True) + codebook.square().sum(1)
    return d.addmm_(z, codebook.t(), alpha=-2, beta=1)


class VARQuantizer(Q.MultiScaleResidualVQ):
    """`MultiScaleResidualVQ` with VAR's names, schedules per final side and phi rule."""

    distances = staticmethod(_fused_l2)

    def __init__(self, vocab_size: int, dim: int, patch_nums: tuple[tuple[int, ...], ...], phis: int, ratio: float):
        super().__init__(dim, vocab_size, phis=0)
        self.quant_resi = SharedPhis(dim, phis, ratio)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(patch_nums[0]), vocab_size))
        self.patch_nums = {p[-1]: p for p in patch_nums}

    def sides_for(self, side: int) -> list[int]:
        if side not in self.patch_nums:
            raise ValueError(f"VAR has token-map schedules for final sides {sorted(self.patch_nums)}, got {side}")
        return list(self.patch_nums[side])

    def _phi(self, k: int, n: int) -> nn.Module:
        return self.quant_resi.qresi_ls[self.quant_resi.index(k, n)]


class VARVQVAE(Tokenizer):
    def __init__(self, cfg: VARConfig = VARConfig()):
        super().__init__()
        self.cfg = cfg
        dim = cfg.taming.z_channels
        self.encoder = Encoder(cfg.taming)
        self.decoder = Decoder(cfg.taming)
        self.quantize = VARQuantizer(cfg.vocab_size, dim, cfg.patch_nums, cfg.shared_phis, cfg.phi_ratio)
        self.quant_conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.post_quant_conv = nn.Conv2d(dim, dim, 3, padding=1)
        f = cfg.taming.downsample_factor
        native = self.quantize.sides_for(cfg.resolution // f)
        sizes = " or ".join(f"{s * f}x{s * f}" for s in sorted(self.quantize.patch_nums))
        self.info = TokenizerInfo(
            family="var", kind="index", resolution=cfg.resolution, downsample=f, vocab_sizes=(cfg.vocab_size,),
            tokens_per_image=sum(s * s for s in native), multiscale=True, paper=PAPER, code=CODE, license="MIT",
            input_range="minus_one_one",
            notes=f"{len(native)} scales {','.join(map(str, native))} of one {cfg.vocab_size}-code codebook "
                  f"(dim {dim}); takes {sizes} inputs",
        )

    def scale_shapes(self, height, width):
        return tuple((s, s) for s in self.quantize.sides_for(height // self.info.downsample))

    def check_size(self, height, width):
        f = self.info.downsample
        if height != width or height % f or height // f not in self.quantize.patch_nums:
            sizes = ", ".join(f"{s * f}x{s * f}" for s in sorted(self.quantize.patch_nums))
            raise ValueError(f"{self._name()} takes square images with a VAR token-map schedule: {sizes} "
                             f"(multiples of {f} with a schedule), got {height}x{width}")

    def pre_quant(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def _encode(self, x):
        return self._tokens(self.quantize(self.pre_quant(x)).codes)

    def _neighbours(self, x, k):
        z = self.pre_quant(x)
        return self._tokens(self.quantize(z).codes), self.quantize.neighbours(z, k)

    def _tokens(self, codes) -> Tokens:
        return Tokens.from_indices(codes, "index", self.info.vocab_sizes)

    def f_hat(self, tokens: Tokens) -> torch.Tensor:
        """The decoder's input before ``post_quant_conv``: the sum over scales, in float32."""
        with torch.autocast(tokens.scales[0].device.type, enabled=False):
            return self.quantize.dequantize(list(tokens.scales))

    def _decode(self, tokens):
        return self.decoder(self.post_quant_conv(self.f_hat(tokens))).clamp(-1, 1)

    def teacher_forcing_inputs(self, tokens: Tokens) -> torch.Tensor:
        return self.quantize.teacher_forcing_inputs(list(tokens.scales))

    def next_scale_input(self, k, f_hat, codes, scale_shapes):
        return self.quantize.next_scale_input(k, f_hat, codes, [s[0] for s in scale_shapes])


def _official_state(state: dict) -> dict:
    """The released file is a flat state dict (some re-saves wrap it in "model")."""
    return state["model"] if "model" in state and isinstance(state["model"], dict) else state


register_architecture("var-vqvae", VARConfig)(VARVQVAE)


@register_tokenizer(
    "var-vqvae",
    weights={"hub": Checkpoint({"model": HubFile("FoundationVision/var", "vae_ch160v4096z32.pth",
                                                        sha256=VAE_SHA256)},
                               single_file(_official_state), license="MIT",
                               published={"note": "no official rFID for the VQVAE alone; ~0.9 is commonly cited",
                                          "source": CODE})},
    description="VAR's multi-scale VQVAE (VAR d16-d30): 10 scales, 680 tokens of 4096 codes at 256 px; 512 px too",
)
def var_vqvae(**kw):
    return VARVQVAE(replace(VARConfig(), **kw))


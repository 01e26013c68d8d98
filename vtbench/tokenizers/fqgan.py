"""FQGAN (Bai et al. 2024): factorized quantization, module names as in showlab/FQGAN ``tokenizer/vq_model_dual.py``
and ``vq_model_triple.py``, so the released files load strictly.

A LlamaGen encoder trunk (``conv_in``, ``conv_blocks``, ``mid``) feeds K heads: each a transformer adapter
(``visual_head`` / ``semantic_head[_mid|_high]``: a learned positional embedding for the 256 px grid,
``ln_pre``, 6 pre-norm blocks of width 512 and 8 heads, ``ln_post``), then ``norm_out_*`` / ``conv_out_*`` and
a 1x1 ``quant_conv_*`` to dim 8. Each head has its own 16384-code codebook (``quantize_*``), looked up with
feature and codes l2-normalised (LlamaGen's quantizer, ``codebook_used`` kept). The decoder takes the
concatenated codes, visual first (``post_quant_conv`` then LlamaGen's decoder).

Tokens are one grid per sub-codebook, ``(B, h, w, K)``, in the decoder's order: visual, semantic (dual);
visual, mid-level semantic, high-level semantic (triple); the official ``encode`` of the dual model returns
the semantic codes first. The positional embeddings fix the input at 256x256.
The CLIP/DINO feature-prediction heads (``feat_pred_head``, ``mid_sem_feat_pred``, ``high_sem_feat_pred``)
are training-only: the converter drops them, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .base import Tokenizer, TokenizerInfo
from .layers import ResidualAttentionBlock, group_norm
from .llamagen import Decoder, EncoderTrunk, VectorQuantizer, VQConfig
from .pretrained import register_architecture
from .registry import register_tokenizer
from .tokens import Tokens
from .weights import Checkpoint, HubFile, WeightsMismatch, single_file

PAPER = "https://arxiv.org/abs/2411.16681"
CODE = "https://github.com/showlab/FQGAN"

#: sub-codebooks in token order (= the decoder's concatenation order) and the adapter each reads
BRANCHES = {"dual": ("vis", "sem"), "triple": ("vis", "sem_mid", "sem_high")}
HEADS = {"vis": "visual_head", "sem": "semantic_head", "sem_mid": "semantic_head_mid",
         "sem_high": "semantic_head_high"}
TRAINING_ONLY = ("feat_pred_head.", "mid_sem_feat_pred.", "high_sem_feat_pred.")


@dataclass(frozen=True)
class FQGANConfig(VQConfig):
    """LlamaGen's VQ config (each sub-codebook is one of LlamaGen's) plus the variant and its adapters."""

    variant: str = "dual"  # "dual" or "triple"
    adapter_layers: int = 6
    adapter_heads: int = 8

    def __post_init__(self):
        if self.variant not in BRANCHES:
            raise ValueError(f"variant is one of {sorted(BRANCHES)}, got {self.variant!r}")

    @property
    def backbone(self) -> VQConfig:
        return VQConfig(self.codebook_size, self.codebook_embed_dim, self.ch, self.ch_mult, self.num_res_blocks,
                        self.z_channels, self.resolution)


class Adapter(nn.Module):
    """A transformer over the grid's positions, with a learned embedding per position."""

    def __init__(self, width: int, grid: int, layers: int, heads: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(width ** -0.5 * torch.randn(grid * grid, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.ln_pre(x.flatten(2).transpose(1, 2) + self.positional_embedding.to(x.dtype))
        for block in self.transformer:
            t = block(t)
        return self.ln_post(t).transpose(1, 2).reshape(b, c, h, w)


class FQGANEncoder(EncoderTrunk):
    """The trunk, then per branch its adapter (a one-element list, as in the official files) and output conv."""

    def __init__(self, cfg: FQGANConfig):
        super().__init__(cfg.backbone)
        self.branches = BRANCHES[cfg.variant]
        grid = cfg.resolution // 2 ** (len(cfg.ch_mult) - 1)
        for b in self.branches:
            setattr(self, HEADS[b], nn.ModuleList([Adapter(self.width, grid, cfg.adapter_layers, cfg.adapter_heads)]))
            setattr(self, f"norm_out_{b}", group_norm(self.width))
            setattr(self, f"conv_out_{b}", nn.Conv2d(self.width, cfg.z_channels, 3, padding=1))

    def forward(self, x) -> list[torch.Tensor]:
        h = self.trunk(x)
        out = []
        for b in self.branches:
            y = getattr(self, HEADS[b])[0](h)
            out.append(getattr(self, f"conv_out_{b}")(F.silu(getattr(self, f"norm_out_{b}")(y))))
        return out


class FQGAN(Tokenizer):
    def __init__(self, cfg: FQGANConfig = FQGANConfig()):
        super().__init__()
        self.cfg = cfg
        self.branches = BRANCHES[cfg.variant]
        self.encoder = FQGANEncoder(cfg)
        for b in self.branches:
            setattr(self, f"quantize_{b}", VectorQuantizer(cfg.codebook_size, cfg.codebook_embed_dim))
            setattr(self, f"quant_conv_{b}", nn.Conv2d(cfg.z_channels, cfg.codebook_embed_dim, 1))
        self.post_quant_conv = nn.Conv2d(cfg.codebook_embed_dim * len(self.branches), cfg.z_channels, 1)
        self.decoder = Decoder(cfg.backbone)
        f = 2 ** (len(cfg.ch_mult) - 1)
        k = len(self.branches)
        self.info = TokenizerInfo(
            family="fqgan", kind="factorized", resolution=cfg.resolution, downsample=f,
            vocab_sizes=(cfg.codebook_size,) * k, tokens_per_image=(cfg.resolution // f) ** 2,
            fixed_resolution=True, paper=PAPER, code=CODE, license="CC BY-NC 4.0", input_range="minus_one_one",
            notes=f"{k} sub-codebooks of {cfg.codebook_size} x {cfg.codebook_embed_dim} (cosine lookup), "
                  f"components {', '.join(self.branches)}; {cfg.resolution}x{cfg.resolution} only "
                  "(the adapters' positional embeddings)",
        )

    def check_size(self, height, width):
        r = self.info.resolution
        if (height, width) != (r, r):
            grid = r // self.info.downsample
            raise ValueError(f"{self._name()} encodes {r}x{r} images only (its adapters have positional embeddings "
                             f"for a {grid}x{grid} grid), got {height}x{width}; resize or crop to {r}x{r}")

    def _quantizers(self) -> list[VectorQuantizer]:
        return [getattr(self, f"quantize_{b}") for b in self.branches]

    def _features(self, x) -> list[torch.Tensor]:
        return [getattr(self, f"quant_conv_{b}")(h) for b, h in zip(self.branches, self.encoder(x))]

    def _encode(self, x):
        codes = torch.stack([q(z).codes for q, z in zip(self._quantizers(), self._features(x))], dim=-1)
        return Tokens.from_indices(codes, "factorized", self.info.vocab_sizes)

    def _neighbours(self, x, k):
        feats = self._features(x)
        cand = torch.stack([q.neighbours(z, k) for q, z in zip(self._quantizers(), feats)], dim=-2)
        return Tokens.from_indices(cand[..., 0], "factorized", self.info.vocab_sizes), [cand]

    def _decode(self, tokens):
        codes = tokens.indices
        quant = torch.cat([q.dequantize(codes[..., i]) for i, q in enumerate(self._quantizers())], dim=1)
        return self.decoder(self.post_quant_conv(quant))


def _converter(variant: str, grid: int):
    """The official file's generator: ``['ema']``, else ``['model']``, else ``['state_dict']``, minus the
    training-only feature-prediction heads. A file of the other variant or size is named as such."""
    expected = set(BRANCHES[variant])

    def convert(state: dict) -> dict:
        for key in ("ema", "model", "state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
        suffix = ".embedding.weight"
        found = {k[len("quantize_"):-len(suffix)] for k in state if k.startswith("quantize_") and k.endswith(suffix)}
        if found and found != expected:
            other = next((v for v, b in BRANCHES.items() if set(b) == found), "unknown")
            raise WeightsMismatch(f"this is a {other} FQGAN checkpoint (sub-codebooks {sorted(found)}); the entry is "
                                  f"the {variant} model ({sorted(expected)}): use fqgan-{other}-* for it")
        pos = state.get("encoder.visual_head.0.positional_embedding")
        if pos is not None and pos.shape[0] != grid * grid:
            raise WeightsMismatch(f"this FQGAN checkpoint is for a {int(pos.shape[0] ** 0.5)}x"
                                  f"{int(pos.shape[0] ** 0.5)} token grid; the entry has a {grid}x{grid} grid "
                                  "(ds16: 16x16, ds8: 32x32 at 256 px)")
        return {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY)}

    return convert


register_architecture("fqgan", FQGANConfig)(FQGAN)

_README = f"{CODE}#readme"
#: the released ImageNet models: name -> (config, hub file, rFID on ImageNet val 256 from the README)
VARIANTS = {
    "fqgan-dual-16": (FQGANConfig(variant="dual"), "fqgan_dual_ds16.pt", 0.94),
    "fqgan-triple-16": (FQGANConfig(variant="triple"), "fqgan_triple_ds16.pt", 0.76),
    "fqgan-dual-8": (FQGANConfig(variant="dual", ch_mult=(1, 2, 2, 4)), "fqgan_dual_ds8.pt", 0.32),
    "fqgan-triple-8": (FQGANConfig(variant="triple", ch_mult=(1, 2, 2, 4)), "fqgan_triple_ds8.pt", 0.24),
}
for _name, (_cfg, _file, _rfid) in VARIANTS.items():
    _grid = 256 // 2 ** (len(_cfg.ch_mult) - 1)
    register_tokenizer(
        _name,
        weights={"hub": Checkpoint({"model": HubFile("ZechenBai/FQGAN", _file)},
                                   single_file(_converter(_cfg.variant, _grid)), license="CC BY-NC 4.0",
                                   published={"rfid": _rfid, "dataset": "ImageNet val, 256x256", "source": _README})},
        description=f"FQGAN {_cfg.variant}: {len(BRANCHES[_cfg.variant])} sub-codebooks of 16384, "
                    f"{_grid}x{_grid} positions at 256 px (256 px only)",
    )(lambda _c=_cfg, **kw: FQGAN(replace(_c, **kw)))

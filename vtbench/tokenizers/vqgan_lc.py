"""VQGAN-LC (Zhu et al. 2024): a taming VQGAN whose 100,000-entry codebook is frozen CLIP features, mapped to
the quantizer's space by one trained linear ``codebook_projection``. Module names as in zh460045050/VQGAN-LC
``vqgan-gpt-lc/models/models_vq.py`` (generator only), so the released files load strictly once the
training-only ``perceptual_loss.*`` and ``discriminator.*`` entries are dropped.

Encoding: taming encoder, 1x1 ``quant_conv`` to ``embed_dim`` (8 at f16, 4 at f8), then the nearest row of
``codebook_projection(tok_embeddings.weight)`` by squared l2 (``|z|^2 + |e|^2 - 2 z.e``). The projected codebook
is computed once per load (and again only if the weights change), and the lookup works through row chunks
under `vtbench.quantizers.vq.LOOKUP_BUDGET_BYTES`, so a batch never holds an (N x 100,000) distance matrix.
Decoding from indices takes rows of the projected codebook, as the official GPT stage (``models_gpt.py``)
does (the model's own ``decode_code`` calls a method that does not exist). Inputs in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers.base import channels_first, channels_last
from ..quantizers.vq import lookup_neighbours, nearest
from .base import Tokenizer, TokenizerInfo
from .pretrained import register_architecture
from .registry import register_tokenizer
from .taming import TAMING_CONFIGS, Decoder, Encoder, TamingConfig
from .tokens import Tokens
from .weights import Checkpoint, ManualFile, WeightsMismatch, single_file

PAPER = "https://arxiv.org/abs/2406.11837"
CODE = "https://github.com/zh460045050/VQGAN-LC"
RELEASE = "https://drive.google.com/drive/folders/12824gtaR_upGH1DJRNfAjQFiw8c1FmwJ"
TRAINING_ONLY = ("perceptual_loss.", "discriminator.")


@dataclass(frozen=True)
class VQGANLCConfig:
    taming: TamingConfig = TAMING_CONFIGS["vqgan-lc-f16"]
    embed_dim: int = 8
    codebook_size: int = 100_000
    feature_dim: int = 768  # CLIP ViT-L/14 features
    resolution: int = 256

    def __post_init__(self):
        if isinstance(self.taming, dict):  # read back from config.json
            object.__setattr__(self, "taming", TamingConfig(**self.taming))


class VQGANLC(Tokenizer):
    def __init__(self, cfg: VQGANLCConfig = VQGANLCConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg.taming)
        self.decoder = Decoder(cfg.taming)
        self.tok_embeddings = nn.Embedding(cfg.codebook_size, cfg.feature_dim).requires_grad_(False)
        self.codebook_projection = nn.Linear(cfg.feature_dim, cfg.embed_dim)
        self.quant_conv = nn.Conv2d(cfg.taming.z_channels, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.taming.z_channels, 1)
        self._cache: tuple[tuple, torch.Tensor] | None = None
        f = cfg.taming.downsample_factor
        self.info = TokenizerInfo(
            family="vqgan-lc", kind="index", resolution=cfg.resolution, downsample=f,
            vocab_sizes=(cfg.codebook_size,), tokens_per_image=(cfg.resolution // f) ** 2, paper=PAPER, code=CODE,
            license="see the official repository (no licence file)", input_range="minus_one_one",
            notes=f"{cfg.codebook_size:,} frozen CLIP-feature codes projected to dim {cfg.embed_dim}, l2 lookup",
        )

    def codebook(self) -> torch.Tensor:
        """``codebook_projection(tok_embeddings.weight)`` in float32: computed once and reused while the weights
        stay the same (recomputed, with gradients, whenever the projection is being trained)."""
        w, proj = self.tok_embeddings.weight, self.codebook_projection
        with torch.autocast(w.device.type, enabled=False):
            if torch.is_grad_enabled() and any(p.requires_grad for p in (w, proj.weight, proj.bias)):
                return proj(w.float())
            key = tuple((t.data_ptr(), _version(t), t.device, t.dtype) for t in (w, proj.weight, proj.bias))
            if self._cache is None or self._cache[0] != key:
                with torch.no_grad():
                    self._cache = (key, proj.float()(w.float()) if w.dtype != torch.float32 else proj(w))
            return self._cache[1]

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last float32 features in the codebook's space."""
        return channels_last(self.quant_conv(self.encoder(x))).float()

    def _encode(self, x):
        z = self._features(x)
        with torch.autocast(z.device.type, enabled=False):
            idx = nearest(z.reshape(-1, z.shape[-1]), self.codebook()).view(z.shape[:-1])
        return Tokens.from_indices(idx, "index", self.info.vocab_sizes)

    def _neighbours(self, x, k):
        z = self._features(x)
        with torch.autocast(z.device.type, enabled=False):
            cand = lookup_neighbours(z, self.codebook(), k)
        return Tokens.from_indices(cand[..., 0], "index", self.info.vocab_sizes), [cand]

    def _decode(self, tokens):
        return self.decoder(self.post_quant_conv(channels_first(F.embedding(tokens.indices, self.codebook()))))


def _version(t: torch.Tensor) -> int:
    """In-place changes bump a tensor's version; tensors made under inference mode have none to bump."""
    return -1 if t.is_inference() else t._version


def _converter(embed_dim: int):
    """``['state_dict']`` (``['model']`` in the official "last" checkpoints) minus the training-only
    LPIPS network and discriminator. A file of the other released variant is named as such."""

    def convert(state: dict) -> dict:
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
        proj = state.get("codebook_projection.weight")
        if proj is not None and proj.shape[0] != embed_dim:
            other = next((n for n, (c, _, _) in VARIANTS.items() if c.embed_dim == proj.shape[0]), None)
            raise WeightsMismatch(f"this VQGAN-LC checkpoint projects its codebook to dim {proj.shape[0]}; the entry's "
                                  f"is {embed_dim}" + (f": use {other} for it" if other else ""))
        return {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY)}

    return convert


register_architecture("vqgan-lc", VQGANLCConfig)(VQGANLC)

#: the released ImageNet models: name -> (config, file, rFID on ImageNet val 256 from the README)
VARIANTS = {
    "vqgan-lc-f16": (VQGANLCConfig(), "vqgan-lc-100K-f16-dim8.pth", 2.62),
    "vqgan-lc-f8": (VQGANLCConfig(taming=TAMING_CONFIGS["vqgan-lc-f8"], embed_dim=4), "vqgan-lc-100K-f8-dim4.pth",
                    1.29),
}
for _name, (_cfg, _file, _rfid) in VARIANTS.items():
    _side = 256 // _cfg.taming.downsample_factor
    register_tokenizer(
        _name,
        weights={"release": Checkpoint({"model": ManualFile(_file, RELEASE)}, single_file(_converter(_cfg.embed_dim)),
                                       published={"rfid": _rfid, "dataset": "ImageNet val, 256x256",
                                                  "source": f"{CODE}#readme"})},
        description=f"VQGAN-LC: 100,000 frozen CLIP-feature codes (projected to dim {_cfg.embed_dim}), "
                    f"{_side}x{_side} tokens at 256 px",
    )(lambda _c=_cfg, **kw: VQGANLC(replace(_c, **kw)))

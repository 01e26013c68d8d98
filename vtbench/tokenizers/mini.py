"""The mini-zoo: one small conv backbone, one quantizer per family, trained by `vtbench train`.

Every family shares the same encoder and decoder (f=8: a pixel-unshuffle stem by 4, one stride-2
stage, residual blocks) and differs only in the bottleneck: a 1x1 conv into the quantizer's space, the
quantizer, a 1x1 conv back. Same data, steps, seed and losses for all, so the comparison is controlled.
Conv tokenizers run at any resolution; they are trained on small crops and evaluated at 256 px.
The two 1D families (TiTok, FlexTok; `mini1d`) are small ViTs at a fixed 256 px, trained on 256 px crops
with the same data, steps, batch, seed and losses.

Trained weights ship inside the package (``vtbench/weights/mini-<family>/``: ``model.safetensors`` and
``config.json`` with the recipe, data manifest, seed and final losses) and are registered as
``mini-<family>``. These are small models trained for minutes on a CPU: they are here to compare
quantizer families under equal conditions and to give `vtbench run` real numbers offline, not to
stand in for the published tokenizers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from .. import quantizers as Q
from .base import Tokenizer, TokenizerInfo
from .layers import Downsample, ResnetBlock, Upsample
from .mini1d import Mini1DConfig, Mini1DTokenizer
from .pretrained import CONFIG_FILE, WEIGHTS_FILE, config_of, read_config, register_architecture
from .registry import register_tokenizer
from .tokens import Tokens
from .weights import PACKAGE_WEIGHTS, Checkpoint, PackageFile, resolve


@dataclass(frozen=True)
class MiniConfig:
    family: str
    quantizer: str  # a key of QUANTIZERS
    quantizer_args: dict = field(default_factory=dict)
    code_channels: int = 8  # channels the quantizer reads and writes (KL: the latent channels)
    width: int = 64
    groups: int = 16
    resolution: int = 256  # evaluation resolution
    paper: str = ""
    notes: str = ""


def _bottleneck_in(cfg: MiniConfig) -> int:
    return 2 * cfg.code_channels if cfg.quantizer == "kl" else cfg.code_channels


class MiniEncoder(nn.Module):
    def __init__(self, width: int, groups: int, out_channels: int):
        super().__init__()
        self.stem = nn.Sequential(nn.PixelUnshuffle(4), nn.Conv2d(48, width, 3, padding=1))
        self.blocks = nn.Sequential(
            ResnetBlock(width, width, groups), Downsample(width), ResnetBlock(width, 2 * width, groups),
            ResnetBlock(2 * width, 2 * width, groups))
        self.norm = nn.GroupNorm(groups, 2 * width, eps=1e-6)
        self.out = nn.Conv2d(2 * width, out_channels, 1)

    def forward(self, x):
        return self.out(torch.nn.functional.silu(self.norm(self.blocks(self.stem(x)))))


class MiniDecoder(nn.Module):
    def __init__(self, width: int, groups: int, in_channels: int):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, 2 * width, 3, padding=1)
        self.blocks = nn.Sequential(
            ResnetBlock(2 * width, 2 * width, groups), ResnetBlock(2 * width, width, groups), Upsample(width),
            ResnetBlock(width, width, groups))
        self.norm = nn.GroupNorm(groups, width, eps=1e-6)
        self.out = nn.Sequential(nn.Conv2d(width, 48, 3, padding=1), nn.PixelShuffle(4))

    def forward(self, z):
        return self.out(torch.nn.functional.silu(self.norm(self.blocks(self.inp(z)))))


def build_quantizer(cfg: MiniConfig | Mini1DConfig) -> Q.Quantizer:
    a = dict(cfg.quantizer_args)
    c = cfg.code_channels
    if cfg.quantizer == "vq":
        return Q.VectorQuantizer(c, **a)
    if cfg.quantizer == "vqgan-lc":
        return Q.FrozenCodebookVQ(torch.zeros(a.pop("codebook_size"), a.pop("feature_dim")), c, **a)
    if cfg.quantizer == "fq":
        return Q.FactorizedQuantizer(c, **a)
    if cfg.quantizer == "var":
        return Q.MultiScaleResidualVQ(c, **a)
    if cfg.quantizer == "lfq":
        return Q.LFQ(c, **a)
    if cfg.quantizer == "bsq":
        return Q.BSQ(c, **a)
    if cfg.quantizer == "msbsq":
        return Q.MultiScaleBSQ(c, **a)
    if cfg.quantizer == "fsq":
        return Q.FSQ(tuple(a["levels"]))
    if cfg.quantizer == "tokenbridge":
        return Q.DimensionWiseQuantizer(c, **a)
    if cfg.quantizer == "kl":
        return Q.DiagonalGaussian(**a)
    raise ValueError(f"unknown quantizer {cfg.quantizer!r}")


class MiniTokenizer(Tokenizer):
    def __init__(self, cfg: MiniConfig):
        super().__init__()
        self.cfg = cfg
        bottleneck = 2 * cfg.width
        self.encoder = MiniEncoder(cfg.width, cfg.groups, bottleneck)
        self.quant_conv = nn.Conv2d(bottleneck, _bottleneck_in(cfg), 1)
        self.quantizer = build_quantizer(cfg)
        self.post_quant_conv = nn.Conv2d(cfg.code_channels, bottleneck, 1)
        self.decoder = MiniDecoder(cfg.width, cfg.groups, bottleneck)
        q = self.quantizer
        side = cfg.resolution // 8
        positions = (sum(s * s for s in Q.scale_sides(side, q.schedule)) if q.multiscale else side * side)
        self.info = TokenizerInfo(
            family=cfg.family, kind=q.kind, resolution=cfg.resolution, downsample=8, vocab_sizes=q.vocab_sizes,
            tokens_per_image=positions, multiscale=q.multiscale,
            latent_channels=cfg.code_channels if q.kind == "continuous" else 0,
            paper=cfg.paper, code="vtbench (vtbench/tokenizers/mini.py)",
            license="Apache-2.0", input_range="minus_one_one",
            notes=cfg.notes or "vtbench mini-zoo: small model trained by `vtbench train` on a CPU",
        )

    def scale_shapes(self, height, width):
        if not self.quantizer.multiscale:
            return super().scale_shapes(height, width)
        return tuple((s, s) for s in Q.scale_sides(height // 8, self.quantizer.schedule))

    def check_size(self, height, width):
        super().check_size(height, width)
        if self.quantizer.multiscale and height != width:
            raise ValueError(f"{self._name()} is multi-scale and takes square images only, got {height}x{width}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: (reconstruction in [-1, 1] scale, quantizer loss)."""
        out = self.quantizer(self.quant_conv(self.encoder(x)))
        return self.decoder(self.post_quant_conv(out.z_q)), out.loss

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-quantization features (for post-training quantizers and codebook initialisation)."""
        return self.quant_conv(self.encoder(x))

    def _tokens(self, codes) -> Tokens:
        codes = codes if isinstance(codes, list) else [codes]
        return Tokens(tuple(codes), self.quantizer.kind, self.quantizer.vocab_sizes,
                      multiscale=self.quantizer.multiscale)

    def _encode(self, x):
        return self._tokens(self.quantizer(self.latents(x)).codes)

    def _neighbours(self, x, k):
        z = self.latents(x)
        cand = self.quantizer.neighbours(z, k)
        return self._tokens(self.quantizer(z).codes), cand if isinstance(cand, list) else [cand]

    def _decode(self, tokens):
        codes = list(tokens.scales) if tokens.multiscale else tokens.scales[0]
        return self.decoder(self.post_quant_conv(self.quantizer.dequantize(codes)))

    def _posterior(self, x):
        return Q.GaussianPosterior.from_moments(self.latents(x))

    def teacher_forcing_inputs(self, tokens: Tokens) -> torch.Tensor:
        if not self.info.multiscale:
            return super().teacher_forcing_inputs(tokens)
        self._check_tokens(tokens)
        return self.quantizer.teacher_forcing_inputs(list(tokens.scales))

    def next_scale_input(self, k, f_hat, codes, scale_shapes):
        if not self.info.multiscale:
            return super().next_scale_input(k, f_hat, codes, scale_shapes)
        return self.quantizer.next_scale_input(k, f_hat, codes, [s[0] for s in scale_shapes])


BITS = 12  # bits per f8 position, where a family allows choosing it (about 0.19 bpp)

FAMILIES: dict[str, MiniConfig | Mini1DConfig] = {c.family: c for c in (
    MiniConfig("kl", "kl", {"kl_weight": 1e-6}, code_channels=4,
               paper="https://arxiv.org/abs/2112.10752", notes="continuous reference line (4-channel latent)"),
    MiniConfig("tokenbridge", "tokenbridge", {"bits": 3}, code_channels=4,
               paper="https://arxiv.org/abs/2503.16430",
               notes="post-training dimension-wise quantization of mini-kl's latent, 3 bits per channel"),
    MiniConfig("vq", "vq", {"codebook_size": 2 ** BITS, "distance": "cosine"}, code_channels=8,
               paper="https://arxiv.org/abs/2406.06525", notes="4096 codes of dim 8, cosine lookup (LlamaGen style)"),
    MiniConfig("vqgan-lc", "vqgan-lc", {"codebook_size": 16384, "feature_dim": 192}, code_channels=8,
               paper="https://arxiv.org/abs/2406.11837",
               notes="16384 frozen codes from LPIPS-AlexNet conv2 features of training patches (centred, unit "
                     "norm, k-means), trainable linear projector"),
    MiniConfig("fqgan", "fq", {"factors": 2, "codebook_size": 64, "code_dim": 8}, code_channels=16,
               paper="https://arxiv.org/abs/2411.16681", notes="2 sub-codebooks of 64, disentanglement 0.1"),
    MiniConfig("var", "var", {"codebook_size": 2 ** BITS}, code_channels=8,
               paper="https://arxiv.org/abs/2404.02905", notes="VAR schedule, 4096 shared codes, 4 phi convs"),
    MiniConfig("lfq", "lfq", {}, code_channels=BITS, paper="https://arxiv.org/abs/2310.05737"),
    MiniConfig("bsq", "bsq", {}, code_channels=BITS, paper="https://arxiv.org/abs/2406.07548"),
    MiniConfig("infinity", "msbsq", {}, code_channels=BITS, paper="https://arxiv.org/abs/2412.04431",
               notes="multi-scale bitwise residual (Infinity schedule), 12 bits per position per scale"),
    MiniConfig("fsq", "fsq", {"levels": [8, 8, 8, 8]}, code_channels=4, paper="https://arxiv.org/abs/2309.15505"),
    Mini1DConfig("titok", "vq", {"codebook_size": 2 ** BITS, "distance": "cosine"}, code_channels=12,
                 paper="https://arxiv.org/abs/2406.07550",
                 notes="1D: ViT (patch 16, width 128, 4+4 blocks) reads 256 px into 128 tokens; 4096 codes of dim "
                       "12, cosine lookup (TiTok-S-128's quantizer)"),
    Mini1DConfig("flextok", "fsq", {"levels": [8, 8, 8, 8]}, code_channels=4, ordered=True,
                 paper="https://arxiv.org/abs/2502.13967",
                 notes="1D, ordered: causal register mask + nested dropout, any prefix of the 128 tokens decodes; "
                       "FSQ 8^4; deterministic ViT decoder instead of FlexTok's rectified flow"),
)}
FLEXTOK_PREFIXES = (32, 8)  # extra leaderboard entries: mini-flextok decoded from its first k tokens only
#: what a family's shipped weights cannot show; the leaderboard marks their rows and prints this under the table
CAVEATS = {family: "undertrained: a 1D ViT trained for about ten thousand batch-16 steps on a CPU (TiTok's own "
                   "recipe: 1M steps at batch 256) reproduces each image's colours and texture but little of its "
                   "layout, and loses to the bicubic baseline with the same bits on PSNR and SSIM; not a result about "
                   "the design (README, The mini-zoo)"
           for family in ("titok", "flextok")}


def build(cfg: MiniConfig | Mini1DConfig, keep_tokens: int | None = None) -> Tokenizer:
    """The mini tokenizer a config describes (random weights)."""
    if isinstance(cfg, Mini1DConfig):
        return Mini1DTokenizer(cfg, build_quantizer(cfg), keep_tokens)
    return MiniTokenizer(cfg)


def weights_dir(family: str):
    return PACKAGE_WEIGHTS / f"mini-{family}"


def load_config(family: str) -> MiniConfig | Mini1DConfig:
    """The shipped config (verified against its pinned sha256) when the family has been trained, else the
    code's default."""
    rel = f"mini-{family}/{CONFIG_FILE}"
    if not (PACKAGE_WEIGHTS / rel).is_file():
        return FAMILIES[family]
    path, _ = resolve(PackageFile(rel, SHIPPED_SHA256.get(rel)))
    return config_of(read_config(path.parent))


register_architecture("vtbench-mini", MiniConfig)(MiniTokenizer)
register_architecture("vtbench-mini1d", Mini1DConfig)(build)


def _register(family: str, keep_tokens: int | None = None) -> None:
    cfg = FAMILIES[family]
    what = cfg.notes or cfg.quantizer
    if keep_tokens:
        what = f"the first {keep_tokens} of mini-{family}'s {cfg.num_latent_tokens} tokens"
    rel = f"mini-{family}/{WEIGHTS_FILE}"
    register_tokenizer(
        f"mini-{family}" + (f"-k{keep_tokens}" if keep_tokens else ""),
        weights={"vtbench": Checkpoint({"model": PackageFile(rel, SHIPPED_SHA256.get(rel))}, license="Apache-2.0")},
        description=f"vtbench mini-zoo ({family}): {what}",
    )(lambda **config: _shipped(family, keep_tokens, **config))


def _shipped(family: str, keep_tokens: int | None, **config) -> Tokenizer:
    tok = build(replace(load_config(family), **config), keep_tokens)
    if family in CAVEATS:
        tok.info = replace(tok.info, caveat=CAVEATS[family])
    return tok


#: sha256 of every file shipped in vtbench/weights (checked on every load; `vtbench train` output must be
#: pinned here before it ships)
SHIPPED_SHA256 = {
    "mini-bsq/config.json": "2bd87a37ba4fe33527449818f7706283853dba33ddd754cf9397ac1853280f9e",
    "mini-bsq/model.safetensors": "9dd875b15a9133ec6cd2ea162e1e4a662722bb12b0b679448512cfb1be9b341e",
    "mini-flextok/config.json": "45e31ed81f2b1dfd51aee7bddea5664ed170cbc904a991ce528d9fdc3dccc7db",
    "mini-flextok/model.safetensors": "6aca37a7938b777653350f0422387c6d4e2195fe9f975d874338a854448dd396",
    "mini-fqgan/config.json": "f13626ad88c7d0043370a9e2e69aa6b220ac3e2ce9485f1b539b458d470fc486",
    "mini-fqgan/model.safetensors": "282ff365bb6f0bffaf2b4af8c5d0b07139f3b8cc09c072a9c650e1138744bd92",
    "mini-fsq/config.json": "6bb6c64c49a32ca789b14e9591eecfde54bb3d4aec94d9a3d4ffde9b9d602e05",
    "mini-fsq/model.safetensors": "d024d7d27e8a4d93a3a5e8ac18b7311ea76b97fe0a725fd6106f89947897b664",
    "mini-infinity/config.json": "8001298e9054ce4550f83ecd5a8d9be80ac9f48ea7040c000b1ac26c26e8fb1b",
    "mini-infinity/model.safetensors": "c6bf8a79dea27be3e313b4d5451d989d8daca04eb50b8e97fa2669156f4af143",
    "mini-kl/config.json": "6594faba8f5a379a1ef6b7b4df9b81eca6fa84fc5a71cd8b6c9d5e76783e2edd",
    "mini-kl/model.safetensors": "3313f70dcb27e339940fbcbd63bb87ce1184854b417d4ef037a87ca877f94757",
    "mini-lfq/config.json": "0f1c75660235774e90d9328cd600a1421ca5fd4b43ee3bc2e9a45ba0d38fa974",
    "mini-lfq/model.safetensors": "c6c72142890e0a881002d03b1c04113826e90405f1447edc10876e1e9f5a31ee",
    "mini-titok/config.json": "85e3236da2de2935764e1650a6e7184310230cec8a6adca7edc2be7470ff29f8",
    "mini-titok/model.safetensors": "1f81649059a909ad053118f93319eaf225f76325e170d9d0734e515f0f5d2f75",
    "mini-tokenbridge/config.json": "8e4ba25b51e81d0ff2e7b8ee1c5102acd8167348a46665062fab8e338c611b40",
    "mini-tokenbridge/model.safetensors": "f962f4c05171afbf5a4d85505cee9d3302bdc851fd0e1d8073559f31792cf18e",
    "mini-var/config.json": "a99ea06ca0db9c0d8a74550829fe7da0ae28a6b471eaa96cede10c1150fb0df5",
    "mini-var/model.safetensors": "4330b9a353cd711b0df150ddbe93308d93f6cc08e4bb9d7c28dbf739c5af0d72",
    "mini-vq/config.json": "49f784db558095a32eb8bce8e53d2777741a2f470579b47cfd6aeb02fafa0ced",
    "mini-vq/model.safetensors": "0aa981360bd80f8065db157fa129595485866cedacf0e338b725a5adb0a8eb0b",
    "mini-vqgan-lc/config.json": "92bed9a8eaebdb916c00ad2f2484819e631ff2914eb6ed667990940e749c6ac8",
    "mini-vqgan-lc/model.safetensors": "c0caa48d1988484cd170799610810bbd7474661cdf32b6a86192c225fa3c6d67",
}

for _family in FAMILIES:
    _register(_family)
for _k in FLEXTOK_PREFIXES:
    _register("flextok", _k)

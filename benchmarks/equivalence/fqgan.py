"""Forward equivalence of `fqgan-{dual,triple}-{16,8}` with FQGAN's official tokenizers (showlab/FQGAN,
``tokenizer/vq_model_dual.py`` and ``tokenizer/vq_model_triple.py``).

    git clone https://github.com/showlab/FQGAN /tmp/official/fqgan   # or unpack its archive, anywhere outside
    pip install --target /tmp/offdeps_fq einops                       # what the official model file imports
    python benchmarks/equivalence/fqgan.py --official /tmp/official/fqgan --deps /tmp/offdeps_fq \
        [--variants dual-16 triple-8 ...]                             # default: all four

Each official model is built as released (``VQ_16`` / ``VQ_8`` with ``with_clip_supervision=True``, so the
saved file holds the training-only ``feat_pred_head`` / ``*_sem_feat_pred`` heads the converter must drop)
and gets `common.fill_deterministic` weights; every sub-codebook (visual, semantic, or visual, mid- and
high-level semantic) is then drawn from that branch's own l2-normalised pre-quantization features of the
photos, so the cosine lookups make real choices. The state dict is saved as ``{"model": sd}``, as in the
released files, and loaded by vtbench with ``weights=PATH``. On astronaut and coffee at 256 px it compares
every branch's indices (official ``encode``), the images decoded from the official indices (official
``decode_code``) and the full reconstructions (official ``forward``).
Nothing is stubbed: the official model files import only torch and einops, and the feature-prediction
heads are plain modules (the CLIP/DINO teachers live in the training scripts, not in these classes).
Exits 1 when fewer than 99% of a branch's indices agree or an image differs by more than 1e-3.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    agreement,
    codebook_from_features,
    fill_deterministic,
    max_diff,
    parse_args,
    photos,
    print_header,
)

from vtbench.tokenizers import load_tokenizer

TOLERANCE = 1e-3
CODEBOOK_SIZE = 16384
VARIANTS = ("dual-16", "triple-16", "dual-8", "triple-8")
#: branches in vtbench's token order (the decoder's concatenation order) ...
TOKEN_ORDER = {"dual": ("vis", "sem"), "triple": ("vis", "sem_mid", "sem_high")}
#: ... and in the order the official encoder returns them and ``decode_code`` takes them
OFFICIAL_ORDER = {"dual": ("sem", "vis"), "triple": ("vis", "sem_mid", "sem_high")}


def official_model(kind: str, downsample: int):
    module = __import__(f"tokenizer.vq_model_{kind}", fromlist=["VQ_models"])
    with contextlib.redirect_stdout(io.StringIO()):  # the constructor prints its configuration
        model = module.VQ_models[f"VQ-{downsample}"](with_clip_supervision=True)
    return model.eval()


def set_codebooks(official, kind: str, x: torch.Tensor) -> None:
    """Each branch's codebook from its own l2-normalised features just before the lookup."""
    for seed, (branch, h) in enumerate(zip(OFFICIAL_ORDER[kind], official.encoder(x))):
        z = getattr(official, f"quant_conv_{branch}")(h)
        features = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=-1)
        getattr(official, f"quantize_{branch}").embedding.weight.copy_(
            codebook_from_features(features, CODEBOOK_SIZE, seed=seed))


def official_indices(official, kind: str, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    out = official.encode(x)
    k = len(OFFICIAL_ORDER[kind])
    b, c, h, w = out[0].shape
    return {br: info[2].reshape(b, h, w) for br, info in zip(OFFICIAL_ORDER[kind], out[k:])}, (b, c, h, w)


def check(variant: str, x: torch.Tensor) -> list[bool]:
    kind, downsample = variant.split("-")
    official = official_model(kind, int(downsample))
    fill_deterministic(official)
    set_codebooks(official, kind, x)
    idx, shape = official_indices(official, kind, x)
    used = ", ".join(f"{br} {idx[br].unique().numel()}" for br in TOKEN_ORDER[kind])
    print(f"fqgan-{variant}: distinct codes over both photos: {used} (of {x.shape[0] * shape[2] * shape[3]})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fqgan_{kind}_ds{downsample}.pt"
        torch.save({"model": official.state_dict()}, path)
        ours = load_tokenizer(f"fqgan-{variant}", weights=path)
    tokens = ours.encode(x)
    ok = [agreement(f"{variant} {br} indices", tokens.indices[..., i], idx[br]) >= 0.99
          for i, br in enumerate(TOKEN_ORDER[kind])]
    theirs = torch.stack([idx[br] for br in TOKEN_ORDER[kind]], dim=-1)
    decoded = official.decode_code(*(idx[br].reshape(-1) for br in OFFICIAL_ORDER[kind]),
                                   *[shape] * len(OFFICIAL_ORDER[kind]))
    ok.append(max_diff(f"{variant} decode(official idx)", ours.decode_indices(theirs), decoded) <= TOLERANCE)
    ok.append(max_diff(f"{variant} reconstruction", ours.decode(tokens), official(x)[0]) <= TOLERANCE)
    return ok


def main():
    args = parse_args(__doc__, lambda p: p.add_argument("--variants", nargs="+", choices=VARIANTS,
                                                        default=list(VARIANTS)))
    if args.side != 256:
        raise SystemExit("FQGAN encodes 256x256 images only (its adapters have fixed positional embeddings)")
    print_header("FQGAN", args.official, "tokenizer/vq_model_dual.py")
    torch.set_grad_enabled(False)
    x = photos(side=256)
    ok = []
    for variant in args.variants:
        ok += check(variant, x)
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

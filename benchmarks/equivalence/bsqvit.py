"""Forward equivalence of `bsq-vit-b18` / `bsq-vit-b36` with the official BSQ-ViT (zhaoyue-zephyrus/bsq-vit,
``transcoder/models/bsqvit.py``).

    git clone https://github.com/zhaoyue-zephyrus/bsq-vit /tmp/official/bsqvit   # outside this repository
    pip install --target /tmp/deps_bsq einops timm omegaconf==2.3.0
    python benchmarks/equivalence/bsqvit.py --official /tmp/official/bsqvit --deps /tmp/deps_bsq --bits 18

(``--bits`` 18 or 36.) The official ``VITBSQModel`` is built from the released configuration
(``configs/tokenizer/imagenet_256x256_bsqvit_b{18g18,36g36}_stylegan_f8_fp16.yaml``, ``clamp_range`` (-1, 1) as
``main_image_tokenizer.py`` sets it for ``zero_mean`` data), gets `common.fill_deterministic` weights and is saved
as a training checkpoint is: ``ema_state_dict`` (``module.module.`` names) holding those weights, ``state_dict``
(``module.``) holding them negated (so a converter that took the raw weights would fail the check), an AdamW
state, ``iter``, the OmegaConf ``config``, an argparse ``args`` and a numpy ``best_fid``; vtbench loads that file
with ``weights=PATH`` (nothing of the official code or of omegaconf is imported by that load). On astronaut and
coffee at 256 px (in [-1, 1], the official ``Normalize(0.5, 0.5)``) it compares: the bits (signs of the official
``encode``), the joint ids (vtbench's int64, channel 0 most significant, against the official
``codes_to_indexes`` of the official signs taken in float64; the official ``encode`` returns them summed in
float32, which the script prints too: exact to 24 bits only), the images decoded from the official ids
(``get_codebook_entry`` then ``decode``, clamped as the official ``forward`` clamps; fed to vtbench as the
``(B, 32, 32)`` id map) and the full reconstructions (official ``forward``).
Nothing is stubbed: the model imports only einops and timm (the LPIPS and discriminator of the loss are not built).
Exits 1 when fewer than 99.9% of the bits or ids agree or an image differs by more than 1e-4.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import agreement, fill_deterministic, max_diff, parse_args, photos, print_header

from vtbench.tokenizers import load_tokenizer

TOLERANCE = 1e-4


def build_official(repo: Path, bits: int):
    from omegaconf import OmegaConf
    from transcoder.models.bsqvit import VITBSQModel

    config = OmegaConf.load(repo / f"configs/tokenizer/imagenet_256x256_bsqvit_b{bits}g{bits}_stylegan_f8_fp16.yaml")
    config.model.params.clamp_range = (-1, 1) if config.data.zero_mean else (0, 1)
    model = VITBSQModel(**config.model.params).eval()
    fill_deterministic(model)
    return model, config


def save_release(path: Path, model, config) -> None:
    """The official training checkpoint's layout (``main_image_tokenizer.py``), with an EMA."""
    state = model.state_dict()
    torch.save({
        "iter": 1000,
        "state_dict": {f"module.{k}": -v if v.is_floating_point() else v for k, v in state.items()},
        "ema_state_dict": {f"module.module.{k}": v for k, v in state.items()},
        "optimizer_generator": torch.optim.AdamW(model.parameters(), lr=4e-7).state_dict(),
        "config": config,
        "args": argparse.Namespace(config="imagenet_256x256_bsqvit.yaml", use_ema=True, ema_decay=0.999, gpu=0),
        "best_fid": np.float64(1.5),
    }, path)


def main():
    args = parse_args(__doc__, lambda p: p.add_argument("--bits", type=int, default=18, choices=(18, 36)))
    start = time.time()
    print_header("BSQ-ViT", args.official, "transcoder/models/bsqvit.py")
    torch.set_grad_enabled(False)
    official, config = build_official(args.official, args.bits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bsqvit_b{args.bits}.pt"
        save_release(path, official, config)
        ours = load_tokenizer(f"bsq-vit-b{args.bits}", weights=path)
    x = photos(side=args.side)
    n, side = len(x), args.side // 8

    quant, _, info = official.encode(x)  # (B, L, d) straight-through codes times 1/sqrt(d)
    signs = torch.where(quant > 0, 1.0, -1.0)
    official_ids = official.quantize.codes_to_indexes(signs.double()).reshape(n, side, side)
    tokens = ours.encode(x)
    ok = [agreement("bits", tokens.scales[0], (signs > 0).reshape(n, side, side, -1)) >= 0.999,
          agreement("ids (int64, MSB first)", tokens.joint_ids(), official_ids) >= 0.999]
    agreement("  official float32 ids", tokens.joint_ids(), info["indices"])
    print(f"{'':<28} {tokens.joint_ids().unique().numel()} distinct ids of {tokens.joint_ids().numel()}")

    theirs = official.decode(official.quantize.get_codebook_entry(official_ids.flatten(1))).clamp(-1, 1)
    ok.append(max_diff("decode(official ids)", ours.decode_indices(official_ids), theirs) <= TOLERANCE)
    ok.append(max_diff("reconstruction", ours.decode(tokens), official(x)[0]) <= TOLERANCE)
    print(f"run time {time.time() - start:.0f} s")
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

"""Wall time of the evaluation pipeline itself: 100 images at 256 px, a tokenizer that does nothing,
PSNR + SSIM + LPIPS + rFID (the yardstick: VTBench's pipeline takes 67 s for this on a 2-core machine).

    python benchmarks/pipeline_speed.py [--images 100] [--batch-size 16]

Prints the time of a cold run (Inception features of the originals computed and cached) and of a warm
run (the same originals again, features read from the cache), with a per-stage breakdown.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vtbench.bench import builtin
from vtbench.bench.datasets import FolderDataset
from vtbench.bench.metrics import PSNR, SSIM
from vtbench.bench.perceptual import FID, LPIPS, FeatureCache
from vtbench.bench.runner import RunConfig, evaluate
from vtbench.bench.tasks import Task
from vtbench.tokenizers import Tokenizer, TokenizerInfo, Tokens
from vtbench.tokenizers.registry import LoadedWeights


class Identity(Tokenizer):
    """Returns its input: the pipeline's own cost, nothing else."""

    def __init__(self):
        super().__init__()
        self.info = TokenizerInfo(family="identity", kind="continuous", resolution=256, downsample=1,
                                  vocab_sizes=(), tokens_per_image=256 * 256)
        self.registry_name = self.label = "identity"
        self.loaded_weights = LoadedWeights("none", "none")

    def _encode(self, x):
        return Tokens.from_latents(x)

    def _decode(self, tokens):
        return tokens.latents


def make_images(folder: Path, n: int) -> None:
    """n distinct 256 px PNG crops of the builtin photographs at several scales."""
    rng = np.random.default_rng(0)
    photos = [np.asarray(builtin.skimage_photo(p)) for p in builtin.COLOUR_PHOTOS + builtin.GREY_PHOTOS[:2]]
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        Image.fromarray(photo[y:y + side, x:x + side]).resize((256, 256), Image.BICUBIC).save(folder / f"{i:04d}.png")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        make_images(tmp / "images", args.images)
        cache = FeatureCache(tmp / "features")
        LPIPS().per_image(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
        task = Task("speed", "all", lambda cfg: [PSNR(), SSIM(), LPIPS(), FID(cache)], "speed benchmark")
        tok = Identity()
        print(f"{args.images} images at 256 px, batch {args.batch_size}, {torch.get_num_threads()} threads")
        for label in ("cold (originals' features computed)", "warm (originals' features cached)"):
            start = time.perf_counter()
            result, _ = evaluate(tok, FolderDataset(tmp / "images"), task, tmp / "out",
                                 RunConfig(batch_size=args.batch_size, overwrite=True), progress=False)
            wall = time.perf_counter() - start
            m = result["metrics"]
            print(f"{label}: {wall:.1f} s  (psnr {m['psnr']['value']:.1f}, ssim {m['ssim']['value']:.4f}, "
                  f"lpips {m['lpips']['value']:.4f}, rfid {m['rfid']['value']:.3f})")


if __name__ == "__main__":
    main()

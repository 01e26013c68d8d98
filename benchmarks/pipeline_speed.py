"""Wall time of the evaluation pipeline itself: 100 and 400 distinct 256 px crops, a tokenizer that does
nothing, PSNR + SSIM + LPIPS + rFID/KID, against VTBench's own pipeline on the same task (36.3 s / 108.9 s
on a 2-core CPU).

    python benchmarks/pipeline_speed.py [--images 100 400] [--batch-size 16] [--networks]

Prints the time of an uncached run (Inception features of the originals computed and cached) and of a
cached one (the same originals again), with the ratio to VTBench's figure; ``--networks`` adds each metric
network's ceiling on this CPU (fp32, channels_last, bf16 autocast).
"""

from __future__ import annotations

import argparse
import functools
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
                                  vocab_sizes=(), tokens_per_image=256 * 256, latent_channels=3)
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


#: VTBench's own pipeline on the same crops, pass-through tokenizer, PSNR+SSIM+LPIPS+FID, 2-core CPU (issue #19)
VTBENCH_S = {100: 36.3, 400: 108.9}


def networks(batch: int = 16, reps: int = 3) -> None:
    """Each metric network's ceiling on this CPU: images/s of one forward pass over a batch of 256 px images
    (fp32; channels_last; bf16 autocast), the best of ``reps``."""
    from vtbench.bench.networks import inception_network, lpips_network

    x = torch.randint(0, 256, (batch, 3, 256, 256), dtype=torch.uint8)
    f = x.float() / 127.5 - 1
    nets = {"inception": (inception_network(), lambda n: n(x)), "lpips": (lpips_network(), lambda n: n(f, f)),
            "ssim": (None, lambda n: SSIM().per_image(x, x))}
    for name, (net, call) in nets.items():
        for mode in ("fp32", "channels_last", "bf16") if net is not None else ("fp32",):
            bf16 = mode == "bf16"
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
            if net is not None:
                net.to(memory_format=torch.channels_last if mode == "channels_last" else torch.contiguous_format)
            with torch.inference_mode(), ctx:
                call(net)
                best = min(_time(call, net) for _ in range(reps))
            print(f"  {name:10s} {mode:14s} {batch / best:7.1f} img/s ({1000 * best / batch:.1f} ms/img)")
        if net is not None:
            net.to(memory_format=torch.contiguous_format)


def _time(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def _metrics(cache, cfg, layout):
    return [PSNR(), SSIM(), LPIPS(), FID(cache)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, nargs="+", default=[100, 400])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--networks", action="store_true", help="also print each metric network's ceiling")
    args = ap.parse_args()
    print(f"{torch.get_num_threads()} threads, batch {args.batch_size}, 256 px, pass-through tokenizer, "
          "PSNR + SSIM + LPIPS + rFID/KID")
    for n in args.images:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "images").mkdir()
            make_images(tmp / "images", n)
            cache = FeatureCache(tmp / "features")
            blank = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
            LPIPS().per_image(blank, blank)  # loads the weights before the clock starts
            task = Task("speed", "all", functools.partial(_metrics, cache), "speed benchmark")
            tok = Identity()
            for label in ("uncached", "cached"):
                start = time.perf_counter()
                result, _ = evaluate(tok, FolderDataset(tmp / "images"), task, tmp / "out",
                                     RunConfig(batch_size=args.batch_size, overwrite=True), progress=False)
                wall = time.perf_counter() - start
                m = result["metrics"]
                ratio = f", {VTBENCH_S[n] / wall:.2f}x VTBench's {VTBENCH_S[n]} s" if n in VTBENCH_S else ""
                print(f"{n} images, {label:8s}: {wall:6.1f} s ({1000 * wall / n:.0f} ms/img{ratio}); psnr "
                      f"{m['psnr']['value']:.3f}, ssim {m['ssim']['value']:.5f}, lpips {m['lpips']['value']:.5f}, "
                      f"rfid {m['rfid']['value']:.4f} ({m['rfid']['extra']['form']} form), kid {m['kid']['value']:.5f}")
    if args.networks:
        print(f"metric networks, batch {args.batch_size}:")
        networks(args.batch_size)


if __name__ == "__main__":
    main()

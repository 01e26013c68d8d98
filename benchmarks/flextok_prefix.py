"""Reconstruction quality against the number of tokens kept: mini-flextok decoded from each prefix of its
ordered sequence, next to mini-titok (all 128 tokens; it cannot decode prefixes) and the bicubic
thumbnails that spend the same bits (f32 = 128 tokens, f64 = 32, f128 = 8 tokens of 12 bits).

    python benchmarks/flextok_prefix.py [--subset photos]

Builtin images at 256 px; PSNR (dB, higher is better) and LPIPS-AlexNet (lower is better), means over images.
"""

from __future__ import annotations

import argparse

import torch

from vtbench.bench.datasets import BuiltinDataset, batches
from vtbench.bench.metrics import PSNR, to_uint8
from vtbench.bench.perceptual import LPIPS
from vtbench.tokenizers import load_tokenizer


def _scores(originals: torch.Tensor, decoded: torch.Tensor) -> tuple[float, float]:
    recon = to_uint8(decoded)
    return (PSNR().per_image(originals, recon).mean().item(), LPIPS().per_image(originals, recon).mean().item())


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subset", default="photos", choices=("photos", "detail", "text"))
    args = ap.parse_args()
    images = torch.cat([b.images for b in batches(BuiltinDataset().samples(args.subset), 256, 16, [])])
    x = images.float() / 127.5 - 1
    flextok, titok = load_tokenizer("mini-flextok").eval(), load_tokenizer("mini-titok").eval()
    tokens = flextok.encode(x)
    print(f"builtin/{args.subset}: {len(x)} images at 256 px\n")
    print("| tokenizer | tokens | bits/image | psnr | lpips |\n|---|---:|---:|---:|---:|")
    rows = []
    for k in (1, 2, 4, 8, 16, 32, 64, 128):
        prefix = tokens.map(lambda s, k=k: s[:, :k])
        rows.append((f"mini-flextok, first {k}", k, k * 12, *_scores(images, flextok.decode(prefix))))
    rows.append(("mini-titok", 128, 128 * 12, *_scores(images, titok.reconstruct(x))))
    for factor, k in ((128, 8), (64, 32), (32, 128)):
        baseline = load_tokenizer(f"bicubic-f{factor}")
        rows.append((f"bicubic-f{factor}", (256 // factor) ** 2, k * 12, *_scores(images, baseline.reconstruct(x))))
    for name, n, bits, psnr, lp in rows:
        print(f"| {name} | {n} | {bits} | {psnr:.2f} | {lp:.4f} |")


if __name__ == "__main__":
    main()

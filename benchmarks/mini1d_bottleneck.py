"""Why the 1D minis learn slowly: the same ViT with and without its latent-token bottleneck.

    python benchmarks/mini1d_bottleneck.py [--steps 400] [--threads 1] [--variants tokens,direct]

Both variants use mini-titok's blocks, shrunk to 64 px crops (patch 8, an 8x8 grid, 32 latent tokens), and
the training recipe's data, batch, optimizer and loss (`vtbench.train.training_loss`), seed 0:
- ``tokens``: mini-titok itself: the decoder sees only the 32 quantized latent tokens.
- ``direct``: no bottleneck: the decoder's grid positions read the encoder's patch outputs instead of mask
  tokens, so every position is handed its own patch.
It prints the training L1 over windows of 50 steps, next to the L1 of predicting each crop's mean colour on
the same batches. ``direct`` drops well below the mean-colour level within a few hundred steps; ``tokens``
stays above it: its latent tokens must first learn which region each reads, and the decoder which token each
position needs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from vtbench.bench.networks import lpips_network
from vtbench.tokenizers.mini import FAMILIES, build
from vtbench.train import TrainConfig, training_loss
from vtbench.training_data import TrainingImages

WINDOW = 50


class NoBottleneck(nn.Module):
    """mini-titok's encoder and decoder with the latent tokens taken out of the path."""

    def __init__(self, tok):
        super().__init__()
        self.tok = tok

    def forward(self, x):
        enc, dec = self.tok.encoder, self.tok.decoder
        patches = enc.patch_embed(x).flatten(2).transpose(1, 2)
        latent = self.tok.latent_tokens.expand(x.shape[0], -1, -1)
        grid = enc.run(patches, latent, enc.mask)[:, 1:1 + enc.grid ** 2]
        return dec.pixels(grid, torch.zeros_like(latent)), x.new_zeros(())


def run(variant: str, steps: int, cfg: TrainConfig) -> list[tuple[float, float]]:
    torch.manual_seed(cfg.seed)
    mcfg = replace(FAMILIES["titok"], resolution=64, patch_size=8, num_latent_tokens=32)
    tok = build(mcfg)
    model = (tok if variant == "tokens" else NoBottleneck(tok)).train()
    data = TrainingImages(cfg.manifest, seed=cfg.seed, synthetic=cfg.synthetic)
    perceptual = lpips_network("alex")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    rows, started = [], time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        x = data.batch(cfg.batch_size, 64)
        loss, l1, _, _ = training_loss(model, perceptual, x, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rows.append((l1.item(), (x - x.mean((2, 3), keepdim=True)).abs().mean().item()))
        if (step + 1) % WINDOW == 0:
            print(f"{variant} step {step + 1}: L1 {np.mean([r[0] for r in rows[-WINDOW:]]):.3f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="tokens,direct")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig()
    variants = args.variants.split(",")
    results = {v: run(v, args.steps, cfg) for v in variants}
    print("\n| steps | " + " | ".join(f"L1 {v}" for v in variants) + " | L1 of each crop's mean colour |")
    print("|---:|" + "---:|" * (len(variants) + 1))
    for end in range(WINDOW, args.steps + 1, WINDOW):
        window = slice(end - WINDOW, end)
        cells = [f"{np.mean([r[0] for r in results[v][window]]):.3f}" for v in variants]
        mean_colour = np.mean([r[1] for r in results[variants[0]][window]])
        print(f"| {end - WINDOW + 1}-{end} | " + " | ".join(cells) + f" | {mean_colour:.3f} |")


if __name__ == "__main__":
    main()

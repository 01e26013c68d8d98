"""Seconds per training step of a mini tokenizer in float32 and in bfloat16 autocast (`--precision bf16`).

    python benchmarks/train_step_speed.py [--tokenizer mini-titok] [--threads 2] [--steps 4]

One step = the training loss (`vtbench.train.training_loss`: forward, LPIPS, L1) and its backward pass on
a random batch of the recipe's size and crop; the first step of each precision is a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from vtbench.bench.networks import lpips_network
from vtbench.tokenizers.mini import FAMILIES, build
from vtbench.train import TrainConfig, _crop, training_loss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default="mini-titok")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mcfg = FAMILIES[args.tokenizer.removeprefix("mini-")]
    cfg = replace(TrainConfig(), crop=_crop(mcfg, None))
    model, perceptual = build(mcfg).train(), lpips_network("alex")
    x = torch.rand(cfg.batch_size, 3, cfg.crop, cfg.crop) * 2 - 1
    print(f"{args.tokenizer}: batch {cfg.batch_size} at {cfg.crop} px, {args.threads} threads")
    for precision in ("fp32", "bf16"):
        times = []
        for _ in range(args.steps + 1):
            start = time.perf_counter()
            training_loss(model, perceptual, x, replace(cfg, precision=precision))[0].backward()
            times.append(time.perf_counter() - start)
        print(f"{precision}: {sum(times[1:]) / args.steps:.2f} s/step")


if __name__ == "__main__":
    main()

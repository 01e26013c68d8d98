"""Codebook usage of the discrete mini tokenizers over many images, not just the 11 builtin photographs
(whose 11,264 tokens cannot touch most of a 16,384-code codebook).

    python benchmarks/codebook_usage.py [--images 512] [--tokenizers mini-vq,mini-vqgan-lc,...]

Images: random 256 px views from the training corpus (`data_manifests/mini-train.json`; seed 1, so not
the crops training drew). Usage = fraction of joint ids (a position's components packed into one id)
chosen at least once, entropy in bits, with the per-component `marginal_*` figures beside them (same
definitions as the leaderboard's `TokenStats`).
"""

from __future__ import annotations

import argparse

import torch

from vtbench.bench.metrics import EvalBatch, TokenStats, to_uint8
from vtbench.tokenizers import load_tokenizer
from vtbench.tokenizers.mini import FAMILIES
from vtbench.training_data import TrainingImages

DEFAULT = [f"mini-{f}" for f in FAMILIES if f != "kl"]


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--tokenizers", default=",".join(DEFAULT))
    args = ap.parse_args()
    data = TrainingImages(seed=1)
    views = [data.batch(args.batch_size, 256) for _ in range(-(-args.images // args.batch_size))]
    views = [(x, to_uint8(x)) for x in views]
    print(f"{sum(len(x) for x, _ in views)} training-corpus views at 256 px\n")
    print("| tokenizer | vocabulary | positions seen | joint usage | joint entropy (bits) | marginal usage | "
          "marginal entropy (bits) |\n|---|---:|---:|---:|---:|---:|---:|")
    for name in args.tokenizers.split(","):
        tok = load_tokenizer(name)
        stats = TokenStats()
        for x, u8 in views:
            stats.update(EvalBatch([""] * len(x), u8, u8, tok.encode(x), [{}] * len(x), 0.0, 0.0))
        out = stats.compute()
        vocab = "x".join(str(v) for v in sorted(set(tok.info.vocab_sizes))) + (
            f" ({len(tok.info.vocab_sizes)} components)" if len(tok.info.vocab_sizes) > 1 else "")
        joint = [f"{out[k].value:.4f}" if out[k].value is not None else "n/a"
                 for k in ("codebook_usage", "token_entropy", "marginal_codebook_usage", "marginal_entropy")]
        print(f"| {name} | {vocab} | {out['marginal_codebook_usage'].count} | {' | '.join(joint)} |")


if __name__ == "__main__":
    main()

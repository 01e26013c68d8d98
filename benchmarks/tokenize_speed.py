"""What `vtbench tokenize` adds to bare encoding: images/s of the same batches read, cropped and encoded
without writing anything, against a full `tokenize` run (storage conversion, shard files, progress).

    python benchmarks/tokenize_speed.py [--tokenizer mini-vq] [--images 256] [--resolution 256] [--batch-size 32]

The images are generated once into a temporary folder of two class folders (PNG, 320x384), so both passes
read and decode the same files. Each pass runs twice and the faster run counts (the first warms caches).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vtbench.bench.datasets import FolderDataset, batches, center_crop_adm
from vtbench.pretokenize import TokenizeConfig, make_views, tokenize
from vtbench.tokenizers import load_tokenizer


def make_folder(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        smooth = rng.random((41, 49, 3)).repeat(8, 0).repeat(8, 1)[:320, :384]
        Image.fromarray((255 * smooth).astype(np.uint8)).save(d / f"{i:05d}.png")


def bare_encode(tok, dataset, resolution: int, batch_size: int, augment: str) -> float:
    samples = dataset.samples("all")
    start = time.perf_counter()
    for batch in batches(samples, resolution, batch_size, [], crop=center_crop_adm):
        x = make_views(batch.images, augment, resolution).flatten(0, 1).float() / 127.5 - 1
        with torch.inference_mode():
            tokens = tok.encode(x)
        tokens.flat().cpu()
    return len(samples) / (time.perf_counter() - start)


def full_tokenize(tok, dataset, out: Path, cfg: TokenizeConfig) -> float:
    start = time.perf_counter()
    tokenize(tok, dataset, out, cfg, progress=False)
    return len(dataset.samples("all")) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="mini-vq")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--augment", default="flip")
    args = ap.parse_args()
    tok = load_tokenizer(args.tokenizer).eval()
    cfg = TokenizeConfig(augment=args.augment, resolution=args.resolution, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        make_folder(Path(tmp) / "data", args.images)
        dataset = FolderDataset(Path(tmp) / "data")
        bare = max(bare_encode(tok, dataset, args.resolution, args.batch_size, args.augment) for _ in range(2))
        full = max(full_tokenize(tok, dataset, Path(tmp) / f"out{i}", cfg) for i in range(2))
    print(f"{args.tokenizer}, {args.images} images at {args.resolution} px, augment {args.augment}, batch "
          f"{args.batch_size}, {torch.get_num_threads()} threads")
    print(f"bare encode (read, crop, encode)  {bare:8.2f} images/s")
    print(f"vtbench tokenize                  {full:8.2f} images/s")
    print(f"writer overhead                   {100 * (bare / full - 1):8.1f} %")


if __name__ == "__main__":
    main()

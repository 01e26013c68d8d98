"""Encode and decode throughput of full-size ports (random weights: the arithmetic is the same as with the
released files), and the peak memory of VQGAN-LC's 100,000-code lookup.

    python benchmarks/port_speed.py [--tokenizers var-vqvae,vqgan-lc-f16,...] [--batch-size 8]
    python benchmarks/port_speed.py --lookup-memory vqgan-lc-f16 [--batch-size 64]

Throughput: images/s of ``encode`` and of ``decode`` at 256 px on real photographs (the builtin set's
colour photos), after one warm-up batch, under ``torch.inference_mode()``.
Lookup memory: the rise in peak resident memory while the tokenizer's lookup codes one batch of encoder
features (the features themselves are made beforehand), against the size of the whole (N x codes) float32
distance matrix an unchunked lookup would hold; run it as its own process, since the peak is per process.
"""

from __future__ import annotations

import argparse
import resource
import time
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from vtbench.bench import builtin
from vtbench.quantizers.vq import LOOKUP_BUDGET_BYTES, nearest
from vtbench.tokenizers import load_tokenizer

PORTS = ["var-vqvae", "vqgan-lc-f16", "vqgan-lc-f8", "fqgan-dual-16", "fqgan-triple-16", "fqgan-dual-8",
         "fqgan-triple-8"]


def photos(n: int, side: int = 256) -> torch.Tensor:
    imgs = [np.asarray(builtin.skimage_photo(p).convert("RGB")) for p in builtin.COLOUR_PHOTOS]
    out = []
    for i in range(n):
        im = torch.from_numpy(imgs[i % len(imgs)].copy()).permute(2, 0, 1)[None].float()
        s = min(im.shape[-2:])
        out.append(F.interpolate(im[..., :s, :s], size=(side, side), mode="area"))
    return torch.cat(out) / 127.5 - 1


def _rate(fn, n: int, repeats: int = 2) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return n * repeats / (time.perf_counter() - start)


@torch.inference_mode()
def throughput(names: list[str], batch: int) -> None:
    x = photos(batch)
    print(f"{'tokenizer':<18}{'params':>9}{'encode img/s':>14}{'decode img/s':>14}  ({batch} images at 256 px, "
          f"{torch.get_num_threads()} threads)")
    for name in names:
        tok = load_tokenizer(f"{name}:random")
        tokens = tok.encode(x)
        enc = _rate(partial(tok.encode, x), batch)
        dec = _rate(partial(tok.decode, tokens), batch)
        print(f"{name:<18}{tok.num_parameters / 1e6:>8.1f}M{enc:>14.2f}{dec:>14.2f}")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@torch.inference_mode()
def lookup_memory(name: str, batch: int) -> None:
    tok = load_tokenizer(f"{name}:random")
    codebook = tok.codebook()
    side = tok.info.resolution // tok.info.downsample
    z = torch.randn(batch * side * side, codebook.shape[1])
    nearest(z[:10], codebook)  # kernels loaded, allocator warm
    before = _peak_mib()
    start = time.perf_counter()
    idx = nearest(z, codebook)
    seconds = time.perf_counter() - start
    rise = _peak_mib() - before
    whole = z.shape[0] * codebook.shape[0] * 4 / 2**20
    print(f"{name}: batch {batch} = {z.shape[0]} positions x {codebook.shape[0]} codes; lookup {seconds:.2f} s; "
          f"peak memory rose {rise:.0f} MiB (budget {LOOKUP_BUDGET_BYTES / 2**20:.0f} MiB; one whole distance "
          f"matrix would be {whole:.0f} MiB); codes in [{int(idx.min())}, {int(idx.max())}]")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizers", default=",".join(PORTS))
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lookup-memory", metavar="NAME", help="measure the lookup's peak memory of this entry")
    args = ap.parse_args()
    if args.lookup_memory:
        lookup_memory(args.lookup_memory, args.batch_size or 64)
    else:
        throughput(args.tokenizers.split(","), args.batch_size or 8)


if __name__ == "__main__":
    main()

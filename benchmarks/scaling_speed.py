"""`vtbench run` on 1,000 generated 256 px images with 1 and with 2 processes (torchrun), and the harness's
overhead over a bare encode+decode loop of a real-size tokenizer with random weights.

    python benchmarks/scaling_speed.py [--images 1000] [--tokenizer bicubic-f8] [--overhead llamagen-vq16:random]

The scaling runs use the reconstruction task (PSNR, SSIM, LPIPS, rFID/KID, token statistics) after one
untimed run has cached the originals' Inception features; each prints images/s. The overhead run times
``tok.encode``/``tok.decode`` alone on ``--overhead-images`` images, then the same images through
`evaluate` with PSNR and SSIM only (no metric network), and prints the difference per image.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _make_images():
    spec = importlib.util.spec_from_file_location("pipeline_speed", HERE / "pipeline_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_images


def run(folder: Path, out: Path, tokenizer: str, nproc: int, batch: int) -> float:
    cli = ["run", "--quiet", "--overwrite", "--tokenizer", tokenizer, "--dataset", str(folder),
           "--tasks", "reconstruction", "--batch-size", str(batch), "--out", str(out)]
    launcher = [sys.executable, "-m", "vtbench"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "vtbench"]
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    start = time.perf_counter()
    subprocess.run(launcher + cli, check=True, env=dict(os.environ, OMP_NUM_THREADS=threads),
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _psnr_ssim(cfg, layout):
    from vtbench.bench.metrics import PSNR, SSIM

    return [PSNR(), SSIM()]


def overhead(folder: Path, out: Path, spec: str, n: int, batch: int) -> None:
    from vtbench.bench.datasets import FolderDataset, batches
    from vtbench.bench.runner import RunConfig, evaluate
    from vtbench.bench.tasks import Task
    from vtbench.tokenizers import load_tokenizer

    tok = load_tokenizer(spec)
    samples = FolderDataset(folder).samples("all")[:n]
    images = torch.cat([b.images for b in batches(samples, tok.info.resolution, batch, [])])
    with torch.inference_mode():
        tok.decode(tok.encode(images[:1].float() / 127.5 - 1))  # warm-up
        start = time.perf_counter()
        for chunk in images.split(batch):
            tok.decode(tok.encode(chunk.float() / 127.5 - 1))
        bare = time.perf_counter() - start
    task = Task("reconstruction", "all", functools.partial(_psnr_ssim), "PSNR and SSIM only")
    start = time.perf_counter()
    evaluate(tok, FolderDataset(folder), task, out, RunConfig(batch_size=batch, limit=n, overwrite=True),
             progress=False)
    harness = time.perf_counter() - start
    print(f"{spec}: bare encode+decode {bare:.1f} s, vtbench run (PSNR+SSIM) {harness:.1f} s on {n} images: "
          f"overhead {1000 * (harness - bare) / n:.0f} ms/img ({100 * (harness - bare) / bare:.1f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--tokenizer", default="bicubic-f8")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--overhead", default="llamagen-vq16:random")
    ap.add_argument("--overhead-images", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        _make_images()(tmp / "images", args.images)
        run(tmp / "images", tmp / "warm", args.tokenizer, 1, args.batch_size)  # caches the originals' features
        print(f"{args.images} images, {args.tokenizer}, reconstruction task, features of the originals cached, "
              f"{os.cpu_count()} cores")
        for nproc in (1, 2):
            wall = run(tmp / "images", tmp / f"p{nproc}", args.tokenizer, nproc, args.batch_size)
            print(f"  {nproc} process{'es' if nproc > 1 else ''}: {wall:.1f} s, {args.images / wall:.2f} images/s")
        if args.overhead:
            overhead(tmp / "images", tmp / "overhead", args.overhead, args.overhead_images, args.batch_size)


if __name__ == "__main__":
    main()

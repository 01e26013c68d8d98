"""Shared parts of the forward-equivalence checks of the ports against the official code.

Each check builds the official model from the official repository (fetched and unpacked outside this
repository; never committed), fills it with weights by `fill_deterministic`, saves them in the released
file's format and loads that file through vtbench's entry with ``weights=PATH`` (so the converter and the
strict load are part of what is checked). Both models then code the same real photographs; the script
reports how many indices agree and the largest difference of the decoded images.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

PHOTOS = ("astronaut", "coffee")


def parse_args(doc: str, extra: Callable[[argparse.ArgumentParser], object] | None = None) -> argparse.Namespace:
    """--official, --deps and --side (the first two go on ``sys.path``); ``extra`` adds a script's own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True, type=Path, help="the unpacked official repository")
    p.add_argument("--deps", type=Path, help="a folder of extra packages the official code imports")
    p.add_argument("--side", type=int, default=256)
    if extra is not None:
        extra(p)
    args = p.parse_args()
    for path in (args.deps, args.official):
        if path is not None:
            sys.path.insert(0, str(path))
    return args


def print_header(family: str, repo: Path, key_file: str) -> None:
    """Which official code is compared: its git commit, or (an unpacked archive) the git blob id of its key
    file, which names that file's exact content in the official repository's history."""
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    if commit.strip():
        version = f"commit {commit.strip()}"
    else:
        data = (repo / key_file).read_bytes()
        version = f"{key_file} blob {hashlib.sha1(b'blob %d' % len(data) + bytes(1) + data).hexdigest()}"
    print(f"official {family} at {repo} ({version}); torch {torch.__version__}")


def photos(names=PHOTOS, side: int = 256) -> torch.Tensor:
    """scikit-image photographs, centre-cropped square and area-resized to ``side``, in [-1, 1]."""
    from vtbench.bench import builtin

    out = []
    for name in names:
        im = torch.from_numpy(np.array(builtin.skimage_photo(name).convert("RGB"))).permute(2, 0, 1)[None]
        h, w = im.shape[-2:]
        s = min(h, w)
        im = im[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].float()
        out.append(F.interpolate(im, size=(side, side), mode="area"))
    return torch.cat(out) / 127.5 - 1


def fill_deterministic(model: torch.nn.Module) -> None:
    """Fill every floating-point parameter and buffer from a generator seeded by its name: matrices and
    kernels ~ N(0, 1/fan_in), 1-d weights (norm scales) 1 + N(0, 0.1^2), biases and other 1-d tensors
    N(0, 0.1^2). Integer buffers are left alone."""
    with torch.no_grad():
        for name, t in list(model.state_dict(keep_vars=True).items()):
            if not t.is_floating_point():
                continue
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            noise = torch.randn(t.shape, generator=g, dtype=torch.float64)
            if t.dim() >= 2:
                value = noise / np.sqrt(t[0].numel())
            elif name.endswith("weight"):
                value = 1 + 0.1 * noise
            else:
                value = 0.1 * noise
            t.copy_(value.to(t.dtype))


def codebook_from_features(features: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """A (size, C) codebook of feature vectors (N, C) drawn at random, each scaled by U(0.2, 1.2) and
    jittered, so that lookups on these images have real, non-degenerate choices to make."""
    g = torch.Generator().manual_seed(seed)
    rows = features[torch.randint(len(features), (size,), generator=g)].double()
    scale = 0.2 + torch.rand(size, 1, generator=g, dtype=torch.float64)
    jitter = 0.1 * rows.std() * torch.randn(rows.shape, generator=g, dtype=torch.float64)
    return (rows * scale + jitter).float()


def agreement(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.reshape(-1).long(), theirs.reshape(-1).long()
    if ours.shape != theirs.shape:
        raise SystemExit(f"{name}: {ours.numel()} indices here, {theirs.numel()} in the official model")
    same = (ours == theirs).float().mean().item()
    print(f"{name:<28} {int((ours == theirs).sum())}/{ours.numel()} indices agree ({100 * same:.3f}%)")
    return same


def max_diff(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> float:
    d = (ours.float() - theirs.float()).abs().max().item()
    print(f"{name:<28} max |difference| {d:.3e} (shape {tuple(ours.shape)})")
    return d

"""The mini-zoo's training corpus: photographs from Debian wallpaper packages, plus rendered text and
procedural textures made with seeds and parameters that the builtin evaluation set does not use.

The photographs are listed in ``data_manifests/mini-train.json`` with the Debian package and version
they come from and a sha256 per file, so the corpus is reproducible (``apt-get install`` the packages,
then `TrainingImages` checks every hash). `build_manifest` writes that file from an installed system:
every image below the package folders, identical files counted once, the largest rendition of each
wallpaper kept. None of the builtin evaluation images (scikit-image's) are in it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .bench import builtin
from .bench.datasets import IMAGE_SUFFIXES, find_manifest
from .bench.image_files import read_image
from .common import sha256_file, write_atomic
from .errors import VtbenchError

PACKAGES = {"plasma-workspace-wallpapers": "/usr/share/wallpapers", "mate-backgrounds": "/usr/share/backgrounds/mate"}
SHORT_SIDE = 512  # photographs are kept in memory at this short side; crops then span 1/8 to 1/2 of it
SYNTHETIC_SEED = 10_000  # the builtin set uses seeds below 2000
MIX = {"photo": 0.7, "text": 0.15, "procedural": 0.15}


def _package_version(name: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "not installed"


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def build_manifest(path: Path) -> dict:
    """Scan the installed wallpaper packages and write the training manifest."""
    files = []
    for package, root in PACKAGES.items():
        groups: dict[Path, list[Path]] = {}
        for p in sorted(Path(root).rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and "screenshot" not in p.name:
                # KDE keeps renditions of one wallpaper in a folder; MATE names them Name_WxH.ext
                key = p.parent if "contents" in p.parts else p.parent / p.stem.split("_")[0]
                groups.setdefault(key, []).append(p)
        seen = set()
        for group in groups.values():
            best = max(group, key=lambda p: (_pixels(p), p.stat().st_size))
            digest = sha256_file(best)
            if digest not in seen:
                seen.add(digest)
                files.append({"path": str(best), "sha256": digest, "package": package})
    manifest = {
        "name": "mini-train",
        "kind": "training",
        "description": "photographs from Debian wallpaper packages (largest rendition of each, duplicates "
                       "removed); rendered text and procedural textures are generated on top",
        "packages": {p: _package_version(p) for p in PACKAGES},
        "install": "apt-get install " + " ".join(PACKAGES),
        "files": files,
    }
    write_atomic(path, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _fit_short_side(img: Image.Image, side: int) -> torch.Tensor:
    w, h = img.size
    s = side / min(w, h)
    img = img.convert("RGB").resize((max(side, round(w * s)), max(side, round(h * s))), Image.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()


def _text_image(rng: np.random.Generator, side: int = 256) -> Image.Image:
    size = int(rng.integers(10, 48))
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(255 - v if abs(255 - 2 * v) > 60 else (v + 128) % 256 for v in bg)
    img = Image.new("RGB", (side, side), bg)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=size)
    y = float(rng.integers(0, size))
    while y < side:
        words = " ".join(rng.choice(builtin.WORDS, size=int(rng.integers(2, 8))))
        draw.text((float(rng.integers(-size, side // 4)), y), words, font=font, fill=fg)
        y += size * float(rng.uniform(1.1, 1.8))
    return img


def _procedural_image(rng: np.random.Generator, side: int = 256) -> Image.Image:
    kind = rng.integers(0, 3)
    if kind == 0:
        return builtin.grating(side, float(rng.uniform(2.2, 12)), float(rng.uniform(0, 180)))
    if kind == 1:
        colours = tuple(tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
        return builtin.checkerboard(side, int(rng.integers(1, 9)), colours)
    seed = int(rng.integers(SYNTHETIC_SEED, 2 * SYNTHETIC_SEED))
    return builtin.noise_texture(side, seed, float(rng.uniform(0, 1.5)))


class TrainingImages:
    """Random training crops in [-1, 1] from the manifest's photographs and generated text/textures."""

    def __init__(self, manifest: str = "mini-train", seed: int = 0, synthetic: int = 200):
        path = find_manifest(manifest)
        if path is None:
            raise FileNotFoundError(f"no training manifest {manifest!r} in data_manifests/")
        self.manifest = json.loads(path.read_text())
        self.manifest_sha256 = sha256_file(path)
        self.photos = [self._load(f) for f in self.manifest["files"]]
        gen = np.random.default_rng(SYNTHETIC_SEED + seed)
        self.text = [_fit_short_side(_text_image(gen), 256) for _ in range(synthetic)]
        self.procedural = [_fit_short_side(_procedural_image(gen), 256) for _ in range(synthetic)]
        self.rng = np.random.default_rng(seed)

    def _load(self, entry: dict) -> torch.Tensor:
        p = Path(entry["path"])
        if not p.is_file():
            raise FileNotFoundError(f"training image {p} is missing: {self.manifest.get('install', '')}")
        if sha256_file(p) != entry["sha256"]:
            raise VtbenchError(f"training image {p} differs from the manifest (sha256); package version changed?")
        return _fit_short_side(read_image(p)[0], SHORT_SIDE)

    def describe(self) -> dict:
        return {"manifest": self.manifest["name"], "manifest_sha256": self.manifest_sha256,
                "packages": self.manifest.get("packages", {}), "photographs": len(self.photos),
                "generated_text": len(self.text), "generated_procedural": len(self.procedural), "mix": MIX}

    def batch(self, n: int, crop: int) -> torch.Tensor:
        """n random crops (random size, position, horizontal flip), resized to crop x crop, in [-1, 1]."""
        pools = {"photo": self.photos, "text": self.text, "procedural": self.procedural}
        out = []
        for _ in range(n):
            pool = pools[list(MIX)[self.rng.choice(len(MIX), p=list(MIX.values()))]]
            img = pool[self.rng.integers(len(pool))]
            h, w = img.shape[-2:]
            size = int(self.rng.integers(crop, max(crop + 1, min(h, w) // 2 + 1)))
            y, x = int(self.rng.integers(0, h - size + 1)), int(self.rng.integers(0, w - size + 1))
            patch = img[:, y:y + size, x:x + size].float()
            if size != crop:
                patch = F.interpolate(patch[None], size=(crop, crop), mode="bicubic", antialias=True)[0]
            if self.rng.random() < 0.5:
                patch = patch.flip(-1)
            out.append(patch)
        return (torch.stack(out) / 127.5 - 1).clamp(-1, 1)

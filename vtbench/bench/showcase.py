"""Reconstruction grids: a few images of every run kept small beside its result, assembled by the leaderboard.

A run keeps its first ``RunConfig.showcase`` images as a strip (``<task><key>.showcase.webp``, lossless): per image a
`VIEW`-px view of the whole reconstruction (area-resampled) and a `CROP`-px window at full resolution, the
window the original's detail is densest in (largest gradient energy, `crop_box`). The originals' strip, the
same for every tokenizer of a sample set, sits once per dataset, named by its content
(``<out>/<dataset>/_showcase/<sha256[:16]>.webp``). The result file records both names and hashes, so the
leaderboard, a pure function of the result files, checks what it reads. `grid` lays the strips out:
original | each tokenizer, the view above the crop (magnified `ZOOM` x, nearest neighbour).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..common import sha256_bytes, sha256_file, write_atomic

VIEW = 80  # px: the whole image, downsampled
CROP = 40  # px: a window at the evaluated resolution
ZOOM = 2  # the crop's magnification in grids
LABEL = 12  # px: the name strip above a grid cell
COLUMNS = 11  # cells per grid row (the original and ten tokenizers)
FOLDER = "_showcase"


def crop_box(original: torch.Tensor, size: int = CROP) -> tuple[int, int]:
    """(top, left) of the ``size`` x ``size`` window of ``original`` (uint8 C x H x W) with the largest
    gradient energy: the place where a reconstruction's losses show."""
    g = original.float().mean(0)
    energy = torch.zeros_like(g)
    energy[:, 1:] += (g[:, 1:] - g[:, :-1]) ** 2
    energy[1:, :] += (g[1:, :] - g[:-1, :]) ** 2
    size = min(size, *g.shape)
    step = max(1, size // 4)
    window = F.avg_pool2d(energy[None, None], size, stride=step)[0, 0]
    row, col = divmod(int(window.argmax()), window.shape[1])
    return row * step, col * step


def strip(images: torch.Tensor, boxes: list[tuple[int, int]]) -> np.ndarray:
    """The stored strip (H = VIEW, W = n * (VIEW + CROP), uint8 RGB) of images (uint8 N x C x H x W)."""
    views = F.interpolate(images.float(), size=(VIEW, VIEW), mode="area").round().clamp(0, 255).to(torch.uint8)
    out = np.zeros((VIEW, len(images) * (VIEW + CROP), 3), np.uint8)
    for i, (img, view, (top, left)) in enumerate(zip(images.cpu(), views.cpu(), boxes)):
        x = i * (VIEW + CROP)
        out[:, x:x + VIEW] = view.permute(1, 2, 0).numpy()
        crop = img[:, top:top + CROP, left:left + CROP].permute(1, 2, 0).numpy()
        out[:crop.shape[0], x + VIEW:x + VIEW + crop.shape[1]] = crop
    return out


def _encode(array: np.ndarray) -> bytes:
    """Lossless WebP: exact pixels, about a third smaller than PNG on photographs."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="WEBP", lossless=True, quality=100, method=6)
    return buf.getvalue()


def write(result_path: Path, ids: list[str], originals: torch.Tensor, recons: torch.Tensor) -> dict:
    """Write the strips of one run (``result_path``: its result file) and return the record its result keeps."""
    boxes = [crop_box(o) for o in originals]
    recon, original = _encode(strip(recons, boxes)), _encode(strip(originals, boxes))
    name = result_path.name[: -len(".json")] + ".showcase.webp"
    original_name = f"{sha256_bytes(original)[:16]}.webp"
    write_atomic(result_path.parent.parent / FOLDER / original_name, original)
    write_atomic(result_path.with_name(name), recon)
    return {"file": name, "sha256": sha256_bytes(recon), "originals": f"../{FOLDER}/{original_name}",
            "originals_sha256": sha256_bytes(original), "view": VIEW, "crop": CROP,
            "images": [{"id": i, "crop_top_left": list(b)} for i, b in zip(ids, boxes)]}


def stale(result_path: Path, record: dict | None) -> str:
    """Why a result's showcase (``record``) no longer stands: a strip missing, altered, or of another layout;
    '' when it stands or the result has none."""
    if not record:
        return ""
    if (record.get("view"), record.get("crop")) != (VIEW, CROP):
        return f"its showcase strips are {record.get('view')}/{record.get('crop')} px, now {VIEW}/{CROP} px"
    for key, digest in (("file", "sha256"), ("originals", "originals_sha256")):
        path = result_path.parent / record[key]
        if not path.is_file() or sha256_file(path) != record[digest]:
            return "its showcase images are missing or are not the ones it was written with"
    return ""


def read(result_path: Path, record: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(originals, reconstructions) strips of a result, None when they do not stand (`stale`)."""
    if stale(result_path, record):
        return None
    return tuple(np.asarray(Image.open(result_path.parent / record[k]).convert("RGB")) for k in ("originals", "file"))


def _cell(strip_: np.ndarray, i: int, label: str, outline: tuple[float, float, float] | None) -> Image.Image:
    """One grid cell: the label, the view (``outline``: top, left, side of a square to draw on it, in view
    pixels), the magnified crop."""
    x = i * (VIEW + CROP)
    cell = Image.new("RGB", (VIEW, LABEL + VIEW + CROP * ZOOM), "white")
    draw = ImageDraw.Draw(cell)
    while len(label) > 1 and draw.textlength(label) > VIEW - 2:  # a long name loses its end, marked "~"
        label = label[:-2] + "~"
    draw.text((1, 0), label, fill="black")
    view = Image.fromarray(strip_[:, x:x + VIEW])
    if outline is not None:
        top, left, side = outline
        ImageDraw.Draw(view).rectangle([left, top, left + side, top + side], outline=(255, 0, 0))
    cell.paste(view, (0, LABEL))
    crop = Image.fromarray(strip_[:CROP, x + VIEW:x + VIEW + CROP]).resize((CROP * ZOOM,) * 2, Image.NEAREST)
    cell.paste(crop, ((VIEW - CROP * ZOOM) // 2, LABEL + VIEW))
    return cell


def grid(originals: np.ndarray, columns: list[tuple[str, np.ndarray]], boxes: list[tuple[int, int]],
         resolution: int) -> Image.Image:
    """Every image of the strips, one block each: the original (the crop's window outlined), then each
    ``(name, strip)`` in order, `COLUMNS` cells per row."""
    scale = VIEW / resolution
    blocks = []
    for i, (top, left) in enumerate(boxes):
        cells = [_cell(originals, i, "original", (top * scale, left * scale, CROP * scale))]
        cells += [_cell(s, i, name, None) for name, s in columns]
        w, h = cells[0].width + 2, cells[0].height + 2
        block = Image.new("RGB", (min(len(cells), COLUMNS) * w, -(-len(cells) // COLUMNS) * h), "white")
        for k, c in enumerate(cells):
            block.paste(c, ((k % COLUMNS) * w, (k // COLUMNS) * h))
        blocks.append(block)
    out = Image.new("RGB", (max(b.width for b in blocks), sum(b.height + 8 for b in blocks)), "white")
    y = 0
    for b in blocks:
        out.paste(b, (0, y))
        y += b.height + 8
    return out

"""Datasets: the builtin set, a local folder of images, and manifests (hub datasets or folders).

Every dataset yields `Sample`s whose ``load(resolution)`` returns a PIL image (procedural images render
at the requested resolution; files are read as they are). `batches` turns samples into uint8 tensors
at the evaluation resolution (short side resized with antialiasing, centre crop), decodes in worker
threads, and reports and skips users' files that cannot be read or decoded instead of stopping the run
(`vtbench.bench.image_files` converts them to RGB); an error in the builtin set's own code stops it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from .._extras import require
from ..common import env_flag, sha256_bytes
from ..errors import VtbenchError
from . import builtin
from .image_files import UnreadableImage, decoded, read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
MANIFEST_DIRS = (Path(__file__).resolve().parents[2] / "data_manifests",
                 Path(sys.prefix) / "share" / "vtbench" / "data_manifests")


class DatasetUnavailable(VtbenchError, RuntimeError):
    """The dataset cannot be read here (missing files, no network for a hub dataset)."""


@dataclass(frozen=True)
class Sample:
    id: str
    load: Callable[[int], Image.Image]
    meta: dict = field(default_factory=dict)  # e.g. {"text": ground truth, "lang": "zh"}


@dataclass(frozen=True)
class Skipped:
    id: str
    reason: str


class Dataset:
    name: str
    description: str = ""
    default_tasks: tuple[str, ...] = ("reconstruction",)
    lang: str | None = None  # language of its text (a manifest's "lang"), in each sample's meta; None: English

    def samples(self, subset: str) -> list[Sample]:
        """Samples for a task's subset (``photos``, ``detail``, ``text``); datasets without subsets return all."""
        raise NotImplementedError

    def skipped(self) -> list[Skipped]:
        """Entries rejected before loading (e.g. non-image files in a folder)."""
        return []


# --- builtin --------------------------------------------------------------------------------------
class BuiltinDataset(Dataset):
    name = "builtin"
    description = ("scikit-image photographs, procedural fine detail, rendered text with ground truth, a font-size "
                   "ladder (offline)")
    default_tasks = ("reconstruction", "detail", "text", "pfid")

    def samples(self, subset: str) -> list[Sample]:
        if subset == "photos":
            return [Sample(f"photo/{n}", lambda r, n=n: builtin.skimage_photo(n), {"source": "scikit-image"})
                    for n in builtin.COLOUR_PHOTOS + builtin.GREY_PHOTOS]
        if subset == "detail":
            procedural = [Sample(f"detail/{n}", lambda r, fn=fn: fn(r), {"source": "procedural"})
                          for n, fn in builtin.PROCEDURAL.items()]
            textures = [Sample(f"texture/{n}", lambda r, n=n: builtin.skimage_photo(n), {"source": "scikit-image"})
                        for n in builtin.TEXTURE_PHOTOS]
            return procedural + textures
        if subset == "text":
            return [Sample(f"text/{i:02d}_s{size}_l{lines}", lambda r, i=i: _text_image(r, i), {"source": "rendered"})
                    for i, (size, lines, _) in enumerate(builtin.TEXT_LAYOUTS)]
        if subset == "ladder":
            return [Sample(f"ladder/{size:02d}px_{i}", lambda r, size=size, i=i: _ladder_image(r, size, i),
                           {"source": "rendered", "font_px": size})
                    for size in builtin.LADDER_SIZES for i in range(len(builtin.LADDER_STRINGS))]
        raise KeyError(f"builtin has no subset {subset!r}; it has photos, detail, text, ladder")


def _text_image(resolution: int, index: int) -> Image.Image:
    """Rendered text; its ground truth depends on the resolution, so it travels in ``img.info["text"]``."""
    img, truth = builtin.rendered_text(resolution, index)
    img.info["text"] = truth
    return img


def _ladder_image(resolution: int, size: int, index: int) -> Image.Image:
    """A font-size ladder image; its ground truth (the words that fit) travels in ``img.info["text"]``."""
    img, truth = builtin.ladder_text(resolution, size, index)
    img.info["text"] = truth
    return img


# --- local folders --------------------------------------------------------------------------------
def walk(root: Path) -> tuple[list[Path], list[Skipped]]:
    """Regular files below ``root`` (sorted; symlinks followed, each folder walked once) and every entry
    seen that is not one: dangling symlinks, symlink loops, unreadable folders, devices, sockets, pipes."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    walked = {root.resolve(): root}

    def rel(path: Path, folder: bool = False) -> str:
        return str(path.relative_to(root)) + ("/" if folder else "")

    def visit(folder: Path) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            skipped.append(Skipped(rel(folder, True), f"folder cannot be listed: {e.strerror or e}"))
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                mode = entry.stat().st_mode  # follows symlinks
            except OSError as e:
                skipped.append(Skipped(rel(path), _unreachable(path, e)))
                continue
            if stat.S_ISDIR(mode):
                real = path.resolve()
                if real in walked:
                    first = walked[real]
                    loop = first == root or first in path.parents
                    skipped.append(Skipped(rel(path, True), (
                        f"symlink loop: leads back to {rel(first, True) if first != root else 'the dataset root'}"
                        if loop else f"the same folder as {rel(first, True)}, which is walked instead")))
                else:
                    walked[real] = path
                    visit(path)
            elif stat.S_ISREG(mode):
                files.append(path)
            else:
                skipped.append(Skipped(rel(path), "not a regular file (a device, socket or pipe)"))

    visit(root)
    return files, skipped


def _unreachable(path: Path, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop: the link leads back to itself"
    if path.is_symlink() and isinstance(error, FileNotFoundError):
        return f"dangling symlink: its target {os.readlink(path)} does not exist"
    return f"cannot be read: {error.strerror or error}"


def _read_truth(path: Path, image: str) -> tuple[str | None, str]:
    """(ground-truth text, "") of a ``name.txt``, or (None, why it is not used)."""
    try:
        return path.read_text(encoding="utf-8-sig").strip(), ""
    except UnicodeDecodeError as e:
        why = f"is not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start})"
    except OSError as e:
        why = f"cannot be read ({e.strerror or e})"
    return None, (f"ground-truth text {why}: {image} is evaluated without it (text task: no cer/wer for it, "
                  "only OCR agreement with its original)")


def _tagged(image: tuple[Image.Image, bool]) -> Image.Image:
    """A user's decoded image whose ``info`` carries only what becomes sample meta (not the file's own
    text chunks, which would pass for ground truth)."""
    img, transposed = image
    img.info = {"exif_transposed": True} if transposed else {}
    return img


class FolderDataset(Dataset):
    """Every image file below a folder (sorted). ``name.txt`` beside ``name.png`` is its ground-truth text
    (UTF-8). Files that are not used (other files, unreadable ground truth, broken links) are `skipped`."""

    def __init__(self, root: str | os.PathLike, name: str | None = None):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetUnavailable(f"dataset folder {self.root} does not exist")
        self.name = name or f"folder:{self.root.resolve().name}"
        self.description = f"images under {self.root}"
        files, self._skipped = walk(self.root)
        self._images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        images = {p.with_suffix(""): p for p in self._images}
        self._truths: dict[Path, str] = {}
        for p in files:
            rel = str(p.relative_to(self.root))
            if p.suffix.lower() in IMAGE_SUFFIXES:
                continue
            if p.suffix == ".txt" and p.with_suffix("") in images:
                text, why = _read_truth(p, str(images[p.with_suffix("")].relative_to(self.root)))
                if text is None:
                    self._skipped.append(Skipped(rel, why))
                else:
                    self._truths[p.with_suffix("")] = text
            else:
                self._skipped.append(Skipped(rel, "not an image file (by extension)"))
        self._skipped.sort(key=lambda s: s.id)

    def samples(self, subset: str) -> list[Sample]:
        out = []
        for p in self._images:
            meta = {"source": str(p)}
            if p.with_suffix("") in self._truths:
                meta["text"] = self._truths[p.with_suffix("")]
            if self.lang:
                meta["lang"] = self.lang
            out.append(Sample(str(p.relative_to(self.root)), lambda r, p=p: _tagged(read_image(p)), meta))
        return out

    def skipped(self) -> list[Skipped]:
        return list(self._skipped)


# --- manifests ------------------------------------------------------------------------------------
def find_manifest(name: str) -> Path | None:
    p = Path(name)
    if p.suffix == ".json" and p.is_file():
        return p
    for d in MANIFEST_DIRS:
        if (d / f"{name}.json").is_file():
            return d / f"{name}.json"
    return None


def list_manifests() -> list[str]:
    names = set()
    for d in MANIFEST_DIRS:
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.json"))
    return sorted(names)


class HubDataset(Dataset):
    """A Hugging Face dataset named by a manifest: ``repo_id``, ``config``, ``split``, ``image_column``."""

    def __init__(self, manifest: dict):
        self.manifest = manifest
        self.name = manifest["name"]
        self.description = manifest.get("description", "")
        self.default_tasks = tuple(manifest.get("tasks", self.default_tasks))
        self.lang = manifest.get("lang")

    def _load(self):
        datasets = require("datasets", "bench", "loading a hub dataset")
        from ..tokenizers.weights import _hub_reachable

        m = self.manifest
        offline = env_flag("HF_DATASETS_OFFLINE")
        if not offline and not _hub_reachable():
            raise DatasetUnavailable(
                f"dataset {self.name} ({m['repo_id']}, config {m.get('config')}) needs the Hugging Face Hub, which "
                "cannot be reached from here. If it is in your datasets cache, set HF_DATASETS_OFFLINE=1; or save "
                "its images to a folder and pass --dataset /path/to/folder"
            )
        try:
            return datasets.load_dataset(m["repo_id"], m.get("config"), split=m.get("split", "train"),
                                         revision=m.get("revision"))
        except Exception as e:
            why = f"{type(e).__name__}: {e}"
            raise DatasetUnavailable(f"could not load {self.name} from {m['repo_id']}: {why}") from None

    def samples(self, subset: str) -> list[Sample]:
        ds = self._load()
        col, text_col = self.manifest.get("image_column", "image"), self.manifest.get("text_column")

        def load(i):
            return lambda r: _tagged(decoded(lambda: ds[i][col]))

        lang = {"lang": self.lang} if self.lang else {}
        texts = ds[text_col] if text_col else None  # the column alone: no image is decoded here
        return [Sample(f"{i:06d}", load(i), {"text": texts[i], **lang} if text_col else {**lang})
                for i in range(len(ds))]


def load_manifest(path: Path) -> Dataset:
    manifest = json.loads(path.read_text())
    kind = manifest.get("kind")
    if kind == "hf":
        return HubDataset(manifest)
    if kind == "folder":
        root = Path(os.path.expandvars(manifest["root"])).expanduser()
        if not root.is_absolute():
            root = path.parent / root
        ds = FolderDataset(root, name=manifest["name"])
        ds.default_tasks = tuple(manifest.get("tasks", ds.default_tasks))
        ds.lang = manifest.get("lang")
        return ds
    raise DatasetUnavailable(f"manifest {path} has unknown kind {kind!r} (expected 'hf' or 'folder')")


def get_dataset(spec: str) -> Dataset:
    """``builtin``, a folder path, a manifest name from data_manifests/, or a manifest .json path."""
    if spec == "builtin":
        return BuiltinDataset()
    manifest = find_manifest(spec)
    if manifest is not None:
        return load_manifest(manifest)
    if Path(spec).expanduser().is_dir():
        return FolderDataset(spec)
    raise DatasetUnavailable(
        f"unknown dataset {spec!r}: not 'builtin', not a folder, and no manifest of that name "
        f"(manifests: {', '.join(list_manifests()) or 'none'})"
    )


# --- preprocessing and batching -------------------------------------------------------------------
def to_square(img: Image.Image, resolution: int) -> np.ndarray:
    """Resize the short side to ``resolution`` (antialiased bicubic) and centre-crop: uint8 (R, R, 3)."""
    w, h = img.size
    if (w, h) != (resolution, resolution):
        scale = resolution / min(w, h)
        nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=None)
        left, top = (nw - resolution) // 2, (nh - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def center_crop_adm(img: Image.Image, resolution: int) -> np.ndarray:
    """The centre crop AR training code uses (ADM's ``center_crop_arr``, as in LlamaGen's and MAR's latent
    caching): halve with box filtering while the short side is at least twice ``resolution``, resize the
    short side to ``resolution`` (bicubic, rounded sizes), crop the centre: uint8 (R, R, 3)."""
    img = img.convert("RGB")
    while min(img.size) >= 2 * resolution:
        img = img.resize(tuple(s // 2 for s in img.size), Image.BOX)
    scale = resolution / min(img.size)
    img = img.resize(tuple(round(s * scale) for s in img.size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)
    top, left = (arr.shape[0] - resolution) // 2, (arr.shape[1] - resolution) // 2
    return arr[top:top + resolution, left:left + resolution]


Crop = Callable[[Image.Image, int], np.ndarray]


@dataclass
class ImageBatch:
    ids: list[str]
    images: torch.Tensor  # uint8 (B, 3, R, R)
    meta: list[dict]
    index: list[int] | None = None  # positions in the sample list given to `batches`; None: 0..B-1


def _prepare(sample: Sample, resolution: int, crop: Crop = to_square):
    """(uint8 (R, R, 3), meta) of a sample, or (None, reason) when its file cannot be read or decoded.
    Only `UnreadableImage` is caught: an error in vtbench's own code (builtin images) stops the run."""
    try:
        img = sample.load(resolution)
    except UnreadableImage as e:
        return None, str(e)
    meta = dict(sample.meta)
    meta.update({k: img.info[k] for k in ("text", "exif_transposed") if k in img.info})
    return crop(img, resolution), meta


class _Prepared(torch.utils.data.Dataset):
    """Samples decoded and cropped by DataLoader workers: item ``i`` is ``(i, uint8 array or None, meta or
    the reason it failed)``."""

    def __init__(self, samples: list[Sample], resolution: int, crop: Crop):
        self.samples, self.resolution, self.crop = samples, resolution, crop

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        return (i, *_prepare(self.samples[i], self.resolution, self.crop))


def _collate(items) -> tuple:
    """In the worker: (uint8 (B, 3, R, R) of the decodable images or None, their metas, their positions,
    [(position, reason)] of the others)."""
    good = [(i, arr, meta) for i, arr, meta in items if arr is not None]
    failed = [(i, reason) for i, arr, reason in items if arr is None]
    images = torch.from_numpy(np.stack([arr for _, arr, _ in good])).permute(0, 3, 1, 2).contiguous() if good \
        else None
    return images, [meta for _, _, meta in good], [i for i, _, _ in good], failed


def batches(samples: list[Sample], resolution: int, batch_size: int, skipped: list[Skipped],
            workers: int = 2, crop: Crop = to_square, pin_memory: bool = False) -> Iterator[ImageBatch]:
    """Decoded, preprocessed (``crop``) batches of ``batch_size`` consecutive samples, in sample order, from a
    DataLoader with ``workers`` processes (0: in this process) and ``pin_memory`` for fast copies to a GPU;
    failures are appended to ``skipped`` and warned about."""
    loader = torch.utils.data.DataLoader(
        _Prepared(samples, resolution, crop), batch_size=batch_size, num_workers=workers, collate_fn=_collate,
        pin_memory=pin_memory, prefetch_factor=2 if workers else None)
    for images, metas, index, failed in loader:
        for i, reason in failed:
            skipped.append(Skipped(samples[i].id, reason))
            warnings.warn(f"skipping {samples[i].id}: {reason}", stacklevel=2)
        if images is not None:
            yield ImageBatch([samples[i].id for i in index], images, metas, index)


def pixel_hash(image: torch.Tensor) -> str:
    """sha256 of one image's pixels and shape: the key of per-image caches (features, OCR)."""
    arr = image.cpu().numpy()
    return sha256_bytes(str(arr.shape).encode() + arr.tobytes())


def image_digest(sid: str, image: torch.Tensor, meta: dict) -> str:
    """sha256 of one evaluated image: its id, pixels, ground-truth text and language (which picks the OCR)."""
    h = hashlib.sha256(sid.encode())
    h.update(image.cpu().numpy().tobytes())
    h.update(str(meta.get("text", "")).encode())
    if "lang" in meta:
        h.update(f"\0lang={meta['lang']}".encode())
    return h.hexdigest()


class Fingerprint:
    """sha256 over the evaluated images' digests (`image_digest`) in sample order: images evaluated by
    several processes, or in a resumed run, are added by position and fingerprint like one pass."""

    def __init__(self):
        self.digests: dict[int, str] = {}

    def update(self, batch: ImageBatch, index: list[int] | None = None) -> None:
        """Add a batch; ``index``: the images' positions (default: the batch's own)."""
        positions = index or batch.index or range(len(batch.ids))
        for pos, sid, image, meta in zip(positions, batch.ids, batch.images, batch.meta):
            self.digests[pos] = image_digest(sid, image, meta)

    def hexdigest(self) -> str:
        return hashlib.sha256("".join(self.digests[k] for k in sorted(self.digests)).encode()).hexdigest()

"""`vtbench tokenize`: encode a dataset once, for AR training, into sharded token files and one ``meta.json``.

Images are centre-cropped as AR training code crops them (`center_crop_adm`), optionally augmented into
several *views* (``flip``: the image and its mirror; ``ten-crop``: LlamaGen's ``--ten-crop``, the ten
crops of a centre crop 1.1 times larger), and encoded in batches. Shard ``k`` holds samples
``[k * shard_size, (k + 1) * shard_size)`` of the dataset's sorted sample list: ``shard-NNNNN.npy``, an
array ``(n, views, L[, K])`` in the smallest dtype that holds the vocabulary (`storage_for`), beside
``shard-NNNNN.json`` (sample ids, class labels, skipped images, per-view prefix lengths), written last
and atomically: a shard is done exactly when its json exists, so an interrupted run resumes at the first
shard without one (no sample twice, none missing). ``plan.json`` pins what the shards were made with; a
different configuration in the same folder is refused. Under ``torchrun`` each process takes every
world-size-th shard; rank 0 writes ``meta.json`` when all are done. `vtbench.data.TokenDataset` reads
the result, `vtbench.exports` turns it into LlamaGen's and MAR's formats.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__, distributed
from .bench.datasets import Dataset, Skipped, batches, center_crop_adm
from .common import write_atomic
from .errors import VtbenchError
from .tokenizers import Tokenizer, TokenLayout, Tokens

SCHEMA = "vtbench.tokens/1"
AUGMENTS = {"none": ("image",), "flip": ("image", "flip"),
            "ten-crop": ("top-left", "top-right", "bottom-left", "bottom-right", "centre",
                         "flip top-left", "flip top-right", "flip bottom-left", "flip bottom-right", "flip centre")}
TEN_CROP_RANGE = 1.1  # LlamaGen's --crop-range: the ten crops come from a centre crop this much larger


class TokenizeError(VtbenchError, ValueError):
    """The output folder or options do not fit the requested tokenization."""


# --- what is stored -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Storage:
    """How one view of one image is stored: ``array`` is ``ids`` (one id per position, multi-component
    codes packed with the layout's `pack`), ``codes`` (``(L, K)`` components), ``bits`` (``(L, d)``, for
    binary codes too wide to pack) or ``latents`` (``(L, C)`` floats, channels last)."""

    array: str
    dtype: str
    shape: tuple[int, ...]


def _smallest_integer(largest: int) -> str:
    for dtype in ("uint8", "uint16", "int32", "int64"):
        if largest <= np.iinfo(dtype).max:
            return dtype
    raise TokenizeError(f"ids up to {largest} do not fit in int64")


def storage_for(layout: TokenLayout, latent_dtype: str = "float16") -> Storage:
    """Single ids where the joint vocabulary fits in int64 and the codes are one index or bits; per-component
    codes for factorized and level tokens (what their AR heads predict); bits when too wide to pack."""
    n = layout.seq_len
    if not layout.discrete:
        return Storage("latents", latent_dtype, (n, layout.channels))
    if layout.components == 1 or (layout.kind == "binary" and layout.components <= 62):
        return Storage("ids", _smallest_integer(layout.joint_vocab_size - 1), (n,))
    if layout.kind == "binary":
        return Storage("bits", "uint8", (n, layout.components))
    return Storage("codes", _smallest_integer(max(layout.vocab_sizes) - 1), (n, layout.components))


def to_storage(tokens: Tokens, storage: Storage) -> np.ndarray:
    """``(B, L[, K])`` numpy array of ``tokens`` in ``storage``'s form and dtype."""
    if storage.array == "ids":
        flat = tokens.joint_ids()
    elif storage.array == "latents":
        flat = tokens.flat().float()
    else:
        flat = tokens.flat()
    return flat.cpu().numpy().astype(storage.dtype)


def from_storage(array: np.ndarray, storage: Storage, layout: TokenLayout, form: str = "flat") -> torch.Tensor:
    """Stored ``(..., L[, K])`` back to tensors: ``flat`` is the layout's own sequence (`Tokens.flat`:
    components unpacked), ``ids`` one joint id per position (discrete layouts whose ids fit int64)."""
    if storage.array == "latents":
        if form != "flat":
            raise TypeError("continuous latents have no ids")
        return torch.from_numpy(np.asarray(array, dtype=np.float32))
    t = torch.from_numpy(np.asarray(array).astype(np.int64))
    if form == "flat":
        return layout.unpack(t) if storage.array == "ids" and layout.components > 1 else t
    if form == "ids":
        return t if storage.array == "ids" else layout.pack(t)
    raise ValueError(f"form is 'flat' or 'ids', got {form!r}")


# --- views ----------------------------------------------------------------------------------------
def crop_size(augment: str, resolution: int) -> int:
    return int(resolution * TEN_CROP_RANGE) if augment == "ten-crop" else resolution


def make_views(images: torch.Tensor, augment: str, resolution: int) -> torch.Tensor:
    """uint8 ``(B, 3, S, S)`` centre crops -> ``(B, V, 3, R, R)`` views in `AUGMENTS` order (ten-crop as
    torchvision's ``TenCrop``: four corners and the centre, then the same of the mirrored image)."""
    if augment == "none":
        return images[:, None]
    if augment == "flip":
        return torch.stack([images, images.flip(-1)], 1)
    r, s = resolution, images.shape[-1]
    top = left = int(round((s - r) / 2.0))  # as torchvision's centre crop rounds

    def five(x):
        return [x[..., :r, :r], x[..., :r, s - r:], x[..., s - r:, :r], x[..., s - r:, s - r:],
                x[..., top:top + r, left:left + r]]

    return torch.stack(five(images) + five(images.flip(-1)), 1)


# --- labels ---------------------------------------------------------------------------------------
def class_labels(sample_ids: list[str]) -> tuple[list[str], list[int]] | None:
    """ImageFolder's convention: when every image lies in a first-level folder, the sorted folder names are
    the classes and each image's label is its folder's index; otherwise None (no labels)."""
    parts = [sid.split("/", 1) for sid in sample_ids]
    if not parts or any(len(p) != 2 for p in parts):
        return None
    classes = sorted({p[0] for p in parts})
    index = {c: i for i, c in enumerate(classes)}
    return classes, [index[p[0]] for p in parts]


# --- the run --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizeConfig:
    augment: str = "none"
    resolution: int | None = None  # None: the tokenizer's native resolution
    batch_size: int = 32
    shard_size: int = 1000
    limit: int | None = None
    latent_dtype: str = "float16"

    def __post_init__(self):
        if self.augment not in AUGMENTS:
            raise TokenizeError(f"augment is one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.latent_dtype not in ("float16", "float32"):
            raise TokenizeError(f"latent dtype is float16 or float32, got {self.latent_dtype!r}")


def _samples(dataset: Dataset, limit: int | None):
    subsets = ("photos", "detail", "text") if dataset.name == "builtin" else ("all",)
    samples = [s for sub in subsets for s in dataset.samples(sub)]
    return samples[:limit] if limit else samples


def _plan(tok: Tokenizer, dataset: Dataset, samples, labels, cfg: TokenizeConfig, resolution: int) -> dict:
    layout = tok.layout(resolution)
    storage = storage_for(layout, cfg.latent_dtype)
    has_posterior = not layout.discrete and type(tok)._posterior is not Tokenizer._posterior
    return json.loads(json.dumps({  # as read back from plan.json (lists, not tuples)
        "schema": SCHEMA,
        "tokenizer": {"name": tok.label, "weights": asdict(tok.loaded_weights) if tok.loaded_weights else None},
        "layout": layout.as_dict(),
        "storage": {**asdict(storage), "logvar": has_posterior},
        "augment": cfg.augment, "views": list(AUGMENTS[cfg.augment]),
        "preprocessing": {"resolution": resolution, "crop": "adm-centre",
                          "crop_size": crop_size(cfg.augment, resolution), "input_range": "[-1, 1]"},
        "dataset": {"name": dataset.name, "num_planned": len(samples),
                    "sample_ids_sha256": hashlib.sha256("\n".join(s.id for s in samples).encode()).hexdigest()},
        "labels": {"classes": labels[0]} if labels else None,
        "shard_size": cfg.shard_size,
        "vtbench": __version__,
    }))


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array))
    return buf.getvalue()


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


def tokenize(tok: Tokenizer, dataset: Dataset, out: Path, cfg: TokenizeConfig = TokenizeConfig(),
             device: torch.device | str = "cpu", progress: bool = True) -> Path:
    """Encode ``dataset`` into ``out`` (resuming a run there with the same plan); returns meta.json's path."""
    out = Path(out)
    resolution = cfg.resolution or tok.info.resolution
    samples = _samples(dataset, cfg.limit)
    if not samples:
        raise TokenizeError(f"dataset {dataset.name} has no images")
    labels = class_labels([s.id for s in samples])
    plan = _plan(tok, dataset, samples, labels, cfg, resolution)
    rank, world = distributed.init("gloo")
    plan_path = out / "plan.json"
    if rank == 0:
        if plan_path.exists():
            old = json.loads(plan_path.read_text())
            changed = sorted(k for k in set(plan) | set(old) if plan.get(k) != old.get(k))
            if changed:
                raise TokenizeError(f"{out} holds tokens made with another configuration ({', '.join(changed)} "
                                    "differ); use another --out, or delete the folder to start over")
        else:
            write_atomic(plan_path, json.dumps(plan, indent=1))
    distributed.barrier()
    storage = Storage(plan["storage"]["array"], plan["storage"]["dtype"], tuple(plan["storage"]["shape"]))
    n_shards = -(-len(samples) // cfg.shard_size)
    todo = [k for k in range(rank, n_shards, world) if not (out / f"{shard_name(k)}.json").exists()]
    remaining = sum(len(samples[k * cfg.shard_size:(k + 1) * cfg.shard_size]) for k in todo)
    bar = tqdm(total=remaining, desc=f"{tok.label} | tokenize" + (f" (rank {rank}/{world})" if world > 1 else ""),
               unit="img", disable=not progress)
    tok = tok.to(device).eval()
    for k in todo:
        first = k * cfg.shard_size
        _write_shard(tok, samples[first:first + cfg.shard_size], first, labels, storage, plan, cfg,
                     out / shard_name(k), device, bar)
    bar.close()
    distributed.barrier()
    meta = out / "meta.json"
    if rank == 0:
        write_atomic(meta, json.dumps(_meta(plan, out, n_shards), indent=1))
    distributed.barrier()
    return meta


def _write_shard(tok, samples, first, labels, storage, plan, cfg, stem: Path, device, bar) -> None:
    for debris in stem.parent.glob(f".{stem.name}.*.tmp"):  # a killed run's half-written files of this shard
        debris.unlink(missing_ok=True)
    views = len(plan["views"])
    resolution = plan["preprocessing"]["resolution"]
    skipped: list[Skipped] = []
    arrays, logvars, ids, lengths = [], [], [], []
    digest = hashlib.sha256()
    for batch in batches(samples, plan["preprocessing"]["crop_size"], cfg.batch_size, skipped, crop=center_crop_adm):
        for i, sid in enumerate(batch.ids):
            digest.update(sid.encode())
            digest.update(batch.images[i].numpy().tobytes())
        x = make_views(batch.images, cfg.augment, resolution).flatten(0, 1).to(device).float() / 127.5 - 1
        with torch.inference_mode():
            if plan["storage"]["logvar"]:
                posterior = tok.encode_posterior(x)
                tokens = Tokens.from_latents(posterior.mean.float(), tok.info.latent_bits)
                logvars.append(Tokens.from_latents(posterior.logvar.float()).flat().cpu().numpy()
                               .astype(storage.dtype).reshape(len(batch.ids), views, *storage.shape))
            else:
                tokens = tok.encode(x)
        arrays.append(to_storage(tokens, storage).reshape(len(batch.ids), views, *storage.shape))
        if tokens.lengths is not None:
            lengths.append(tokens.lengths.cpu().reshape(len(batch.ids), views))
        ids += batch.ids
        bar.update(len(batch.ids))
    bar.update(len(skipped))
    data = np.concatenate(arrays) if arrays else np.zeros((0, views, *storage.shape), storage.dtype)
    write_atomic(stem.with_suffix(".npy"), npy_bytes(data))
    if plan["storage"]["logvar"]:
        write_atomic(stem.with_suffix(".logvar.npy"), npy_bytes(
            np.concatenate(logvars) if logvars else np.zeros_like(data)))
    index = {sid: i for i, sid in enumerate(s.id for s in samples)}
    record = {"first_sample": first, "num_planned": len(samples), "ids": ids,
              "skipped": [asdict(s) for s in skipped], "pixels_sha256": digest.hexdigest()}
    if labels is not None:
        record["labels"] = [labels[1][first + index[sid]] for sid in ids]
    if lengths:
        record["lengths"] = torch.cat(lengths).tolist()
    write_atomic(stem.with_suffix(".json"), json.dumps(record))


def _meta(plan: dict, out: Path, n_shards: int) -> dict:
    shards, skipped, fingerprint = [], [], hashlib.sha256()
    for k in range(n_shards):
        rec = json.loads((out / f"{shard_name(k)}.json").read_text())
        shards.append({"file": f"{shard_name(k)}.npy", "count": len(rec["ids"])})
        skipped += rec["skipped"]
        fingerprint.update(rec["pixels_sha256"].encode())
    meta = dict(plan)
    meta["dataset"] = {**plan["dataset"], "num_samples": sum(s["count"] for s in shards), "num_skipped": len(skipped),
                       "skipped": skipped, "pixels_sha256": fingerprint.hexdigest()}
    meta["shards"] = shards
    return meta

"""Evaluate one tokenizer on one dataset for one task, batched, and write the result files."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import time
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torchmetrics
from PIL import Image
from tqdm.auto import tqdm

from .. import __version__, distributed
from ..common import sha256_bytes, write_atomic
from ..errors import VtbenchError
from ..pretokenize import class_labels
from ..tokenizers import Tokenizer
from . import metric_weights, showcase
from .datasets import Dataset, Fingerprint, FolderDataset, Sample, Skipped, batches
from .metrics import EvalBatch, Metric, to_uint8
from .results import SCHEMA, environment, git_commit, identity, result_path, sample_key, stored_result, write_result
from .tasks import Task


class RunError(VtbenchError, ValueError):
    """The run cannot produce a result (e.g. no image could be evaluated); nothing was written."""


@dataclass(frozen=True)
class RunConfig:
    batch_size: int = 16
    limit: int | None = None
    seed: int = 0
    resolution: int | None = None  # None: the tokenizer's native resolution
    save_images: int = 0
    showcase: int = 2  # the first N images kept small beside the result, for the leaderboard's grids (`showcase`)
    overwrite: bool = False
    alpha: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)  # pFID sweep
    delta: int = 100  # pFID neighbourhood size
    precision: str = "fp32"  # the tokenizer's: fp32, or bf16/fp16 autocast (quantizer lookups stay float32)
    workers: int = 2  # DataLoader processes decoding images
    verify: bool = False  # a stored result over files: hash their pixels, not only their sizes and mtimes

    def __post_init__(self):
        wrong = {"batch_size": self.batch_size < 1, "limit": self.limit is not None and self.limit < 1,
                 "resolution": self.resolution is not None and self.resolution < 1, "delta": self.delta < 2,
                 "save_images": self.save_images < 0, "showcase": self.showcase < 0, "workers": self.workers < 0,
                 "precision": self.precision not in PRECISIONS,
                 "alpha": not self.alpha or not all(0 <= a <= 1 for a in self.alpha)}
        if any(wrong.values()):
            raise RunError("RunConfig: " + ", ".join(f"{k}={getattr(self, k)!r}" for k, bad in wrong.items() if bad)
                           + " out of range (batch_size, limit, resolution >= 1; delta >= 2; save_images, "
                           "showcase >= 0; alpha: fractions in [0, 1])")


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The context a tokenizer runs in at ``precision`` (fp16 needs CUDA: CPU autocast covers it partly)."""
    if precision == "fp16" and device.type != "cuda":
        raise RunError("--precision fp16 needs a CUDA device; use bf16 on the CPU")
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


class Prefix(Tokenizer):
    """An ordered tokenizer (``info.ordered``) that keeps the first ``k`` tokens of every image: a row of its
    own, labelled ``<name>-k<k>[:tag]`` like the mini-zoo's registered prefixes (``mini-flextok-k32``)."""

    def __init__(self, tok: Tokenizer, k: int):
        super().__init__()
        n = tok.info.tokens_per_image
        if not tok.info.ordered or not 1 <= k <= n:
            what = f"1..{n} tokens" if tok.info.ordered else "no prefixes: it is not an ordered tokenizer"
            raise ValueError(f"{tok.label} decodes {what}, got --num-tokens {k}")
        self.tok, self.k = tok, k
        self.info = replace(tok.info, tokens_per_image=k, notes=f"{tok.info.notes}; first {k} of {n} tokens")
        self.sampling_options = tok.sampling_options
        name, _, tag = tok.label.partition(":")
        self.label = f"{name}-k{k}" + (f":{tag}" if tag else "")
        self.registry_name, self.loaded_weights = tok.registry_name, tok.loaded_weights
        self.train(tok.training)

    @property
    def sampling(self):
        return self.tok.sampling

    def set_sampling(self, **options):
        self.tok.set_sampling(**options)

    def check_size(self, height, width):
        self.tok.check_size(height, width)

    def _encode(self, x):
        return self.tok._encode(x).map(lambda s: s[:, :self.k])

    def _neighbours(self, x, k):
        tokens, candidates = self.tok._neighbours(x, k)
        return tokens.map(lambda s: s[:, :self.k]), [c[:, :self.k] for c in candidates]

    def _decode(self, tokens, **sampling):
        return self.tok._decode(tokens, **sampling)


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: this process's GPU under torchrun (``LOCAL_RANK``), else the first GPU, else the CPU."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _files_key(samples: list[Sample], resolution: int) -> str | None:
    """What a dataset fingerprint depends on when every sample is a file: ids, paths, sizes, modification
    times, metadata and the resolution. None when a sample is not a file (builtin, hub): then the pixels
    themselves are hashed every time."""
    h = hashlib.sha256(f"v1:{resolution}".encode())
    for s in samples:
        source = s.meta.get("source")
        if not source or not Path(source).is_file():
            return None
        st = Path(source).stat()
        h.update(json.dumps([s.id, source, st.st_size, st.st_mtime_ns, s.meta], sort_keys=True).encode())
    return h.hexdigest()


def _fingerprint_cache(key: str) -> Path:
    return metric_weights.cache_dir() / "fingerprints" / key[:2] / f"{key}.txt"


def remember_fingerprint(samples: list[Sample], resolution: int, value: str) -> None:
    """Cache a large folder's fingerprint under its file list, sizes and mtimes (`_files_key`)."""
    key = _files_key(samples, resolution)
    if key is not None:
        write_atomic(_fingerprint_cache(key), value)


def fingerprint(samples: list[Sample], resolution: int, batch_size: int, verify: bool = False) -> str:
    """The dataset fingerprint an evaluation of ``samples`` at ``resolution`` records, without the tokenizer.
    For files it is cached by file list, sizes and modification times; ``verify`` hashes the pixels anyway."""
    key = _files_key(samples, resolution)
    if key is not None and not verify:
        try:
            return _fingerprint_cache(key).read_text().strip()
        except OSError:
            pass
    fp = Fingerprint()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped files are reported by the evaluation, if one follows
        for batch in batches(samples, resolution, batch_size, []):
            fp.update(batch)
    value = fp.hexdigest()
    if key is not None:
        write_atomic(_fingerprint_cache(key), value)
    return value


def _describe_skipped(skipped: list[Skipped]) -> str:
    if not skipped:
        return ""
    shown = "; ".join(f"{s.id}: {s.reason}" for s in skipped[:3])
    return f" ({len(skipped)} skipped: {shown}{'; ...' if len(skipped) > 3 else ''})"


def _planned(tok: Tokenizer, dataset: Dataset, task: Task, cfg: RunConfig, metrics: list[Metric], resolution: int,
             limit: int | None) -> dict:
    """The result this run will write, before any value is known (fields filled in by `evaluate`)."""
    world = distributed.world()[1]
    env = environment(tok.device)
    env.update(world_size=world, backend=torch.distributed.get_backend() if world > 1 else None)
    return {
        "schema": SCHEMA,
        "vtbench_version": __version__,
        "git_commit": git_commit(),
        "created": None,
        "task": task.name,
        "versions": {"task": task.version, "metrics": {m.name: m.version for m in metrics}},
        "tokenizer": {
            "name": tok.label,
            "registry_name": tok.registry_name,
            "weights": asdict(tok.loaded_weights),
            "parameters": tok.num_parameters,
            "sampling": tok.sampling,
            **tok.info.as_dict(),
        },
        "dataset": {"name": dataset.name, "subset": task.subset, "limit": limit, "fingerprint": None,
                    "num_samples": None, "num_skipped": None, "skipped": None, "resolution": resolution},
        "metrics": None,
        "config": json.loads(json.dumps(asdict(cfg))),  # as stored: a resumed run returns the same dict
        "environment": env,
        "timings": None,
    }


#: a process saves its progress (metric states, rows) at most this often, and when its shard is done
CHECKPOINT_EVERY_S = 300.0


class _Shard:
    """One process's part of a run: the batches ``rank, rank + world, ...`` of the one-process run (so every
    image is evaluated in the same batch however many processes share the work), and its checkpoint
    (``<out>/.partial/<dataset>__<tokenizer>__<task><key>.rank<r>of<w>.pt``), which a restarted run
    continues from when it was written for the same plan."""

    def __init__(self, out: Path, path: Path, planned: dict, settings, samples: list[Sample], batch_size: int):
        self.rank, self.world = distributed.world()
        starts = range(self.rank * batch_size, len(samples), self.world * batch_size)
        self.positions = [i for b in starts for i in range(b, min(b + batch_size, len(samples)))]
        self.samples = [samples[i] for i in self.positions]
        name = "__".join(path.relative_to(out).with_suffix("").parts)
        self.file = out / ".partial" / f"{name}.rank{self.rank}of{self.world}.pt"
        ids = "\n".join(s.id for s in self.samples)
        self.key = json.dumps({"identity": identity(planned, settings), "samples": sha256_bytes(ids.encode()),
                               "batch_size": batch_size,
                               "code": planned["git_commit"], "version": planned["vtbench_version"]}, sort_keys=True)

    def load(self, metrics: list[Metric]) -> dict | None:
        """The saved progress, its states loaded into ``metrics``; None when there is none for this plan."""
        try:
            saved = torch.load(self.file, map_location="cpu", weights_only=False)
        except (OSError, EOFError, RuntimeError, pickle.UnpicklingError):
            return None
        if not isinstance(saved, dict) or saved.get("key") != self.key:
            return None
        for m, states in zip(metrics, saved["metrics"]):
            for mod, (state, extra) in zip(_metric_modules(m), states):
                for name, value in state.items():
                    setattr(mod, name, _to(value, mod.device))
                mod.__dict__.update(extra)
        return saved

    def save(self, metrics: list[Metric], progress: dict) -> None:
        states = [[({k: _to(v, "cpu") for k, v in mod.metric_state.items()},
                    {k: getattr(mod, k) for k in _PLAIN if hasattr(mod, k)}) for mod in _metric_modules(m)]
                  for m in metrics]
        buf = io.BytesIO()
        torch.save({"key": self.key, "metrics": states, **progress}, buf)
        write_atomic(self.file, buf.getvalue())

    def remove(self) -> None:
        """Delete the checkpoint (the folder stays: other runs into the same results folder may be using it)."""
        self.file.unlink(missing_ok=True)


#: plain (non-tensor) attributes of a metric that its progress includes
_PLAIN = ("unavailable", "_update_count", "_tags")


def _metric_modules(m: Metric) -> list:
    return [mod for mod in m.modules() if isinstance(mod, torchmetrics.Metric)]


def _to(value, device):
    return [v.to(device) for v in value] if isinstance(value, list) else value.to(device)


def evaluate(tok: Tokenizer, dataset: Dataset, task: Task, out: Path, cfg: RunConfig = RunConfig(),
             progress: bool = True) -> tuple[dict, Path]:
    """Run ``task`` and write ``<out>/<dataset>/<tokenizer>/<task><key>.json`` plus per-image rows.

    ``<key>`` names the sample set (`results.sample_key`). An existing result that still stands for this
    run (`results.stored_result`) is returned as is unless ``cfg.overwrite``: an interrupted multi-task run,
    started again, resumes at the first task it had not finished; a task interrupted midway continues from
    its last checkpoint. Any other existing result is recomputed, with a warning saying what differed.
    Raises `RunError` (writing nothing) when no image can be evaluated.

    Under ``torch.distributed`` (`vtbench.distributed.init`) every process evaluates its own shard, metrics are
    synchronised, and rank 0 writes the result and the per-image rows of all processes in sample order;
    every process returns the result.
    """
    resolution = cfg.resolution or tok.info.resolution
    layout = tok.layout(resolution)  # a size the tokenizer cannot take: ValueError naming the sizes it can
    candidates = dataset.samples(task.subset)
    limit = cfg.limit if cfg.limit is not None and cfg.limit < len(candidates) else None
    samples = candidates[:limit]
    skipped = dataset.skipped()
    if not samples:
        raise RunError(f"dataset {dataset.name} has no images for task {task.name}{_describe_skipped(skipped)}")
    device = tok.device
    precision = autocast(device, cfg.precision)
    metrics = [m.to(device) for m in task.metrics(cfg, layout)]
    result = _planned(tok, dataset, task, cfg, metrics, resolution, limit)
    path = result_path(out, dataset.name, tok.label, task.name, sample_key(resolution, tok.info.resolution, limit))
    stored, reason = None, ""
    if path.exists() and not cfg.overwrite and distributed.world()[0] == 0:
        stored, reason = stored_result(path, result, task.settings,
                                       lambda: fingerprint(samples, resolution, cfg.batch_size, cfg.verify))
    stored, reason = distributed.from_rank0((stored, reason))
    if stored is not None:
        return stored, path
    if reason:
        warnings.warn(f"recomputing {path}: {reason}", stacklevel=2)

    shard = _Shard(out, path, result, task.settings, samples, cfg.batch_size)
    saved = shard.load(metrics) or {"done": 0, "rows": [], "digests": {}, "skipped": {}, "shown": {}, "elapsed": 0.0}
    rows, fp, late_skips, shown = saved["rows"], Fingerprint(), saved["skipped"], saved["shown"]
    fp.digests.update(saved["digests"])
    torch.manual_seed(cfg.seed)
    image_dir = path.parent / "images" / path.name[: -len(".json")]
    started, last_save = time.perf_counter() - saved["elapsed"], time.perf_counter()
    todo = shard.samples[saved["done"]:]
    shown_count = cfg.showcase if task.showcase else 0
    bar = tqdm(total=len(samples), initial=saved["done"] * shard.world, desc=f"{tok.label} | {task.name}",
               unit="img", disable=not progress or shard.rank != 0, leave=False)
    pending: list[Skipped] = []  # files that fail to decode, reported by `batches`
    position = {s.id: p for s, p in zip(shard.samples, shard.positions)}
    # an ImageNet-style class-folder tree: rows name each image's class
    labels = class_labels([s.id for s in samples]) if isinstance(dataset, FolderDataset) else None
    classes = {s.id: labels[0][k] for s, k in zip(samples, labels[1])} if labels else {}
    with torch.inference_mode():
        for batch in batches(todo, resolution, cfg.batch_size, pending, cfg.workers, pin_memory=device.type == "cuda"):
            index = [shard.positions[saved["done"] + i] for i in batch.index]
            originals = batch.images.to(device, non_blocking=True)
            t0 = time.perf_counter()
            with precision:
                tokens = tok.encode(originals.float() / 127.5 - 1)
            synchronize(device)
            t1 = time.perf_counter()
            with precision:
                recon = to_uint8(tok.decode(tokens).float())
            synchronize(device)
            t2 = time.perf_counter()
            eb = EvalBatch(batch.ids, originals, recon, tokens, batch.meta, t1 - t0, t2 - t1, tok,
                           torch.tensor(index, dtype=torch.int64, device=device))
            columns: dict[str, list] = {}
            for m in metrics:
                m.update(eb)
                for k, v in (m.rows or {}).items():
                    columns[k] = v.tolist() if torch.is_tensor(v) else list(v)
            rows += [{"_index": pos, "id": sid, **({"class": classes[sid]} if classes else {}),
                      **{k: col[i] for k, col in columns.items()}, **({"text": meta["text"]} if "text" in meta else {})}
                     for i, (pos, sid, meta) in enumerate(zip(index, batch.ids, batch.meta))]
            fp.update(batch, index)
            shown.update({pos: (sid, batch.images[i].clone(), recon[i].cpu())
                          for i, (pos, sid) in enumerate(zip(index, batch.ids)) if pos < shown_count})
            if shard.rank == 0:
                saved_images = len(rows) - len(batch.ids)
                _save_images(image_dir, batch.images, recon.cpu(), batch.ids, cfg.save_images - saved_images)
            done = saved["done"] + min(len(todo), (batch.index[-1] // cfg.batch_size + 1) * cfg.batch_size)
            late_skips.update({position[s.id]: asdict(s) for s in pending})
            pending.clear()
            bar.update(len(batch.ids) * shard.world)
            bar.set_postfix({k: f"{np.mean(nums):.3f}" for k, col in columns.items()
                             if (nums := [v for v in col if isinstance(v, (int, float))])})
            if time.perf_counter() - last_save > CHECKPOINT_EVERY_S:
                shard.save(metrics, {"done": done, "rows": rows, "digests": fp.digests, "skipped": late_skips,
                                     "shown": shown, "elapsed": time.perf_counter() - started})
                last_save = time.perf_counter()
    bar.close()
    late_skips.update({position[s.id]: asdict(s) for s in pending})
    shard.save(metrics, {"done": len(shard.samples), "rows": rows, "digests": fp.digests, "skipped": late_skips,
                         "shown": shown, "elapsed": time.perf_counter() - started})

    parts = distributed.gather((rows, fp.digests, late_skips, shown))
    rows = sorted((r for p in parts for r in p[0]), key=lambda r: r.pop("_index") if "_index" in r else 0)
    for p in parts:
        fp.digests.update(p[1])
    late = {pos: s for p in parts for pos, s in p[2].items()}
    shown = {pos: s for p in parts for pos, s in p[3].items()}
    skipped = skipped + [Skipped(**late[pos]) for pos in sorted(late)]
    if not rows:
        shard.remove()
        raise RunError(f"no image of dataset {dataset.name} could be evaluated for task {task.name}"
                       f"{_describe_skipped(skipped)}; earlier results are kept")
    values = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
        for m in metrics:  # every process computes: the metrics synchronise inside compute
            values.update({k: v.as_dict() for k, v in m.compute().items()})
    result["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["dataset"].update(fingerprint=fp.hexdigest(), num_samples=len(rows), num_skipped=len(skipped),
                             skipped=[asdict(s) for s in skipped])
    result["metrics"] = values
    result["timings"] = {"total_s": round(time.perf_counter() - started, 3)}
    if shard.rank == 0:
        if shown:
            ids, originals, recons = zip(*(shown[pos] for pos in sorted(shown)))
            result["showcase"] = showcase.write(path, list(ids), torch.stack(originals), torch.stack(recons))
        write_result(path, result, rows)
        remember_fingerprint(samples, resolution, result["dataset"]["fingerprint"])
    distributed.barrier()
    shard.remove()
    return result, path


def _save_images(folder: Path, originals: torch.Tensor, recons: torch.Tensor, ids: list[str], n: int) -> None:
    """Save the first ``n`` reconstructions of this batch (and their originals) as PNG."""
    for i in range(min(max(n, 0), len(ids))):
        name = ids[i].replace("/", "__").rsplit(".", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(recons[i].permute(1, 2, 0).numpy()).save(folder / f"{name}.png")
        Image.fromarray(originals[i].permute(1, 2, 0).numpy()).save(folder / f"{name}.orig.png")

"""Evaluate one tokenizer on one dataset for one task, batched, and write the result files."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .. import __version__
from ..tokenizers import Tokenizer
from .datasets import Dataset, Fingerprint, batches
from .metrics import EvalBatch, to_uint8
from .results import SCHEMA, environment, git_commit, read_result, result_path, write_json, write_jsonl
from .tasks import Task


@dataclass(frozen=True)
class RunConfig:
    batch_size: int = 16
    limit: int | None = None
    seed: int = 0
    resolution: int | None = None  # None: the tokenizer's native resolution
    save_images: int = 0
    overwrite: bool = False
    alpha: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)  # pFID sweep
    delta: int = 100  # pFID neighbourhood size


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _same_setup(old: dict, tok: Tokenizer, cfg: RunConfig, resolution: int) -> bool:
    c = old.get("config", {})
    return (old.get("tokenizer", {}).get("weights", {}).get("sha256") == tok.loaded_weights.sha256
            and c.get("limit") == cfg.limit and c.get("seed") == cfg.seed
            and list(c.get("alpha", [])) == list(cfg.alpha) and c.get("delta") == cfg.delta
            and old.get("dataset", {}).get("resolution") == resolution)


def evaluate(tok: Tokenizer, dataset: Dataset, task: Task, out: Path, cfg: RunConfig = RunConfig(),
             progress: bool = True) -> tuple[dict, Path]:
    """Run ``task`` and write ``<out>/<dataset>/<tokenizer>/<task>.json`` plus per-image rows.

    An existing result with the same setup and the same weights (sha256) is returned as is unless
    ``cfg.overwrite``: an interrupted multi-task run, started again, resumes at the first task it had not
    finished, and retrained weights are evaluated anew.
    """
    label = tok.label
    path = result_path(out, dataset.name, label, task.name)
    resolution = cfg.resolution or tok.info.resolution
    if path.exists() and not cfg.overwrite:
        old = read_result(path)
        if _same_setup(old, tok, cfg, resolution):
            return old, path

    device = tok.device
    torch.manual_seed(cfg.seed)
    samples = dataset.samples(task.subset)[: cfg.limit]
    skipped = dataset.skipped()
    metrics = task.metrics(cfg)
    fingerprint = Fingerprint()
    rows: list[dict] = []
    image_dir = path.parent / "images" / task.name
    started = time.perf_counter()
    bar = tqdm(total=len(samples), desc=f"{label} | {task.name}", unit="img", disable=not progress, leave=False)
    with torch.inference_mode():
        for batch in batches(samples, resolution, cfg.batch_size, skipped):
            originals = batch.images.to(device)
            t0 = time.perf_counter()
            tokens = tok.encode(originals.float() / 127.5 - 1)
            _sync(device)
            t1 = time.perf_counter()
            recon = to_uint8(tok.decode(tokens))
            _sync(device)
            t2 = time.perf_counter()
            eb = EvalBatch(batch.ids, originals, recon, tokens, batch.meta, t1 - t0, t2 - t1, tok)
            columns: dict[str, list] = {}
            for m in metrics:
                for k, v in (m.update(eb) or {}).items():
                    columns[k] = v.tolist() if torch.is_tensor(v) else list(v)
            rows += [{"id": sid, **{k: col[i] for k, col in columns.items()},
                      **({"text": meta["text"]} if "text" in meta else {})}
                     for i, (sid, meta) in enumerate(zip(batch.ids, batch.meta))]
            fingerprint.update(batch)
            _save_images(image_dir, batch.images, recon.cpu(), batch.ids, cfg.save_images - (len(rows) - len(batch.ids)))
            bar.update(len(batch.ids))
            bar.set_postfix({k: f"{np.mean(nums):.3f}" for k, col in columns.items()
                             if (nums := [v for v in col if isinstance(v, (int, float))])})
    bar.close()

    values = {}
    for m in metrics:
        m.sync()
        values.update({k: v.as_dict() for k, v in m.compute().items()})
    result = {
        "schema": SCHEMA,
        "vtbench_version": __version__,
        "git_commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task.name,
        "tokenizer": {
            "name": label,
            "registry_name": tok.registry_name,
            "weights": asdict(tok.loaded_weights),
            "parameters": tok.num_parameters,
            **tok.info.as_dict(),
        },
        "dataset": {
            "name": dataset.name,
            "subset": task.subset,
            "fingerprint": fingerprint.hexdigest(),
            "num_samples": len(rows),
            "num_skipped": len(skipped),
            "skipped": [asdict(s) for s in skipped],
            "resolution": resolution,
        },
        "metrics": values,
        "config": asdict(cfg),
        "environment": environment(device),
        "timings": {"total_s": round(time.perf_counter() - started, 3)},
        "per_image": f"{task.name}.per_image.jsonl",
    }
    write_jsonl(path.with_name(result["per_image"]), rows)
    write_json(path, result)
    return result, path


def _save_images(folder: Path, originals: torch.Tensor, recons: torch.Tensor, ids: list[str], n: int) -> None:
    """Save the first ``n`` reconstructions of this batch (and their originals) as PNG."""
    for i in range(min(max(n, 0), len(ids))):
        name = ids[i].replace("/", "__").rsplit(".", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(recons[i].permute(1, 2, 0).numpy()).save(folder / f"{name}.png")
        Image.fromarray(originals[i].permute(1, 2, 0).numpy()).save(folder / f"{name}.orig.png")

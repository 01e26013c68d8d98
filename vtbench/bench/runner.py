"""Evaluate one tokenizer on one dataset for one task, batched, and write the result files."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .. import __version__
from ..errors import VtbenchError
from ..tokenizers import Tokenizer
from .datasets import Dataset, Fingerprint, Sample, Skipped, batches
from .metrics import EvalBatch, Metric, to_uint8
from .results import SCHEMA, environment, git_commit, result_path, sample_key, stored_result, write_result
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
    overwrite: bool = False
    alpha: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)  # pFID sweep
    delta: int = 100  # pFID neighbourhood size

    def __post_init__(self):
        wrong = {"batch_size": self.batch_size < 1, "limit": self.limit is not None and self.limit < 1,
                 "resolution": self.resolution is not None and self.resolution < 1, "delta": self.delta < 2,
                 "save_images": self.save_images < 0,
                 "alpha": not self.alpha or not all(0 <= a <= 1 for a in self.alpha)}
        if any(wrong.values()):
            raise RunError("RunConfig: " + ", ".join(f"{k}={getattr(self, k)!r}" for k, bad in wrong.items() if bad)
                           + " out of range (batch_size, limit, resolution >= 1; delta >= 2; save_images >= 0; "
                           "alpha: fractions in [0, 1])")


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
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fingerprint(samples: list[Sample], resolution: int, batch_size: int) -> str:
    """The dataset fingerprint an evaluation of ``samples`` at ``resolution`` records, without the tokenizer."""
    fp = Fingerprint()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped files are reported by the evaluation, if one follows
        for batch in batches(samples, resolution, batch_size, []):
            fp.update(batch)
    return fp.hexdigest()


def _describe_skipped(skipped: list[Skipped]) -> str:
    if not skipped:
        return ""
    shown = "; ".join(f"{s.id}: {s.reason}" for s in skipped[:3])
    return f" ({len(skipped)} skipped: {shown}{'; ...' if len(skipped) > 3 else ''})"


def _planned(tok: Tokenizer, dataset: Dataset, task: Task, cfg: RunConfig, metrics: list[Metric], resolution: int,
             limit: int | None) -> dict:
    """The result this run will write, before any value is known (fields filled in by `evaluate`)."""
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
            **tok.info.as_dict(),
        },
        "dataset": {"name": dataset.name, "subset": task.subset, "limit": limit, "fingerprint": None,
                    "num_samples": None, "num_skipped": None, "skipped": None, "resolution": resolution},
        "metrics": None,
        "config": json.loads(json.dumps(asdict(cfg))),  # as stored: a resumed run returns the same dict
        "environment": environment(tok.device),
        "timings": None,
    }


def evaluate(tok: Tokenizer, dataset: Dataset, task: Task, out: Path, cfg: RunConfig = RunConfig(),
             progress: bool = True) -> tuple[dict, Path]:
    """Run ``task`` and write ``<out>/<dataset>/<tokenizer>/<task><key>.json`` plus per-image rows.

    ``<key>`` names the sample set (`results.sample_key`). An existing result that still stands for this
    run (`results.stored_result`) is returned as is unless ``cfg.overwrite``: an interrupted multi-task run,
    started again, resumes at the first task it had not finished. Any other existing result is
    recomputed, with a warning saying what differed. Raises `RunError` (writing nothing) when no image
    can be evaluated.
    """
    resolution = cfg.resolution or tok.info.resolution
    tok.layout(resolution)  # a size the tokenizer cannot take: ValueError naming the sizes it can
    candidates = dataset.samples(task.subset)
    limit = cfg.limit if cfg.limit is not None and cfg.limit < len(candidates) else None
    samples = candidates[:limit]
    skipped = dataset.skipped()
    if not samples:
        raise RunError(f"dataset {dataset.name} has no images for task {task.name}{_describe_skipped(skipped)}")
    metrics = task.metrics(cfg)
    result = _planned(tok, dataset, task, cfg, metrics, resolution, limit)
    path = result_path(out, dataset.name, tok.label, task.name, sample_key(resolution, tok.info.resolution, limit))
    if path.exists() and not cfg.overwrite:
        old, reason = stored_result(path, result, task.settings,
                                    lambda: fingerprint(samples, resolution, cfg.batch_size))
        if old is not None:
            return old, path
        warnings.warn(f"recomputing {path}: {reason}", stacklevel=2)

    device = tok.device
    torch.manual_seed(cfg.seed)
    fp = Fingerprint()
    rows: list[dict] = []
    image_dir = path.parent / "images" / path.name[: -len(".json")]
    started = time.perf_counter()
    bar = tqdm(total=len(samples), desc=f"{tok.label} | {task.name}", unit="img", disable=not progress, leave=False)
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
            fp.update(batch)
            saved = len(rows) - len(batch.ids)
            _save_images(image_dir, batch.images, recon.cpu(), batch.ids, cfg.save_images - saved)
            bar.update(len(batch.ids))
            bar.set_postfix({k: f"{np.mean(nums):.3f}" for k, col in columns.items()
                             if (nums := [v for v in col if isinstance(v, (int, float))])})
    bar.close()
    if not rows:
        raise RunError(f"no image of dataset {dataset.name} could be evaluated for task {task.name}"
                       f"{_describe_skipped(skipped)}; earlier results are kept")

    values = {}
    for m in metrics:
        m.sync()
        values.update({k: v.as_dict() for k, v in m.compute().items()})
    result["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["dataset"].update(fingerprint=fp.hexdigest(), num_samples=len(rows), num_skipped=len(skipped),
                             skipped=[asdict(s) for s in skipped])
    result["metrics"] = values
    result["timings"] = {"total_s": round(time.perf_counter() - started, 3)}
    write_result(path, result, rows)
    return result, path


def _save_images(folder: Path, originals: torch.Tensor, recons: torch.Tensor, ids: list[str], n: int) -> None:
    """Save the first ``n`` reconstructions of this batch (and their originals) as PNG."""
    for i in range(min(max(n, 0), len(ids))):
        name = ids[i].replace("/", "__").rsplit(".", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(recons[i].permute(1, 2, 0).numpy()).save(folder / f"{name}.png")
        Image.fromarray(originals[i].permute(1, 2, 0).numpy()).save(folder / f"{name}.orig.png")

"""The result files: their format (versioned JSON), where they go, when one still stands, reading them back.

Layout: ``<out>/<dataset>/<tokenizer>/<task><key>.json``, its per-image rows beside it in
``<task><key>.per_image.jsonl``. ``<key>`` names the sample set when it is not the default one:
``.<R>px`` for a resolution other than the tokenizer's native one, ``.first<N>`` when ``--limit N`` leaves
out some of the task's images (``reconstruction.64px.first3.json``); the whole set at the native
resolution has no key (``reconstruction.json``). So runs over different sample sets sit side by side, and
a run over the same sample set with other settings replaces the file.

Schema ``vtbench.result/2`` adds to ``/1``: ``versions`` (``task``: `Task.version`, ``metrics``: name ->
`Metric.version`), ``dataset.limit`` (the ``N`` of ``first<N>``, null for the whole set) and
``per_image_sha256`` (of the per-image file; the rows are written first, the result last, so a result
file on disk always names rows that were completely written).

A stored result stands for a new run (`stored_result`) only when the two share the schema, the
weights' sha256, the task and metric versions, the sample set (subset, limit, resolution), a stochastic
decoder's options (``tokenizer.sampling``: steps, guidance, ...), the tokenizer's precision, the
settings the task's values depend on (`Task.settings`), intact per-image rows, and the dataset fingerprint
(the images themselves); the runner recomputes it otherwise and says which of these differed.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Iterable

import numpy as np
import PIL
import torch

from ..common import sha256_bytes, sha256_file, write_atomic
from ..errors import VtbenchError
from . import showcase

SCHEMA = "vtbench.result/2"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


def sample_key(resolution: int, native: int, limit: int | None) -> str:
    """The file-name part that tells a sample set from the default one ('' for the whole set, native size)."""
    return (f".{resolution}px" if resolution != native else "") + (f".first{limit}" if limit is not None else "")


def result_path(out: Path, dataset: str, tokenizer: str, task: str, key: str = "") -> Path:
    return out / slug(dataset) / slug(tokenizer) / f"{task}{key}.json"


def rows_path(path: Path) -> Path:
    """The per-image rows of the result at ``path``."""
    return path.with_name(path.name[: -len(".json")] + ".per_image.jsonl")


def write_result(path: Path, result: dict, rows: list[dict]) -> None:
    """Write the per-image rows, then the result naming their sha256 (both atomically)."""
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows)
    result["per_image"] = rows_path(path).name
    result["per_image_sha256"] = sha256_bytes(text.encode("utf-8"))
    write_atomic(rows_path(path), text)
    write_atomic(path, json.dumps(result, indent=2, allow_nan=False) + "\n")


def read_rows(path: Path) -> list[dict]:
    """The per-image rows of the result at ``path``."""
    return [json.loads(line) for line in rows_path(path).read_text(encoding="utf-8").splitlines()]


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: torch.device) -> dict:
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    return env


def identity(result: dict, settings: Iterable[str]) -> dict:
    """What a stored result must share with a new run, but for the fingerprint and the rows (as JSON values)."""
    d, versions = result["dataset"], result["versions"]
    fields = {"weights sha256": result["tokenizer"]["weights"]["sha256"], "task version": versions["task"],
              "metric versions": versions["metrics"], "subset": d["subset"], "limit": d["limit"],
              "resolution": d["resolution"], "decoding options": result["tokenizer"].get("sampling", {}),
              "precision": result["config"].get("precision", "fp32"),
              "showcase images": result["config"].get("showcase", 0),
              **{s: result["config"][s] for s in settings}}
    return json.loads(json.dumps(fields))


def _difference(name: str, old, new) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        old, new = ({k: d.get(k) for k in changed} for d in (old, new))
    return f"{name} {json.dumps(old)} -> {json.dumps(new)}"


def stored_result(path: Path, planned: dict, settings: Iterable[str], fingerprint) -> tuple[dict | None, str]:
    """``(result, "")`` when the result at ``path`` stands for the run ``planned`` (a result without
    values), else ``(None, why not)``. ``fingerprint()`` gives the run's dataset fingerprint; it is called
    last, only when everything else matches.
    """
    try:
        old = read_result(path)
        have = identity(old, settings)
    except ResultError as e:
        return None, str(e)
    except (KeyError, TypeError) as e:
        return None, f"it lacks the field {e}"
    for name, value in identity(planned, settings).items():
        if have[name] != value:
            return None, _difference(name, have[name], value)
    rows = rows_path(path)
    if not rows.is_file() or sha256_file(rows) != old.get("per_image_sha256"):
        return None, f"its per-image rows {rows.name} are missing or are not the ones it was written with"
    if why := showcase.stale(path, old.get("showcase")):
        return None, why
    new_fingerprint = fingerprint()
    if old["dataset"]["fingerprint"] != new_fingerprint:
        return None, _difference("dataset fingerprint", old["dataset"]["fingerprint"][:16], new_fingerprint[:16])
    return old, ""


class ResultError(VtbenchError, ValueError):
    """A file under the results folder is not a vtbench result it can use."""


def read_result(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{path}: not readable JSON ({e})") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != SCHEMA:
        raise ResultError(f"{path}: result schema {schema!r}, expected {SCHEMA!r} "
                          "(`vtbench run` with the same options recomputes it)")
    return data


def load_results(folder: Path) -> list[dict]:
    """Every result file below ``folder``, in path order (per-image rows are separate .jsonl files).
    `vtbench bench-speed` files (schema ``vtbench.speed/...``) are skipped: `speed.load_speed_results` reads them."""
    if not folder.is_dir():
        raise ResultError(f"results folder {folder} does not exist")
    out = []
    for p in sorted(folder.rglob("*.json")):
        try:
            data = read_result(p)
        except ResultError:
            from .speed import is_speed_result  # here: speed imports this module

            if is_speed_result(p):
                continue
            raise
        data["_path"] = str(p.relative_to(folder))
        out.append(data)
    return out


# --- flat records (`vtbench.results` makes DataFrames of them) ------------------------------------------
#: the fields of a `metric_records` record, in order
METRIC_COLUMNS = ("tokenizer", "registry_name", "weights_tag", "weights_sha256", "random_weights", "family",
                  "dataset", "subset", "resolution", "limit", "num_samples", "fingerprint", "task", "metric", "value",
                  "unit", "higher_is_better", "count", "min_count", "available", "reason", "note", "interval_low",
                  "interval_high", "implementation", "task_version", "metric_version", "vtbench_version",
                  "git_commit", "created", "precision", "world_size", "path")


def _number(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def interval(entry: dict) -> tuple[float | None, float | None]:
    """A metric entry's 95% interval (``ci_low``, ``ci_high``; `intervals`); ``(None, None)`` when it has none."""
    return _number(entry.get("ci_low")), _number(entry.get("ci_high"))


def _sample_set(r: dict) -> dict:
    """The fields that name a result: tokenizer, weights, dataset, sample set, task, path."""
    tok, d = r["tokenizer"], r["dataset"]
    weights = tok.get("weights") or {}
    return {"tokenizer": tok["name"], "registry_name": tok.get("registry_name"), "weights_tag": weights.get("tag"),
            "weights_sha256": weights.get("sha256"), "random_weights": weights.get("tag") == "random",
            "family": tok.get("family"), "dataset": d["name"], "subset": d.get("subset"),
            "resolution": d["resolution"], "limit": d.get("limit"), "num_samples": d.get("num_samples"),
            "fingerprint": d.get("fingerprint"), "task": r["task"], "path": r.get("_path")}


def _order(r: dict) -> tuple:
    d = r["dataset"]
    return (d["name"], d.get("subset") or "", r["task"], d["resolution"], d.get("limit") is not None,
            d.get("limit") or 0, r["tokenizer"]["name"], r.get("_path") or "")


def _value_owners() -> dict[str, list[str]]:
    """Value name -> the `Metric.name`s that compute a value of that name (keys of ``versions.metrics``;
    ``cer`` comes from the text task's metric and from the legibility one)."""
    from .tasks import METRICS  # here: the metrics are heavy and tasks imports them all

    owners: dict[str, list[str]] = {}
    for name, m in METRICS.items():
        for k in m.outputs or {name: None}:
            owners.setdefault(k, []).append(name)
    return owners


def metric_records(results: list[dict]) -> list[dict]:
    """One record (fields `METRIC_COLUMNS`) per metric value of each of `load_results`' results, ordered by
    dataset, subset, task, resolution, limit, tokenizer, path and metric name."""
    owners, out = _value_owners(), []
    for r in sorted(results, key=_order):
        base, versions = _sample_set(r), r.get("versions") or {}
        metric_versions = versions.get("metrics") or {}
        for name in sorted(r["metrics"]):
            m = r["metrics"][name]
            low, high = interval(m)
            rec = {**base, "metric": name, "value": m.get("value"), "unit": m.get("unit", ""),
                   "higher_is_better": m.get("higher_is_better"), "count": m.get("count"),
                   "min_count": m.get("min_count", 0),
                   "available": m.get("available", True), "reason": m.get("reason", ""), "note": m.get("note", ""),
                   "interval_low": low, "interval_high": high, "implementation": m.get("implementation", ""),
                   "task_version": versions.get("task"),
                   "metric_version": next((metric_versions[o] for o in owners.get(name, [name])
                                           if o in metric_versions), None),
                   "vtbench_version": r.get("vtbench_version"), "git_commit": r.get("git_commit"),
                   "created": r.get("created"), "precision": (r.get("config") or {}).get("precision", "fp32"),
                   "world_size": (r.get("environment") or {}).get("world_size", 1)}
            out.append({k: rec[k] for k in METRIC_COLUMNS})
    return out


def row_records(folder: Path, results: list[dict]) -> list[dict]:
    """One record per image per result (``results`` from ``load_results(folder)``, in `metric_records`' order):
    the result's tokenizer, dataset, sample set, task and path, then the image's row (`read_rows`)."""
    out = []
    for r in sorted(results, key=_order):
        path = folder / r["_path"]
        try:
            rows = read_rows(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ResultError(f"{rows_path(path)}: per-image rows not readable ({e})") from None
        base = _sample_set(r)
        out += [{**base, **row} for row in rows]
    return out

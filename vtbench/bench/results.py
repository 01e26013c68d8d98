"""The result file format (versioned JSON), atomic writes, and reading results back."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import PIL
import torch

SCHEMA = "vtbench.result/1"


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: dict) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_atomic(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


def result_path(out: Path, dataset: str, tokenizer: str, task: str) -> Path:
    return out / slug(dataset) / slug(tokenizer) / f"{task}.json"


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


class ResultError(ValueError):
    """A file under the results folder is not a vtbench result it can use."""


def read_result(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ResultError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ResultError(f"{path}: schema {data.get('schema') if isinstance(data, dict) else None!r}, expected {SCHEMA!r}")
    return data


def load_results(folder: Path) -> list[dict]:
    """Every result file below ``folder``, in path order (per-image rows are separate .jsonl files)."""
    if not folder.is_dir():
        raise ResultError(f"results folder {folder} does not exist")
    out = []
    for p in sorted(folder.rglob("*.json")):
        data = read_result(p)
        data["_path"] = str(p.relative_to(folder))
        out.append(data)
    return out


"""Task registry: a task is a dataset subset plus the metrics computed on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .metrics import PSNR, SSIM, Metric, Throughput, TokenStats


@dataclass(frozen=True)
class Task:
    name: str
    subset: str  # which subset of a dataset with subsets (the builtin one) the task reads
    metrics: Callable[[], list[Metric]]
    description: str


def _image_metrics() -> list[Metric]:
    return [PSNR(), SSIM(), TokenStats(), Throughput()]


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("reconstruction", "photos", _image_metrics, "reconstruction quality on photographs"),
    Task("detail", "detail", _image_metrics, "fine detail: gratings, zone plate, checkerboards, textures"),
    Task("text", "text", _image_metrics, "rendered text with ground truth"),
)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name]

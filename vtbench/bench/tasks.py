"""Task registry: a task is a dataset subset plus the metrics computed on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UnknownName
from .metrics import GMSD, PSNR, SSIM, HighFrequencyEnergy, Metric, Throughput, TokenStats
from .perceptual import FID, LPIPS
from .pfid import PFID
from .text import Legibility, TextPreservation


@dataclass(frozen=True)
class Task:
    name: str
    subset: str  # which subset of a dataset with subsets (the builtin one) the task reads
    #: the metrics of one run, from its config and the tokenizer's `TokenLayout` at the run's resolution
    metrics: Callable[["RunConfig", "TokenLayout"], list[Metric]]  # noqa: F821
    description: str
    #: bump whenever a change to the task (its subset, metrics or their settings) can change a value
    version: int = 1
    #: the `RunConfig` fields its values depend on besides the sample set: a stored result made with
    #: other values of these is recomputed
    settings: tuple[str, ...] = ("seed",)
    #: False: its reconstructions repeat another task's (pFID decodes the same photos): keep no showcase
    showcase: bool = True


def _common(layout) -> list[Metric]:
    return [PSNR(), SSIM(), LPIPS(), TokenStats(layout.vocab_sizes), Throughput()]


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("reconstruction", "photos", lambda cfg, layout: _common(layout) + [FID(seed=cfg.seed)],
         "reconstruction quality on photographs: PSNR, SSIM, LPIPS, rFID, KID"),
    Task("detail", "detail", lambda cfg, layout: _common(layout) + [GMSD(), HighFrequencyEnergy()],
         "fine detail (gratings, zone plate, checkerboards, textures): adds GMSD and high-frequency energy"),
    Task("text", "text", lambda cfg, layout: _common(layout) + [TextPreservation()],
         "text preservation: OCR CER / word accuracy against ground truth, with the OCR-of-original baseline"),
    Task("pfid", "photos", lambda cfg, layout: [PFID(cfg.alpha, cfg.delta, cfg.seed,
                                                     num_scales=len(layout.scale_shapes)),
                                                TokenStats(layout.vocab_sizes)],
         "pFID: rFID after perturbing a fraction alpha of tokens to near neighbours (sweep over alpha)",
         settings=("seed", "alpha", "delta"), showcase=False),
    Task("legibility", "ladder", lambda cfg, layout: [Legibility(), TokenStats(layout.vocab_sizes), Throughput()],
         "font-size ladder (8-96 px): OCR word accuracy and CER per size, smallest legible size (legible_from_px)"),
)}

METRICS: dict[str, type[Metric]] = {m.name: m for m in (PSNR, SSIM, LPIPS, FID, PFID, GMSD, HighFrequencyEnergy,
                                                        TextPreservation, Legibility, TokenStats,
                                                        Throughput)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UnknownName(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name]

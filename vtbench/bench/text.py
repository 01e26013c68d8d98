"""Text preservation: OCR of reconstructions against ground truth, or against OCR of the originals.

Normalisation before comparing (documented in the README): Unicode NFKC, every run of whitespace
(newlines included) becomes one space, leading/trailing space dropped; the ``_nocase`` variants also
casefold. Character error rate (CER) is the character-level Levenshtein distance summed over images,
divided by the summed ground-truth length. Word error rate (WER) is the same on whitespace-separated
words (a real word-level WER, not characters per word). Word accuracy is the fraction of ground-truth
words that the alignment matches exactly ((N - substitutions - deletions) / N).

Images with ground truth (``meta["text"]``) get ``cer``/``wer``/``word_accuracy`` for the reconstruction
and ``ocr_baseline_*`` for the original, which says how much the OCR engine itself loses. Images without
ground truth get ``ocr_agreement_cer``: CER of OCR(reconstruction) against OCR(original).
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._extras import require
from ..common import write_atomic
from . import metric_weights
from .datasets import pixel_hash
from .metrics import EvalBatch, Metric

OCR_MIN_SIDE = 512  # images are upsampled (bicubic, integer factor) until the short side reaches this


def normalise(text: str, casefold: bool = False) -> str:
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()
    return text.casefold() if casefold else text


def align(ref: list | str, hyp: list | str) -> tuple[int, int]:
    """Levenshtein alignment of two sequences: (edit distance, number of exactly matched reference items)."""
    prev = [(j, 0) for j in range(len(hyp) + 1)]  # (cost, matches), cost first so min prefers fewer edits
    for i, r in enumerate(ref, 1):
        cur = [(i, 0)]
        for j, h in enumerate(hyp, 1):
            sub = prev[j - 1]
            diag = (sub[0], sub[1] + 1) if r == h else (sub[0] + 1, sub[1])
            cur.append(min(diag, (prev[j][0] + 1, prev[j][1]), (cur[j - 1][0] + 1, cur[j - 1][1]),
                           key=lambda t: (t[0], -t[1])))
        prev = cur
    return prev[-1]


class EasyOCREngine:
    """EasyOCR (CRAFT detector + English recogniser) with weights from the cache, never downloaded by easyocr.

    An OCR engine has a ``name``, the metric ``weights`` it needs, a ``cache_tag`` naming what its output
    depends on, and ``read(images) -> list[str]`` on uint8 ``(B, 3, H, W)``.
    """

    name = "easyocr-en"
    #: bump whenever `read` changes (upsampling, reader settings): cached readings of another version are redone
    version = 1
    weights = ("easyocr-craft", "easyocr-english")

    def __init__(self, device: str = "cpu"):
        easyocr = require("easyocr", "bench", "the text-preservation OCR")
        model_dir = metric_weights.WEIGHTS["easyocr-craft"].path().parent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch deprecations inside easyocr
            self.reader = easyocr.Reader(["en"], gpu=device.startswith("cuda"), model_storage_directory=str(model_dir),
                                         download_enabled=False, verbose=False)
        self.cache_tag = (f"{self.name}-v{self.version}-easyocr{easyocr.__version__}-"
                          f"{metric_weights.pins_digest(self.weights)}")

    def read(self, images: torch.Tensor) -> list[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pin_memory without an accelerator
            return [" ".join(self.reader.readtext(img, detail=0, paragraph=True)) for img in _upsample_for_ocr(images)]


def _upsample_for_ocr(images: torch.Tensor) -> list[np.ndarray]:
    factor = max(1, math.ceil(OCR_MIN_SIDE / min(images.shape[-2:])))
    x = images.float()
    if factor > 1:
        x = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)
    return list(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


ENGINES = {"easyocr-en": EasyOCREngine}


def ocr_engine(name: str, device: str) -> EasyOCREngine:
    """An OCR engine whose weights are verified (fetched first if missing and allowed)."""
    engine = ENGINES[name]
    for w in engine.weights:
        metric_weights.ensure(w)
    return _engine(engine, device, metric_weights.cache_dir())


@functools.lru_cache(maxsize=2)
def _engine(engine: type, device: str, cache) -> EasyOCREngine:
    return engine(device)


class OCRCache:
    """OCR text of originals, keyed by the engine's ``cache_tag`` (name, version, library, pinned weights) and
    a hash of the pixels. Entries are JSON; one that cannot be read counts as missing: read again, overwritten."""

    def __init__(self, engine, root: Path | None = None):
        self.engine = engine
        self.root = (root or metric_weights.cache_dir() / "ocr") / engine.cache_tag

    def _path(self, image: torch.Tensor) -> Path:
        key = pixel_hash(image)
        return self.root / key[:2] / f"{key}.json"

    def read(self, images: torch.Tensor) -> list[str]:
        paths = [self._path(img) for img in images]
        texts = [_cached_text(p) for p in paths]
        missing = [i for i, t in enumerate(texts) if t is None]
        if missing:
            for i, t in zip(missing, self.engine.read(images[missing])):
                write_atomic(paths[i], json.dumps({"text": t}, ensure_ascii=False))
                texts[i] = t
        return texts


def _cached_text(path: Path) -> str | None:
    """The text of a cache entry; None when it is missing or unreadable."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    text = entry.get("text") if isinstance(entry, dict) else None
    return text if isinstance(text, str) else None


#: per comparison: char edits, reference chars, word edits, word hits, reference words
_COUNTS = 5


class TextPreservation(Metric):
    name = "ocr"
    description = "OCR character/word error rates against ground truth (or OCR of the original)"
    outputs = {
        "cer": (False, "fraction"), "cer_nocase": (False, "fraction"),
        "wer": (False, "fraction"), "word_accuracy": (True, "fraction"), "word_accuracy_nocase": (True, "fraction"),
        "ocr_baseline_cer": (False, "fraction"), "ocr_baseline_word_accuracy": (True, "fraction"),
        "ocr_agreement_cer": (False, "fraction"),
    }

    def __init__(self, engine: str = "easyocr-en", cache: Path | None = None):
        """``cache``: the folder of OCR caches (default ``$VTBENCH_CACHE/ocr``)."""
        super().__init__()
        self.engine_name, self.cache_root = engine, cache
        self.implementation = (f"{engine} via vtbench (images upsampled to >= {OCR_MIN_SIDE} px, bicubic); "
                               "NFKC + whitespace normalisation; Levenshtein CER/WER")
        # one row of counts per comparison: recon vs truth, recon vs truth (no case), original vs truth,
        # recon vs original
        self.add_state("counts", torch.zeros(4, _COUNTS, dtype=torch.float64))
        self.add_state("images", torch.zeros(2, dtype=torch.float64))  # with / without ground truth

    def _update(self, batch: EvalBatch):
        engine = ocr_engine(self.engine_name, str(batch.device))
        originals = OCRCache(engine, self.cache_root).read(batch.originals)
        recons = engine.read(batch.reconstructions)
        rows = {"ocr_text": recons, "cer": [], "word_accuracy": [], "ocr_agreement_cer": []}
        for meta, orig, rec in zip(batch.meta, originals, recons):
            truth = meta.get("text")
            if truth is None:
                c = self._add(3, orig, rec)
                self.images[1] += 1
                rows["ocr_agreement_cer"].append(_rate(c[0], c[1]))
                rows["cer"].append(None)
                rows["word_accuracy"].append(None)
                continue
            self.images[0] += 1
            c = self._add(0, truth, rec)
            self._add(1, truth, rec, casefold=True)
            self._add(2, truth, orig)
            rows["cer"].append(_rate(c[0], c[1]))
            rows["word_accuracy"].append(_rate(c[3], c[4]))
            rows["ocr_agreement_cer"].append(None)
        return rows

    def _add(self, row: int, ref: str, hyp: str, casefold: bool = False) -> tuple:
        c = _compare(ref, hyp, casefold)
        self.counts[row] += torch.tensor(c, dtype=torch.float64)
        return c

    def _compute(self):
        with_truth, without = int(self.images[0]), int(self.images[1])
        c = self.counts

        def rate(num, den, n):
            return _rate(float(num), float(den)) if n else None

        out = {
            "cer": rate(c[0, 0], c[0, 1], with_truth), "cer_nocase": rate(c[1, 0], c[1, 1], with_truth),
            "wer": rate(c[0, 2], c[0, 4], with_truth), "word_accuracy": rate(c[0, 3], c[0, 4], with_truth),
            "word_accuracy_nocase": rate(c[1, 3], c[1, 4], with_truth),
            "ocr_baseline_cer": rate(c[2, 0], c[2, 1], with_truth),
            "ocr_baseline_word_accuracy": rate(c[2, 3], c[2, 4], with_truth),
            "ocr_agreement_cer": rate(c[3, 0], c[3, 1], without),
        }
        counts = {k: (without if k == "ocr_agreement_cer" else with_truth) for k in out}
        return {k: self._value(k, v, counts[k]) for k, v in out.items() if counts[k]}


def _compare(ref: str, hyp: str, casefold: bool = False) -> tuple[int, int, int, int, int]:
    """(char edits, ref chars, word edits, word hits, ref words) after normalisation."""
    r, h = normalise(ref, casefold), normalise(hyp, casefold)
    char_edits, _ = align(r, h)
    rw, hw = r.split(), h.split()
    word_edits, word_hits = align(rw, hw)
    return char_edits, len(r), word_edits, word_hits, len(rw)


def _rate(num: float, den: float) -> float:
    return num / den if den else (0.0 if num == 0 else 1.0)

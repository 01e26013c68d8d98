"""Markdown leaderboards: a pure function of the result files.

One file per task; inside it, one section per sample set: (dataset, resolution, ``--limit``, dataset
fingerprint). Results computed on different images never share a table, and no two tables share a
heading: a limited set says "first N images", and sets that differ only by fingerprint name it. A section
holds the tokenizers' table (with the JPEG curve read at each row's bits per pixel), the classical codecs'
table, the token statistics, the rate-distortion plot and the reconstruction grid (`showcase`); the
reconstruction page ends with the figures the tokenizers' authors publish, apart from what was measured here.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections import Counter, defaultdict
from pathlib import Path

from ..common import write_atomic
from ..errors import VtbenchError
from . import plots, showcase, speed
from .results import load_results, slug

#: metric columns, in this order when present; others follow alphabetically
PREFERRED = ("psnr", "ssim", "lpips", "rfid", "kid", "pfid", "gmsd", "hf_energy_ratio", "cer", "cer_nocase",
             "word_accuracy", "legible_from_px", "ocr_agreement_cer")
#: the token statistics (`TokenStats`), in a table of their own (`_token_table`)
TOKEN_STATS = {"codebook_usage", "token_entropy", "token_perplexity", "marginal_codebook_usage", "marginal_entropy"}
#: in result files but not in tables: speed depends on the machine, bpp has its own column, perplexity = 2^entropy,
#: WER and the case-insensitive word accuracy repeat other columns, the OCR baseline is a note under the table
HIDDEN = {"encode_images_per_s", "decode_images_per_s", "bits_per_pixel", "tokens_per_image", "wer",
          "word_accuracy_nocase", "ocr_baseline_cer", "ocr_baseline_word_accuracy", "ocr_baseline_legible_from_px",
          *TOKEN_STATS}
ARROWS = {True: " ↑", False: " ↓", None: ""}  # the better direction, after a metric's name
#: the metrics read off the JPEG curve at each tokenizer's bits per pixel (`_jpeg_columns`)
AT_JPEG = ("psnr", "lpips")
#: shown once under a table: the same for every row (a property of the data and the OCR engine)
BASELINES = {"ocr_baseline_cer": "OCR of the original images: CER", "ocr_baseline_word_accuracy": "word accuracy",
             "ocr_baseline_legible_from_px": "legible from (px)"}


class LeaderboardError(VtbenchError, ValueError):
    pass


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "dB":
        return f"{value:.2f}"
    if unit == "px":
        return f"{value:.0f}"
    if unit in ("fraction", "bits", "bpp") or abs(value) < 10:
        return f"{value:.4f}"
    return f"{value:.2f}"


def _vocab(tok: dict) -> str:
    v = tok.get("vocab_sizes") or []
    if not v:
        return "continuous"
    if len(set(v)) == 1 and len(v) > 1:
        return f"{v[0]}^{len(v)}"
    return "x".join(str(x) for x in v)


def _row_name(r: dict) -> str:
    tok = r["tokenizer"]
    name = tok["name"]
    if tok.get("weights", {}).get("tag") == "random":
        name += " (random weights)"
    return name + (" †" if _caveat(r) else "")


def _caveat(r: dict) -> str:
    """What a tokenizer's own entry says its numbers do not show (``info.caveat``)."""
    return r["tokenizer"].get("caveat", "")


def _is_codec(r: dict) -> bool:
    return bool(r["tokenizer"].get("codec"))


def metric_order(name: str) -> tuple:
    """Sort key of metric columns: `PREFERRED` first, in its order, then the others alphabetically."""
    return PREFERRED.index(name) if name in PREFERRED else len(PREFERRED), name


def _metric_names(results: list[dict]) -> list[str]:
    return sorted({k for r in results for k in r["metrics"] if k not in HIDDEN}, key=metric_order)


def _directions(results: list[dict], names: list[str]) -> dict[str, bool | None]:
    direction = {}
    for k in names:
        seen = {r["metrics"][k]["higher_is_better"] for r in results if k in r["metrics"]}
        if len(seen) > 1:
            raise LeaderboardError(f"metric {k!r} has conflicting directions across result files")
        direction[k] = seen.pop()
    return direction


def _cell(v: dict, bold: bool) -> str:
    """A value with its interval: ``±half-width`` when the interval is about centred on it (a mean), else
    ``[low, high]`` (bias-corrected intervals of FID and KID target the population value, not the estimate)."""
    unit = v.get("unit", "")
    text = _fmt(v["value"], unit) if v.get("available", True) else "unavailable"
    low, high = v.get("ci_low"), v.get("ci_high")
    if low is not None and v["value"] is not None:
        half = (high - low) / 2
        centred = abs((low + high) / 2 - v["value"]) <= 0.25 * half
        text += f" ±{_fmt(half, unit)}" if centred else f" [{_fmt(low, unit)}, {_fmt(high, unit)}]"
    return f"**{text}**" if bold else text


def _jpeg_at(curve: list[tuple[float, float, str]], bpp: float | None) -> float | None:
    """The JPEG curve's value at ``bpp``, linear in log bpp between the two measured qualities around it;
    None outside the measured range."""
    if bpp is None or bpp <= 0 or len(curve) < 2 or not curve[0][0] <= bpp <= curve[-1][0]:
        return None
    for (b0, v0, _), (b1, v1, _) in zip(curve, curve[1:]):
        if b0 <= bpp <= b1:
            t = 0.0 if b1 == b0 else (math.log(bpp) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return v0 + t * (v1 - v0)
    return None


def _table(results: list[dict], codecs: list[dict] = ()) -> list[str]:
    """The tokenizers' table; with ``codecs`` (JPEG results of the same images), the JPEG curve read at each
    row's bits per pixel beside its own values."""
    metric_names = _metric_names(results)
    direction = _directions(results, metric_names)
    best = {k: _best([r["metrics"][k] for r in results if k in r["metrics"]], hib) for k, hib in direction.items()}
    jpeg = {k: c for k in AT_JPEG if k in metric_names
            and len(c := plots.rate_distortion(codecs, k).get("JPEG", [])) >= 2}

    header = (["Tokenizer", "Family", "Type", "Tokens", "Vocab", "bpp"]
              + [f"{k}{ARROWS[direction[k]]}" for k in metric_names] + [f"JPEG {k} at bpp" for k in jpeg])
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---"] + ["---:"] * (len(header) - 3)) + "|"]
    for r in sorted(results, key=_row_order):
        tok, m = r["tokenizer"], r["metrics"]
        bpp = m.get("bits_per_pixel", {}).get("value")
        measured = m.get("tokens_per_image", {}).get("value")  # at the evaluated resolution
        tokens = round(measured) if measured is not None else tok["tokens_per_image"]
        cells = [_row_name(r), tok["family"], "discrete" if tok["discrete"] else "continuous",
                 str(tokens), _vocab(tok), _fmt(bpp, "bpp")]
        cells += [_cell(m[k], best[k] is m[k]) if k in m else "" for k in metric_names]
        cells += [_fmt(_jpeg_at(c, bpp), m[k].get("unit", "")) if k in m else "" for k, c in jpeg.items()]
        lines.append("| " + " | ".join(cells) + " |")
    legend = []
    if any(r["metrics"][k].get("ci_low") is not None for r in results for k in metric_names if k in r["metrics"]):
        legend.append("± is half the 95% bootstrap interval over images ([low, high] where the interval is not "
                      "centred on the value: FID and KID, whose bias-corrected intervals target the population value); "
                      "bold marks a best only when its interval lies beyond the runner-up's, excludes zero, and its "
                      "sample reaches the metric's stated minimum.")
    if jpeg:
        legend.append("JPEG ... at bpp: the JPEG curve measured on these images (Pillow, qualities "
                      f"{_qualities(codecs, 'jpeg')}), read at the row's bits per pixel (linear in log bpp; n/a "
                      "outside the measured range).")
    return lines + ([""] + legend if legend else []) + _notes(results, metric_names)


def _qualities(codecs: list[dict], codec: str) -> str:
    return ", ".join(str(q) for q in sorted(r["tokenizer"]["quality"] for r in codecs
                                            if r["tokenizer"]["codec"] == codec))


def _codec_table(codecs: list[dict]) -> list[str]:
    """The classical codecs at each quality: bits per pixel and the metrics of the tokenizers' table (no token
    statistics: their tokens are file bytes)."""
    names = _metric_names(codecs)
    direction = _directions(codecs, names)
    lines = ["| Codec | Quality | bpp | " + " | ".join(f"{k}{ARROWS[direction[k]]}" for k in names) + " |",
             "|---|---:|---:|" + "---:|" * len(names)]
    for r in sorted(codecs, key=lambda r: (r["tokenizer"]["codec"], r["tokenizer"]["quality"])):
        tok, m = r["tokenizer"], r["metrics"]
        cells = [tok["codec"].upper().replace("WEBP", "WebP"), str(tok["quality"]),
                 _fmt(m.get("bits_per_pixel", {}).get("value"), "bpp")]
        lines.append("| " + " | ".join(cells + [_cell(m[k], False) if k in m else "" for k in names]) + " |")
    how = sorted({re.sub(r",? quality \d+", "", r["tokenizer"].get("notes", "").split(";")[0]) for r in codecs})
    return lines + ["", "Bits per pixel: the encoded file's bytes, headers included. " + " ".join(
        f"{h[0].upper()}{h[1:]}." for h in how if h)]


def _token_table(results: list[dict]) -> list[str]:
    """Token statistics under their real meaning: usage and entropy of the joint token (every component of a
    position together), their ceilings at this sample, and each component's own (mean over components)."""
    rows = [r for r in results if "codebook_usage" in r["metrics"] and not _is_codec(r)]
    if not rows:
        return []
    lines = ["| Tokenizer | Vocab (joint ids) | Positions | Joint usage ↑ | Usage ceiling | Joint entropy (bits) ↑ "
             "| of log2(vocab) | Per-component usage | Per-component entropy (bits) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=_row_order):
        tok, m = r["tokenizer"], r["metrics"]
        ids = math.prod(tok["vocab_sizes"])
        n = m["codebook_usage"]["count"]
        entropy = m["token_entropy"]["value"]
        several = len(tok["vocab_sizes"]) > 1
        per = [_fmt(m[k]["value"], m[k].get("unit", "")) if several and k in m else "(one component)"
               for k in ("marginal_codebook_usage", "marginal_entropy")]
        efficiency = entropy / math.log2(ids) if entropy is not None and ids > 1 else None
        cells = [_row_name(r), f"{ids:,}", f"{n:,}", _fmt(m["codebook_usage"]["value"], "fraction"),
                 _fmt(min(1.0, n / ids), "fraction"), _fmt(entropy, "bits"), _fmt(efficiency, "fraction"), *per]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", "Joint: the token of a position as one id (its components packed, mixed radix), counted over "
                    "every position of these images; usage is the fraction of ids seen at least once, which cannot "
                    "exceed positions / ids (the ceiling). Per-component: the same for each component's own codes "
                    "(FSQ levels, LFQ/BSQ bits, residual or factorised codebooks), averaged over components. "
                    "Continuous tokenizers and the classical codecs (whose tokens are file bytes) have none."]


def _row_order(r: dict) -> tuple:
    """Tokenizers grouped by family, baselines last; names in natural order (bicubic-f8 before bicubic-f16)."""
    tok = r["tokenizer"]
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", tok["name"])]
    return tok["family"] == "baseline", tok["family"], natural, tok["name"]


def _best(values: list[dict], higher_is_better: bool | None) -> dict | None:
    """The metric entry to mark best: the top value, only when its 95% interval and the runner-up's both exist
    and do not overlap (a lead inside the sampling noise of the images is not a win), its interval excludes
    zero (a KID indistinguishable from none), and its sample reaches the metric's stated ``min_count``."""
    ranked = [v for v in values if v["value"] is not None and v.get("available", True)]
    if higher_is_better is None or len(ranked) < 2:
        return None
    ranked.sort(key=lambda v: v["value"], reverse=higher_is_better)
    top, second = ranked[:2]
    if None in (top.get("ci_low"), second.get("ci_low")) or top.get("count", 0) < top.get("min_count", 0):
        return None
    if top["ci_low"] < 0 < top["ci_high"]:
        return None
    beyond = top["ci_low"] > second["ci_high"] if higher_is_better else top["ci_high"] < second["ci_low"]
    return top if beyond else None


def _notes(results: list[dict], metric_names: list[str]) -> list[str]:
    """Caveats, unavailability reasons and dataset baselines, each stated once below the table."""
    notes = []
    for k in metric_names:
        for text in sorted({r["metrics"][k].get("note", "") for r in results if k in r["metrics"]} - {""}):
            notes.append(f"- `{k}`: {text}")
        for text in sorted({r["metrics"][k].get("reason", "") for r in results
                            if k in r["metrics"] and not r["metrics"][k].get("available", True)} - {""}):
            notes.append(f"- `{k}` unavailable: {text}")
        small = sorted({(m["count"], m["min_count"]) for r in results if (m := r["metrics"].get(k))
                        and m.get("count", 0) < m.get("min_count", 0)})
        if small:
            counts = "/".join(str(c) for c, _ in small)
            notes.append(f"- `{k}`: {counts} samples, below its stated minimum of {small[0][1]}: never marked best")
    caveats = defaultdict(set)
    for r in results:
        if text := _caveat(r):
            caveats[text].add(r["tokenizer"]["name"])
    notes += [f"- † {', '.join(sorted(names))}: {text}" for text, names in sorted(caveats.items())]
    base = [f"{label} {_fmt(v, unit)}" for key, label in BASELINES.items()
            for v, unit in sorted({(r["metrics"][key]["value"], r["metrics"][key].get("unit", "fraction"))
                                   for r in results if r["metrics"].get(key, {}).get("value") is not None})]
    if base:
        notes.append("- " + ", ".join(base) + " (how much the OCR engine itself loses)")
    return ([""] + notes) if notes else []


def _settings_check(results: list[dict]) -> None:
    """A metric whose value depends on settings (pFID's alpha and delta) must use one setting per table."""
    for k in {k for r in results for k in r["metrics"]}:
        settings = {(e.get("alpha"), e.get("delta")) for r in results
                    if (e := r["metrics"].get(k, {}).get("extra") or {}) and "alpha" in e}
        if len(settings) > 1:
            raise LeaderboardError(f"{k} was computed with different settings {sorted(settings)}; "
                                   "rerun with one --alpha/--delta or keep the results apart")


def _sample_sets(results: list[dict]) -> dict[tuple, list[dict]]:
    """(task, dataset, resolution, limit, fingerprint) -> its results, in a stable order."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        d = r["dataset"]
        groups[(r["task"], d["name"], d["resolution"], d.get("limit"), d["fingerprint"])].append(r)
    order = sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3] is not None, k[3] or 0, k[4]))
    return {k: groups[k] for k in order}


def _headings(keys: list[tuple]) -> dict[tuple, tuple[str, bool]]:
    """(heading, shared) per sample set of a page: sets told apart only by their images (``shared``) name the
    fingerprint, so no two tables share a heading."""
    base = {k: f"{k[1]} at {k[2]} px" + (f", first {k[3]} images" if k[3] is not None else "") for k in keys}
    counts = Counter(base.values())
    return {k: (h + (f", images `{k[4][:8]}`" if counts[h] > 1 else ""), counts[h] > 1) for k, h in base.items()}


#: why a published figure and a figure measured here differ, said under the published table
WHY_PUBLISHED_DIFFERS = (
    "Why they differ from the tables above: the papers evaluate 50,000 ImageNet validation images (or 5,000 COCO "
    "images) at 256 px after their own resize and crop, and compute rFID against the statistics of the whole "
    "validation set with their FID code (pytorch-fid, the ADM suite or torch-fidelity: the same TF-FID Inception "
    "weights, other resizing). vtbench measures the images of the table's dataset (the builtin set: about a "
    "dozen photographs, text and synthetic detail), each reconstruction against its own original; FID on so few "
    "images is dominated by its small-sample bias, so its values are not comparable with a published rFID at all, "
    "and PSNR and SSIM depend on the images' content. Compare tokenizers within one table; use the published "
    "figures to place a tokenizer among the papers.")


def _published(results: list[dict]) -> list[str]:
    """The figures the tokenizers' authors publish (from the weights' entry in each result), one row per tokenizer."""
    found = {}
    for r in sorted(results, key=_row_order):
        figures = (r["tokenizer"].get("weights") or {}).get("figures") or {}
        if figures:
            found.setdefault(r["tokenizer"]["name"], figures)
    if not found:
        return []
    lines = ["## Published figures (reported by the authors, not measured here)", "",
             "| Tokenizer | rFID | PSNR | SSIM | Evaluated on | Note | Source |", "|---|---:|---:|---:|---|---|---|"]
    for name, f in found.items():
        cells = [name] + [f"{f[k]:g}" if isinstance(f.get(k), (int, float)) else "" for k in ("rfid", "psnr", "ssim")]
        cells += [f.get("dataset", ""), f.get("note", ""), f"<{f['source']}>" if f.get("source") else ""]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return lines + ["", WHY_PUBLISHED_DIFFERS, ""]


def _figures(key: tuple, rs: list[dict]) -> dict[str, str]:
    """Figure file name -> kind (a key of `FIGURES`), for the figures one sample set's results make."""
    task, dataset, resolution, _, fp = key
    wanted = {
        "rd": any(m.get("bits_per_pixel") and (m.get("psnr") or m.get("lpips")) for m in (r["metrics"] for r in rs)),
        "grid": any(r.get("showcase") and not _is_codec(r) for r in rs),  # codecs join a grid, never make one
        "pfid": any("curve" in (r["metrics"].get("pfid", {}).get("extra") or {}) for r in rs),
        "legibility": any("curve" in (r["metrics"].get("legible_from_px", {}).get("extra") or {}) for r in rs)}
    # <kind>_<task>_<dataset>_..., or <task>_<dataset>_... for the task's own figure (pfid, legibility)
    return {plots.plot_name(task if kind == task else f"{kind}_{task}", dataset, resolution, fp): kind
            for kind, want in wanted.items() if want}


GRID_CAPTION = (f"Reconstructions of the set's first images: original, then each tokenizer in table order. "
                f"Top: the whole image at {showcase.VIEW} px; bottom: the {showcase.CROP} px window outlined in red "
                f"on the original, at the evaluated resolution, magnified {showcase.ZOOM}x (nearest neighbour). "
                f"Last, of each baseline series (bicubic thumbnails, JPEG, WebP) the rate nearest the tokenizers' "
                f"median bits per pixel.")


def _section(key: tuple, rs: list[dict], heading: str, shared: bool) -> list[str]:
    _, dataset, resolution, _, fp = key
    n = sorted({r["dataset"]["num_samples"] for r in rs})
    out = [f"## {heading}", "", f"{'/'.join(map(str, n))} images, dataset fingerprint `{fp[:16]}`.", ""]
    if shared:
        out += ["> Results for this dataset were computed on different images (fingerprints differ); "
                "each set has its own table.", ""]
    _settings_check(rs)
    tokenizers, codecs = [r for r in rs if not _is_codec(r)], [r for r in rs if _is_codec(r)]
    if tokenizers:
        out += _table(tokenizers, codecs) + [""]
    if codecs:
        out += ["### Classical codecs", ""] + _codec_table(codecs) + [""]
    if token := _token_table(tokenizers):
        out += ["### Token statistics", ""] + token + [""]
    for name, kind in _figures(key, rs).items():
        with_codecs = kind == "rd" and codecs
        out += [f"![{FIGURES[kind][0]}{', with JPEG and WebP' if with_codecs else ''}]({name})", ""]
        if kind == "rd" and not codecs:
            out += ["No codec results on these images: `vtbench run --tokenizer 'jpeg-q*,webp-q*'` adds JPEG and WebP "
                    "as reference curves (and the JPEG columns above).", ""]
        if kind == "grid":
            out += [GRID_CAPTION, ""]
    return out


def build(results: list[dict], speed_results: list[dict] = (),
          vs_pages: dict[str, str] | None = None) -> dict[str, str]:
    """Markdown text per file name (``<task>.md``, ``speed.md`` when there are speed results, the ``vs_pages``
    given (name -> text), ``README.md``)."""
    groups = _sample_sets(results)
    for key, rs in groups.items():
        names = [r["tokenizer"]["name"] for r in rs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            paths = [r.get("_path", "?") for r in rs if r["tokenizer"]["name"] in dupes]
            raise LeaderboardError(f"{', '.join(dupes)} appear twice for {key[:4]}: {', '.join(paths)}")

    files = {}
    for task in sorted({k[0] for k in groups}):
        out = [f"# vtbench leaderboard: {task}", "",
               "Generated by `vtbench leaderboard` from the result files; do not edit by hand. "
               "↑ higher is better, ↓ lower is better, bold: a best beyond the runner-up's 95% interval. "
               "Tokens: token positions per image at the evaluated resolution (summed over scales). "
               "bpp: bits per pixel of the tokens (continuous latents count their float width).", ""]
        keys = [k for k in groups if k[0] == task]
        headings = _headings(keys)
        for key in keys:
            out += _section(key, groups[key], *headings[key])
        if task == "reconstruction":
            out += _published([r for k in keys for r in groups[k]])
        files[f"{task}.md"] = "\n".join(out)
    if speed_results:
        files["speed.md"] = speed.markdown(speed_results)
    index = ["# vtbench leaderboards", "", "Generated by `vtbench leaderboard`; one page per task.", ""]
    index += [f"- [{name[:-3]}]({name})" for name in sorted(files)]
    if vs_pages:
        files.update(vs_pages)
        index += ["", "Two tokenizers image by image (paired differences, bootstrap intervals, sign tests):", ""]
        index += [f"- [{name[3:-3].replace('__', ' vs ')}]({name})" for name in sorted(vs_pages)]
    files["README.md"] = "\n".join(index) + "\n"
    return files


def _bpp(r: dict) -> float | None:
    return r["metrics"].get("bits_per_pixel", {}).get("value")


def _baselines_at_median(rs: list[dict]) -> list[dict]:
    """The grid's baseline columns: of each baseline series (bicubic thumbnails, each codec: `plots.series_key`),
    the member whose bits per pixel is nearest (in log) to the median of the learned tokenizers'."""
    rates = sorted(b for r in rs if r["tokenizer"]["family"] != "baseline" and r.get("showcase") and (b := _bpp(r)))
    series = defaultdict(list)
    for r in rs:
        if r["tokenizer"]["family"] == "baseline" and r.get("showcase") and _bpp(r):
            series[plots.series_key(r["tokenizer"])].append(r)
    if not rates:
        return [r for k in sorted(series) for r in sorted(series[k], key=_row_order)]
    median = rates[len(rates) // 2]
    return [min(series[k], key=lambda r: (abs(math.log(_bpp(r) / median)), r["tokenizer"]["name"]))
            for k in sorted(series)]


def _draw_grid(results_dir: Path, rs: list[dict], path: Path) -> bool:
    """The reconstruction grid of one sample set from its results' showcase strips (`showcase`); results whose
    strips are missing or altered are left out with a warning."""
    learned = [r for r in sorted(rs, key=_row_order) if r.get("showcase") and r["tokenizer"]["family"] != "baseline"]
    shown = learned + _baselines_at_median(rs)
    common = Counter(r["showcase"]["originals_sha256"] for r in shown).most_common(1)
    columns, originals, record = [], None, None
    for r in shown:
        strips = showcase.read(results_dir / r["_path"], r["showcase"])
        if strips is None or r["showcase"]["originals_sha256"] != common[0][0]:
            warnings.warn(f"{r['_path']}: showcase images missing, altered or of other images; left out of {path.name}",
                          stacklevel=2)
            continue
        originals, record = strips[0], r["showcase"]
        columns.append((r["tokenizer"]["name"], strips[1]))
    if not columns:
        return False
    boxes = [tuple(i["crop_top_left"]) for i in record["images"]]
    image = showcase.grid(originals, columns, boxes, rs[0]["dataset"]["resolution"])
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    write_atomic(path, buf.getvalue())
    return True


#: in a results folder: the pairs of tokenizers that get a "vs" page, one "A B" per line ('#' starts a comment)
VS_FILE = "vs.txt"


def vs_pairs(results_dir: Path) -> list[tuple[str, str]]:
    """The pairs `VS_FILE` names in ``results_dir`` (none without the file)."""
    path = results_dir / VS_FILE
    if not path.is_file():
        return []
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if len(words) not in (0, 2):
            raise LeaderboardError(f"{path}:{number}: expected two tokenizer names 'A B', got {line.strip()!r}")
        if words:
            pairs.append((words[0], words[1]))
    return pairs


def write(results_dir: Path, out_dir: Path, pairs: list[tuple[str, str]] = ()) -> list[Path]:
    """Write the pages and figures that the result files under ``results_dir`` make (with a "vs" page per pair of
    ``pairs`` and of its `VS_FILE`); nothing else."""
    from .compare import compare_page  # here: compare imports this module

    results = load_results(results_dir)
    vs = {f"vs_{slug(a)}__{slug(b)}.md": compare_page(results_dir, a, b)
          for a, b in dict.fromkeys([*vs_pairs(results_dir), *pairs])}
    paths = []
    for name, text in build(results, speed.load_speed_results(results_dir), vs).items():
        write_atomic(out_dir / name, text)
        paths.append(out_dir / name)
    for key, rs in _sample_sets(results).items():
        for name, kind in _figures(key, rs).items():
            if FIGURES[kind][1](results_dir, rs, out_dir / name):
                paths.append(out_dir / name)
    return paths


#: figure kind -> (caption, draw(results_dir, results, path) -> drawn)
FIGURES = {
    "rd": ("Rate-distortion: PSNR and LPIPS against bits per pixel",
           lambda root, rs, path: plots.plot_rate_distortion(rs, path)),
    "grid": ("Reconstructions", _draw_grid),
    "pfid": ("pFID against alpha", lambda root, rs, path: plots.plot_pfid_curves(rs, path)),
    "legibility": ("OCR word accuracy against font size", lambda root, rs, path: plots.plot_legibility(rs, path)),
}

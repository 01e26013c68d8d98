"""Markdown leaderboards: a pure function of the result files.

One file per task; inside it, one table per sample set: (dataset, resolution, ``--limit``, dataset
fingerprint). Results computed on different images never share a table, and no two tables share a
heading: a limited set says "first N images", and sets that differ only by fingerprint name it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

from ..common import write_atomic
from ..errors import VtbenchError
from . import speed
from .results import load_results, slug

#: metric columns, in this order when present; others follow alphabetically
PREFERRED = ("psnr", "ssim", "lpips", "rfid", "kid", "pfid", "gmsd", "hf_energy_ratio", "cer", "cer_nocase",
             "word_accuracy", "legible_from_px", "ocr_agreement_cer", "codebook_usage", "token_entropy")
#: in result files but not in tables: speed depends on the machine, bpp has its own column, perplexity = 2^entropy,
#: WER and the case-insensitive word accuracy repeat other columns, the OCR baseline is a note under the table
HIDDEN = {"encode_images_per_s", "decode_images_per_s", "token_perplexity", "bits_per_pixel", "tokens_per_image", "wer",
          "word_accuracy_nocase", "ocr_baseline_cer", "ocr_baseline_word_accuracy", "ocr_baseline_legible_from_px"}
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


def _table(results: list[dict]) -> list[str]:
    metric_names = sorted({k for r in results for k in r["metrics"] if k not in HIDDEN},
                          key=lambda k: (PREFERRED.index(k) if k in PREFERRED else len(PREFERRED), k))
    direction = {}
    for k in metric_names:
        seen = {r["metrics"][k]["higher_is_better"] for r in results if k in r["metrics"]}
        if len(seen) > 1:
            raise LeaderboardError(f"metric {k!r} has conflicting directions across result files")
        direction[k] = seen.pop()
    best = {k: _best([r["metrics"][k] for r in results if k in r["metrics"]], hib) for k, hib in direction.items()}

    def arrow(k):
        return {True: " ↑", False: " ↓", None: ""}[direction[k]]

    header = ["Tokenizer", "Family", "Type", "Tokens", "Vocab", "bpp"] + [f"{k}{arrow(k)}" for k in metric_names]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---"] + ["---:"] * (len(header) - 3)) + "|"]
    for r in sorted(results, key=_row_order):
        tok, m = r["tokenizer"], r["metrics"]
        bpp = m.get("bits_per_pixel", {}).get("value")
        measured = m.get("tokens_per_image", {}).get("value")  # at the evaluated resolution
        tokens = round(measured) if measured is not None else tok["tokens_per_image"]
        cells = [_row_name(r), tok["family"], "discrete" if tok["discrete"] else "continuous",
                 str(tokens), _vocab(tok), _fmt(bpp, "bpp")]
        for k in metric_names:
            if k not in m:
                cells.append("")
                continue
            v = m[k]
            text = _fmt(v["value"], v.get("unit", "")) if v.get("available", True) else "unavailable"
            if v.get("ci_low") is not None and v["value"] is not None:
                text += f" ±{_fmt((v['ci_high'] - v['ci_low']) / 2, v.get('unit', ''))}"
            cells.append(f"**{text}**" if best[k] is v else text)
        lines.append("| " + " | ".join(cells) + " |")
    legend = []
    if any(r["metrics"][k].get("ci_low") is not None for r in results for k in metric_names if k in r["metrics"]):
        legend = ["", "± is half the 95% bootstrap interval over images; bold marks a best only when its interval "
                      "lies beyond the runner-up's."]
    return lines + legend + _notes(results, metric_names)


def _row_order(r: dict) -> tuple:
    """Tokenizers grouped by family, baselines last; names in natural order (bicubic-f8 before bicubic-f16)."""
    tok = r["tokenizer"]
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", tok["name"])]
    return tok["family"] == "baseline", tok["family"], natural, tok["name"]


def _best(values: list[dict], higher_is_better: bool | None) -> dict | None:
    """The metric entry to mark best: the top value, only when its 95% interval and the runner-up's both exist
    and do not overlap (a lead inside the sampling noise of the images is not a win)."""
    ranked = [v for v in values if v["value"] is not None and v.get("available", True)]
    if higher_is_better is None or len(ranked) < 2:
        return None
    ranked.sort(key=lambda v: v["value"], reverse=higher_is_better)
    top, second = ranked[:2]
    if None in (top.get("ci_low"), second.get("ci_low")):
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


def plot_name(task: str, dataset: str, resolution: int, fingerprint: str) -> str:
    return f"{task}_{slug(dataset)}_{resolution}px_{fingerprint[:8]}.png"


def plot_pfid_curves(results: list[dict], path: Path) -> bool:
    """pFID against alpha, one line per tokenizer; False when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.0, 4.6), dpi=110)
    rows = sorted(results, key=lambda r: r["tokenizer"]["name"])
    for i, r in enumerate(rows):
        curve = (r["metrics"].get("pfid", {}).get("extra") or {}).get("curve") or []
        pts = [(c["alpha"], c["pfid"]) for c in curve if c["pfid"] is not None]
        if pts:
            style = "--" if r["tokenizer"]["family"] == "baseline" else "-"
            ax.plot(*zip(*pts), style, marker="o", color=plt.cm.tab20(i % 20), label=r["tokenizer"]["name"])
    ax.set_xlabel("alpha (fraction of tokens perturbed)")
    ax.set_ylabel("pFID")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # the PNG names the matplotlib that drew it: another version may draw other bytes
    fig.savefig(path, metadata={"Software": f"matplotlib {matplotlib.__version__}"})
    plt.close(fig)
    return True


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


def build(results: list[dict], speed_results: list[dict] = ()) -> dict[str, str]:
    """Markdown text per file name (``<task>.md``, ``speed.md`` when there are speed results, ``README.md``)."""
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
            _, dataset, resolution, _, fp = key
            rs = groups[key]
            heading, shared = headings[key]
            n = sorted({r["dataset"]["num_samples"] for r in rs})
            out += [f"## {heading}", "", f"{'/'.join(map(str, n))} images, dataset fingerprint `{fp[:16]}`.", ""]
            if shared:
                out += ["> Results for this dataset were computed on different images (fingerprints differ); "
                        "each set has its own table.", ""]
            _settings_check(rs)
            out += _table(rs) + [""]
            if any("curve" in (r["metrics"].get("pfid", {}).get("extra") or {}) for r in rs):
                out += [f"![pFID against alpha]({plot_name(task, dataset, resolution, fp)})", ""]
        files[f"{task}.md"] = "\n".join(out)
    if speed_results:
        files["speed.md"] = speed.markdown(speed_results)
    index = ["# vtbench leaderboards", "", "Generated by `vtbench leaderboard`; one page per task.", ""]
    index += [f"- [{name[:-3]}]({name})" for name in sorted(files)]
    files["README.md"] = "\n".join(index) + "\n"
    return files


def write(results_dir: Path, out_dir: Path) -> list[Path]:
    """Write the pages (and pFID plots) that the result files under ``results_dir`` make; nothing else."""
    results = load_results(results_dir)
    paths = []
    for name, text in build(results, speed.load_speed_results(results_dir)).items():
        write_atomic(out_dir / name, text)
        paths.append(out_dir / name)
    for (task, dataset, resolution, _, fp), rs in _sample_sets(results).items():
        curves = [r for r in rs if "curve" in (r["metrics"].get("pfid", {}).get("extra") or {})]
        path = out_dir / plot_name(task, dataset, resolution, fp)
        if curves and plot_pfid_curves(curves, path):
            paths.append(path)
    return paths

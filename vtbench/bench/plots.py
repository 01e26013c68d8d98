"""The leaderboard's figures, drawn from result dicts: pFID against alpha, rate-distortion, legibility.

Each ``plot_*`` writes one PNG and returns False (writing nothing) when matplotlib is not installed or the
results hold nothing to draw. The PNG names the matplotlib that drew it: another version may draw other bytes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from .results import slug


def plot_name(kind: str, dataset: str, resolution: int, fingerprint: str) -> str:
    return f"{kind}_{slug(dataset)}_{resolution}px_{fingerprint[:8]}.png"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> None:
    import matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": f"matplotlib {matplotlib.__version__}"})
    plt.close(fig)


def plot_pfid_curves(results: list[dict], path: Path) -> bool:
    """pFID against alpha, one line per tokenizer."""
    curves = {r["tokenizer"]["name"]: [(c["alpha"], c["pfid"]) for c in (r["metrics"].get("pfid", {}).get("extra")
                                                                          or {}).get("curve") or []
                                       if c["pfid"] is not None]
              for r in results}
    styles = {r["tokenizer"]["name"]: "--" if r["tokenizer"]["family"] == "baseline" else "-" for r in results}
    curves = {k: v for k, v in sorted(curves.items()) if v}
    plt = _pyplot()
    if plt is None or not curves:
        return False
    fig, ax = plt.subplots(figsize=(8.0, 4.6), dpi=110)
    for i, (name, pts) in enumerate(curves.items()):
        ax.plot(*zip(*pts), styles[name], marker="o", color=plt.cm.tab20(i % 20), label=name)
    ax.set_xlabel("alpha (fraction of tokens perturbed)")
    ax.set_ylabel("pFID")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _save(plt, fig, path)
    return True


def series_key(tok: dict) -> str:
    """The rate-distortion line a tokenizer belongs to: a codec, a baseline's name with its numbers blanked
    (``bicubic-f#``), else its family (FlexTok prefixes, one family at several rates)."""
    if tok.get("codec"):
        return tok["codec"].upper()
    if tok["family"] == "baseline":
        return re.sub(r"\d+", "#", tok["name"])
    return tok["family"] + (" (random weights)" if tok.get("weights", {}).get("tag") == "random" else "")


def rate_distortion(results: list[dict], metric: str) -> dict[str, list[tuple[float, float, str]]]:
    """Series key -> [(bpp, value, tokenizer name)] sorted by bpp, for results with both values."""
    series = defaultdict(list)
    for r in results:
        m = r["metrics"]
        bpp, value = m.get("bits_per_pixel", {}).get("value"), m.get(metric, {}).get("value")
        if bpp is not None and value is not None:
            series[series_key(r["tokenizer"])].append((bpp, value, r["tokenizer"]["name"]))
    return {k: sorted(v) for k, v in sorted(series.items())}


RD_METRICS = (("psnr", "PSNR (dB) ↑"), ("lpips", "LPIPS ↓"))


def plot_rate_distortion(results: list[dict], path: Path) -> bool:
    """PSNR and LPIPS against bits per pixel (log scale): JPEG and WebP as black and grey reference curves, a line
    per family measured at several rates, a marker per other tokenizer."""
    panels = [(m, label, rate_distortion(results, m)) for m, label in RD_METRICS]
    panels = [p for p in panels if p[2]]
    plt = _pyplot()
    if plt is None or not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 2.4, 4.4), dpi=110, squeeze=False)
    keys = sorted({k for _, _, series in panels for k in series})
    learned = [k for k in keys if k not in ("JPEG", "WEBP")]
    for ax, (_, label, series) in zip(axes[0], panels):
        for key, pts in series.items():
            bpp, values = [p[0] for p in pts], [p[1] for p in pts]
            if key in ("JPEG", "WEBP"):
                ax.plot(bpp, values, "-" if key == "JPEG" else "--", color="black" if key == "JPEG" else "0.55",
                        marker=".", label=f"{'JPEG' if key == 'JPEG' else 'WebP'} (Pillow, quality sweep)")
                continue
            i = learned.index(key)
            first = key if "#" in key else min((p[2] for p in pts), key=len)
            name = pts[0][2] if len(pts) == 1 else f"{first} ({len(pts)} rates)"
            style = ":" if "#" in key else "-"
            ax.plot(bpp, values, style if len(pts) > 1 else "", marker="osD^v<>ph*"[i % 10],
                    color=plt.cm.tab20(i % 20), label=name)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(0.80, 0.98))
    fig.tight_layout(rect=(0, 0, 0.80, 1))
    _save(plt, fig, path)
    return True


def plot_legibility(results: list[dict], path: Path) -> bool:
    """OCR word accuracy against font size, one line per tokenizer and the originals' as a dashed black line."""
    curves, baseline, threshold = {}, None, 0.5
    for r in sorted(results, key=lambda r: r["tokenizer"]["name"]):
        extra = r["metrics"].get("legible_from_px", {}).get("extra") or {}
        if not (curve := extra.get("curve")):
            continue
        threshold = extra.get("threshold", threshold)
        curves[r["tokenizer"]["name"]] = [(s, a) for s, a in zip(curve["font_px"], curve["word_accuracy"])
                                          if a is not None]
        baseline = baseline or [(s, a) for s, a in zip(curve["font_px"], curve["ocr_baseline_word_accuracy"])
                                if a is not None]
    plt = _pyplot()
    if plt is None or not curves:
        return False
    fig, ax = plt.subplots(figsize=(8.0, 4.6), dpi=110)
    for i, (name, pts) in enumerate(curves.items()):
        if pts:
            ax.plot(*zip(*pts), "-", marker="o", ms=3, color=plt.cm.tab20(i % 20), label=name)
    if baseline:
        ax.plot(*zip(*baseline), "--", color="black", label="original images (the OCR's own limit)")
    ax.axhline(threshold, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("font size (px, log scale)")
    ax.set_ylabel("OCR word accuracy ↑")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _save(plt, fig, path)
    return True

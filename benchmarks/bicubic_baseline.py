"""Each tokenizer against the bicubic thumbnail baseline with the same (or fewer) bits, image by image.

    python benchmarks/bicubic_baseline.py [--results leaderboards/results/builtin]

Reads the reconstruction result files that `vtbench run` wrote (no model is run). For every tokenizer the
baseline is the `bicubic-*` entry with the most bits per pixel not above the tokenizer's own, so the
baseline never has more bits. Per metric (`vtbench.bench.compare.paired`, as `vtbench compare` reports it):
the mean of the paired per-image differences (tokenizer minus baseline), how many images the tokenizer wins,
and the two-sided sign-test p-value of that count.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vtbench.bench.compare import paired
from vtbench.bench.results import ResultError, load_results, read_rows

METRICS = {"psnr": True, "ssim": True, "lpips": False}  # name: higher is better


def load(results: Path) -> dict[str, dict]:
    """name -> {bpp, family, rows: per-image rows} for every reconstruction result under ``results``."""
    runs = {}
    for r in load_results(results):
        d = r["dataset"]
        native = d["resolution"] == r["tokenizer"]["resolution"]
        if r["task"] != "reconstruction" or d.get("limit") is not None or not native:
            continue  # the full sample set at the native resolution: --limit and --resolution runs sit beside it
        runs[r["tokenizer"]["name"]] = {"bpp": r["metrics"]["bits_per_pixel"]["value"],
                                        "family": r["tokenizer"]["family"], "rows": read_rows(results / r["_path"])}
    return runs


def compare(runs: dict[str, dict]) -> list[str]:
    baselines = {n: r for n, r in runs.items() if r["family"] == "baseline"}
    header = "| tokenizer | bpp | baseline | bpp | " + " | ".join(
        f"Δ{m} | {m} wins | p" for m in METRICS) + " |"
    lines = [header, "|" + "---|" + "---:|" + "---|" + "---:|" + "---:|---:|---:|" * len(METRICS)]
    for name, run in sorted(runs.items()):
        if run["family"] == "baseline":
            continue
        fitting = [b for b in baselines if baselines[b]["bpp"] <= run["bpp"] + 1e-9]
        if not fitting:
            continue
        base = max(fitting, key=lambda b: baselines[b]["bpp"])
        cells = [name, f"{run['bpp']:.4f}", base, f"{baselines[base]['bpp']:.4f}"]
        for metric, higher in METRICS.items():
            s = paired(run["rows"], baselines[base]["rows"], metric, higher)
            cells += [f"{s.diff:+.3f}", f"{s.wins}/{s.n}", f"{s.p_value:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("leaderboards/results/builtin"))
    args = ap.parse_args()
    try:
        runs = load(args.results)
    except ResultError as e:
        raise SystemExit(f"bicubic_baseline: {e}") from None
    if not any(r["family"] == "baseline" for r in runs.values()):
        raise SystemExit(f"no bicubic baseline results under {args.results}: run `vtbench run --tokenizer "
                         "bicubic-f8-4bit,...` first")
    n = len(next(iter(runs.values()))["rows"])
    print(f"{len(runs)} reconstruction results, {n} images each, from {args.results}\n")
    print("\n".join(compare(runs)))


if __name__ == "__main__":
    main()

"""How often the 95% interval of a mean covers the true mean: plain vs expanded percentile bootstrap.

    python benchmarks/interval_coverage.py [--sets 3000]

Draws ``--sets`` samples of n values (normal, and skewed lognormal) with a known mean, and for each the same
1000 seeded resampled means (`intervals.resample_indices`): the plain interval takes their 2.5th and 97.5th
percentiles, vtbench's (`intervals.bootstrap_mean`) the expanded percentiles (`intervals.expanded_level`).
"""

from __future__ import annotations

import argparse

import numpy as np

from vtbench.bench.intervals import bootstrap_mean, resample_indices

DRAWS = {"normal": (lambda rng, n: rng.normal(20.0, 3.0, n), 20.0),
         "lognormal": (lambda rng, n: rng.lognormal(0.0, 0.75, n), float(np.exp(0.75 ** 2 / 2)))}


def coverage(draw, mean: float, n: int, sets: int, seed: int = 0) -> tuple[float, float]:
    """(plain, expanded) fraction of ``sets`` samples of ``n`` values whose interval holds ``mean``."""
    rng, plain, expanded = np.random.default_rng(seed), 0, 0
    for t in range(sets):
        v = draw(rng, n)
        means = np.concatenate([v[idx].mean(1) for idx in resample_indices(n, seed=t)])
        plain += np.percentile(means, 2.5) <= mean <= np.percentile(means, 97.5)
        lo, hi = bootstrap_mean(v, seed=t)
        expanded += lo <= mean <= hi
    return plain / sets, expanded / sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=3000)
    args = ap.parse_args()
    print("| values | n | plain percentile | expanded percentile (vtbench) |\n|---|---:|---:|---:|")
    for name, (draw, mean) in DRAWS.items():
        for n in (11, 30, 100):
            plain, expanded = coverage(draw, mean, n, args.sets)
            print(f"| {name} | {n} | {plain:.3f} | {expanded:.3f} |")


if __name__ == "__main__":
    main()

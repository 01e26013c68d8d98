"""95% intervals of per-image means: the percentile bootstrap over images, seeded.

The images of a result are resampled with replacement ``RESAMPLES`` times by a generator seeded with
``SEED``, and the 2.5th and 97.5th percentiles of the resampled means bound the interval. With the values
in sample order, the interval is a pure function of the per-image values: the same in one process or
several, and in a resumed run.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
#: resampled values drawn at once, at most (bounds the memory of large sets)
CHUNK = 2 ** 22


def bootstrap_mean(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED,
                   level: float = LEVEL) -> tuple[float, float] | None:
    """(low, high) of the ``level`` percentile-bootstrap interval of the mean; None below 2 values."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    per_chunk = max(1, CHUNK // n)
    means = np.concatenate([values[rng.integers(0, n, (min(per_chunk, resamples - done), n))].mean(1)
                            for done in range(0, resamples, per_chunk)])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)

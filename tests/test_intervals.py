"""The bootstrap interval of a mean: its coverage on synthetic data, and what results carry."""

import numpy as np
import pytest
import torch

from vtbench.bench.intervals import bootstrap_mean
from vtbench.bench.metrics import PSNR, EvalBatch
from vtbench.tokenizers import Tokens


@pytest.mark.parametrize("draw,mean", [(lambda rng: rng.normal(30.0, 4.0, 50), 30.0),
                                        (lambda rng: rng.exponential(0.2, 80), 0.2)], ids=["normal", "skewed"])
def test_the_interval_covers_the_true_mean_at_about_the_nominal_rate(draw, mean):
    rng = np.random.default_rng(1)
    trials = 400
    hits = sum(lo <= mean <= hi for lo, hi in (bootstrap_mean(draw(rng), resamples=500, seed=t) for t in range(trials)))
    assert 0.90 <= hits / trials <= 0.98  # nominal 0.95; the percentile bootstrap runs a little narrow at small n


def test_the_interval_narrows_with_more_images_and_is_seeded():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0, 1, 20), rng.normal(0, 1, 2000)
    (a, b), (c, d) = bootstrap_mean(small), bootstrap_mean(large)
    assert (d - c) < (b - a) / 5
    assert bootstrap_mean(small) == (a, b) and bootstrap_mean(small, seed=1) != (a, b)
    assert bootstrap_mean(small[:1]) is None


def test_a_mean_metric_interval_does_not_depend_on_how_images_are_batched():
    gen = torch.Generator().manual_seed(0)
    originals = torch.randint(0, 256, (7, 3, 16, 16), dtype=torch.uint8, generator=gen)
    recon = (originals.int() + torch.randint(-20, 21, originals.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
    tokens = Tokens.from_latents(torch.zeros(7, 1, 1, 1))

    def run(splits):
        m = PSNR()
        for part in splits:  # batches in any order, each with its images' sample positions
            idx = torch.tensor(part)
            m.update(EvalBatch([""] * len(part), originals[idx], recon[idx], tokens[idx], [], 0.0, 0.0, index=idx))
        return m.compute()["psnr"]

    one, other = run([[0, 1, 2, 3, 4, 5, 6]]), run([[4, 5, 6], [0, 1], [2, 3]])
    assert one.ci_low < one.value < one.ci_high
    assert (other.ci_low, other.ci_high) == (one.ci_low, one.ci_high)
    per_image = PSNR().per_image(originals, recon).numpy()
    assert (one.ci_low, one.ci_high) == bootstrap_mean(per_image)


def test_a_best_is_bold_only_beyond_the_runner_up_interval():
    from vtbench.bench.leaderboard import _best

    def entry(value, half=None):
        ci = {"ci_low": value - half, "ci_high": value + half} if half is not None else {}
        return {"value": value, **ci}

    apart = [entry(24.0, 0.4), entry(23.0, 0.4), entry(20.0, 0.4)]
    assert _best(apart, True) is apart[0]
    assert _best(apart, False) is apart[2]
    assert _best([entry(24.0, 0.6), entry(23.0, 0.6)], True) is None  # 0.2 dB of overlap: no winner
    assert _best([entry(24.0), entry(23.0)], True) is None  # no interval (FID on 11 images, KID on 3): no winner
    assert _best([entry(24.0, 0.1)], True) is None
    assert _best(apart, None) is None

"""Bootstrap intervals: of a mean and of FID (coverage on synthetic data), of KID, and what results carry."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vtbench.bench import perceptual
from vtbench.bench.intervals import bootstrap_mean, expanded_level, resample_counts, resample_indices
from vtbench.bench.metrics import PSNR, EvalBatch
from vtbench.tokenizers import Tokens


@pytest.mark.parametrize("draw,mean", [(lambda rng: rng.normal(30.0, 4.0, 50), 30.0),
                                        (lambda rng: rng.exponential(0.2, 80), 0.2)], ids=["normal", "skewed"])
def test_the_interval_covers_the_true_mean_at_about_the_nominal_rate(draw, mean):
    rng = np.random.default_rng(1)
    trials = 400
    hits = sum(lo <= mean <= hi for lo, hi in (bootstrap_mean(draw(rng), resamples=500, seed=t) for t in range(trials)))
    assert 0.90 <= hits / trials <= 0.98  # nominal 0.95


def test_on_a_dozen_images_the_expanded_interval_keeps_the_nominal_rate_the_plain_percentile_misses():
    """n = 11, the builtin photo count: 2000 normal samples. The plain 2.5/97.5 percentiles of the same resampled
    means cover 90%; the expanded percentile interval, 94%."""
    rng = np.random.default_rng(2)
    expanded = plain = 0
    for t in range(2000):
        v = rng.normal(0.0, 1.0, 11)
        lo, hi = bootstrap_mean(v, seed=t)
        expanded += lo <= 0 <= hi
        means = np.concatenate([v[idx].mean(1) for idx in resample_indices(11, seed=t)])
        plain += np.percentile(means, 2.5) <= 0 <= np.percentile(means, 97.5)
    assert 0.935 <= expanded / 2000 <= 0.965 and plain / 2000 < 0.93
    assert expanded_level(11) > expanded_level(30) > expanded_level(1000) > 0.95
    assert expanded_level(100_000) == pytest.approx(0.95, abs=1e-4)


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


def _gaussian_pairs(rng, n, d=8, c=0.9, tau=0.3, shift=0.1):
    """Paired features (originals, reconstructions) of two Gaussians, and their population FID in closed form:
    x ~ N(0, diag(s^2)), y = c x + tau e + shift, so y ~ N(shift, diag(c^2 s^2 + tau^2))."""
    s = np.linspace(0.5, 1.5, d)
    x = rng.normal(size=(n, d)) * s
    y = c * x + tau * rng.normal(size=(n, d)) + shift
    return x, y, d * shift ** 2 + ((s - np.sqrt(c ** 2 * s ** 2 + tau ** 2)) ** 2).sum()


def _features(x):
    return perceptual.Features(len(x), x.mean(0), np.cov(x, rowvar=False), x, True)


def test_the_fid_interval_covers_the_population_fid_despite_the_bias_of_resampling():
    rng = np.random.default_rng(0)
    trials, hits, inside = 200, 0, 0
    for _ in range(trials):
        x, y, true = _gaussian_pairs(rng, 200)
        value = perceptual.fid(_features(x), _features(y))[0]
        iv = perceptual.fid_interval(_features(x), _features(y), resamples=200)
        hits += iv["ci_low"] <= true <= iv["ci_high"]
        inside += iv["ci_low"] <= value <= iv["ci_high"]
    # the FID of 200 draws averages 0.141 against 0.118, a 1.4 sd bias: the replicates' percentiles (centred higher
    # still) cover the population value 18% of the time, the basic interval at about the nominal rate
    assert 0.90 <= hits / trials <= 0.98
    assert inside / trials >= 0.95


@pytest.mark.parametrize("n,d", [(11, 64), (40, 16)], ids=["gram", "covariance"])
def test_a_weighted_resample_equals_the_resampled_features(n, d):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    y = x + 0.3 * rng.normal(size=(n, d)) + 0.1
    idx = next(resample_indices(n, 3))
    weights = resample_counts(n, 3)
    fids = (perceptual._gram_fids if n < d else perceptual._covariance_fids)(x, y, weights, [n - 1] * 3)
    assert fids == pytest.approx([perceptual.frechet_distance_gram(x[i], y[i]) for i in idx], rel=1e-9)
    kids = perceptual.kernel_inception_distance(x, y, weights=weights)[3]
    assert kids == pytest.approx([perceptual.kernel_inception_distance(x[i], y[i])[0] for i in idx], rel=1e-9)


def _pixel_features(images: torch.Tensor) -> torch.Tensor:
    """Stand-in Inception features: the first 2048 pixel values, scaled (the intervals are tested, not Inception)."""
    return images.float().flatten(1)[:, :2048] / 255


def _images(n=12):
    gen = torch.Generator().manual_seed(0)
    originals = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    recon = (originals.int() + torch.randint(-40, 41, originals.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
    return originals, recon


def _fid(cache, positions):
    """rFID and KID (`MetricValue`s, as dicts) of the `_images` at ``positions``, fed in batches of 2."""
    originals, recon = _images()
    m = perceptual.FID(perceptual.FeatureCache(cache))
    for i in range(0, len(positions), 2):
        idx = torch.tensor(positions[i:i + 2])
        tokens = Tokens.from_latents(torch.zeros(len(idx), 1, 1, 1))
        m.update(EvalBatch([""] * len(idx), originals[idx], recon[idx], tokens, [], 0.0, 0.0, index=idx))
    return {k: v.as_dict() for k, v in m.compute().items()}


def _fid_worker(rank: int, init_file: str, cache: str, result_file: str) -> None:
    perceptual.inception_network = lambda device: _pixel_features
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        out = _fid(Path(cache) / str(rank), list(range(12))[rank::2])  # interleaved halves; compute() synchronises
        if rank == 0:
            Path(result_file).write_text(json.dumps(out))
    finally:
        torch.distributed.destroy_process_group()


def test_fid_and_kid_intervals_of_two_processes_equal_one_and_carry_the_minimum_count(tmp_path, monkeypatch):
    torch.multiprocessing.spawn(_fid_worker, args=(str(tmp_path / "init"), str(tmp_path), str(tmp_path / "out.json")),
                                nprocs=2)
    two = json.loads((tmp_path / "out.json").read_text())
    monkeypatch.setattr(perceptual, "inception_network", lambda device: _pixel_features)
    one = _fid(tmp_path / "one", [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6])
    for k in ("rfid", "kid"):
        assert math.isfinite(one[k]["ci_low"]) and math.isfinite(one[k]["ci_high"])
        assert one[k]["ci_low"] < one[k]["ci_high"]
        assert (two[k]["ci_low"], two[k]["ci_high"]) == (one[k]["ci_low"], one[k]["ci_high"])
        assert two[k]["value"] == pytest.approx(one[k]["value"], rel=1e-9)
    # 12 paired images: the cross term's pairs of a reconstruction with its own original pull KID below 0 (2/12 of
    # their excess similarity); the basic interval corrects most of that bias and lies above the estimate
    assert one["kid"]["value"] < 0 and one["kid"]["value"] < one["kid"]["ci_low"]
    assert one["rfid"]["extra"]["interval"] == {"method": "basic bootstrap over images", "resamples": 1000,
                                                "images": 12}
    assert (one["rfid"]["min_count"], one["kid"]["min_count"]) == (perceptual.FID_STABLE_N, perceptual.KID_MIN_N)
    assert PSNR()._value("psnr", 30.0, 12).min_count == 0  # no minimum for a mean

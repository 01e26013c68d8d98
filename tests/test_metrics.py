"""PSNR/SSIM agree with scikit-image on the builtin photographs and move the right way under degradation."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from skimage import metrics

from vtbench.bench.datasets import BuiltinDataset, batches
from vtbench.bench.metrics import PSNR, SSIM, EvalBatch
from vtbench.tokenizers import Tokens


@pytest.fixture(scope="module")
def photos():
    batch = next(batches(BuiltinDataset().samples("photos"), 256, 64, []))
    return batch.images  # uint8 (11, 3, 256, 256)


def _degrade(images: torch.Tensor, how: str, level) -> torch.Tensor:
    out = []
    for img in images.permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray(img)
        if how == "jpeg":
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=level)
            pil = Image.open(buf).convert("RGB")
        elif how == "blur":
            pil = pil.filter(ImageFilter.GaussianBlur(level))
        elif how == "noise":
            rng = np.random.default_rng(0)
            arr = np.asarray(pil, dtype=np.float64) + rng.normal(0, level, img.shape)
            pil = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8))
        out.append(np.asarray(pil))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


DEGRADATIONS = [("jpeg", [90, 50, 10]), ("blur", [0.5, 1.5, 3.0]), ("noise", [2, 8, 25])]


@pytest.mark.parametrize("how,levels", DEGRADATIONS)
def test_agree_with_skimage_and_fall_with_degradation(photos, how, levels):
    means = []
    for level in levels:
        rec = _degrade(photos, how, level)
        psnr, ssim = PSNR().per_image(photos, rec), SSIM().per_image(photos, rec)
        ssim7 = SSIM("uniform7").per_image(photos, rec)
        for i in range(len(photos)):
            a, b = photos[i].permute(1, 2, 0).numpy(), rec[i].permute(1, 2, 0).numpy()
            assert float(psnr[i]) == pytest.approx(metrics.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-4)
            ref = metrics.structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True,
                                                sigma=1.5, use_sample_covariance=False)
            assert float(ssim[i]) == pytest.approx(ref, abs=1e-3)
            ref7 = metrics.structural_similarity(a, b, channel_axis=-1, data_range=255)
            assert float(ssim7[i]) == pytest.approx(ref7, abs=1e-3)
        means.append((float(psnr.mean()), float(ssim.mean())))
    assert means[0][0] > means[1][0] > means[2][0]
    assert means[0][1] > means[1][1] > means[2][1]


def test_identical_images_hit_the_documented_psnr_cap(photos):
    assert torch.all(PSNR().per_image(photos, photos) == 100.0)
    assert torch.allclose(SSIM().per_image(photos, photos), torch.ones(len(photos), dtype=torch.float64))


def test_mean_metric_accumulates_over_batches(photos):
    rec = _degrade(photos, "noise", 8)
    m = PSNR()
    tokens = Tokens.from_latents(torch.zeros(len(photos), 1, 1, 1))
    for sl in (slice(0, 4), slice(4, None)):
        m.update(EvalBatch([""] * len(photos[sl]), photos[sl], rec[sl], tokens[sl], [], 0.0, 0.0))
    v = m.compute()["psnr"]
    assert v.count == len(photos)
    assert v.value == pytest.approx(float(PSNR().per_image(photos, rec).mean()))


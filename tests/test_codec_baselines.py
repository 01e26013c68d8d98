"""JPEG and WebP baselines: tokens are the file's bytes, bits are the file's size, decoding is Pillow's."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vtbench.bench.datasets import BuiltinDataset, batches
from vtbench.bench.metrics import PSNR, EvalBatch, TokenStats, to_uint8
from vtbench.cli import main
from vtbench.tokenizers import get_entry, list_tokenizers, load_tokenizer
from vtbench.tokenizers.baselines import CODEC_QUALITIES

NAMES = [f"{c}-q{q}" for c, qs in CODEC_QUALITIES.items() for q in qs]
OPTIONS = {"jpeg": dict(format="JPEG", subsampling="4:2:0", optimize=True), "webp": dict(format="WEBP", method=6)}


@pytest.fixture(scope="module")
def photos():
    """The builtin photos at 256 px as the runner sees them: uint8 (B, 3, 256, 256)."""
    return torch.cat([b.images for b in batches(BuiltinDataset().samples("photos"), 256, 16, [])])


def _pillow(a: np.ndarray, codec: str, quality: int) -> tuple[bytes, np.ndarray]:
    """Pillow's own round trip of one HWC uint8 image: the file and its decoded pixels."""
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, quality=quality, **OPTIONS[codec])
    return buf.getvalue(), np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_registry_lists_every_entry_as_a_weightless_baseline():
    assert set(NAMES) <= set(list_tokenizers(include_test=False, available_only=True))
    for name in NAMES:
        info = load_tokenizer(name).info
        codec, quality = name.split("-q")
        assert get_entry(name).default_weights == "none"
        assert info.family == "baseline" and info.caveat and "pFID" in info.caveat
        assert (info.codec, info.quality, info.subsampling) == (codec, int(quality), "4:2:0")
        assert f"quality {quality}" in info.notes and "Pillow" in info.notes


@pytest.mark.parametrize("name", ["jpeg-q50", "webp-q50"])
def test_bits_are_the_file_bytes_and_decode_is_pillows_round_trip(photos, name):
    tok = load_tokenizer(name)
    codec, quality = tok.info.codec, tok.info.quality
    with torch.inference_mode():
        tokens = tok.encode(photos.float() / 127.5 - 1)
        recon = to_uint8(tok.decode(tokens))
    files = []
    for b, a in enumerate(photos.permute(0, 2, 3, 1).numpy()):
        data, pixels = _pillow(a, codec, quality)
        files.append(data)
        n = int(tokens.lengths[b])
        assert bytes(tokens.indices[b, :n].to(torch.uint8).tolist()) == data
        assert not tokens.indices[b, n:].any()  # zero padding
        assert np.array_equal(recon[b].permute(1, 2, 0).numpy(), pixels)
    pixels = photos.shape[0] * 256 * 256
    assert tokens.bits_per_pixel(256, 256) == pytest.approx(8 * sum(map(len, files)) / pixels, rel=1e-12)
    # over a dataset (two batches of unequal size): total encoded bits / total pixels
    stats = TokenStats(tokens.vocab_sizes)
    for part in (slice(0, 3), slice(3, None)):
        t = tokens[part]
        stats.update(EvalBatch([], photos[part], recon[part], t, [], 0.0, 0.0))
    assert stats.compute()["bits_per_pixel"].value == pytest.approx(8 * sum(map(len, files)) / pixels, rel=1e-12)
    # padded rows without lengths decode too (a file is self-delimiting); a cut file is a clear error
    assert torch.equal(tok.decode(tokens.with_lengths(None)), tok.decode(tokens))
    with pytest.raises(ValueError, match=f"not a decodable {codec} file"):
        tok.decode(tokens.with_lengths((tokens.lengths // 2).clamp_min(1)))
    other = load_tokenizer("webp-q50" if codec == "jpeg" else "jpeg-q50")
    with pytest.raises(ValueError, match=f"not a decodable {other.info.codec} file"):
        other.decode(tokens[:1])


def test_psnr_and_bpp_rise_with_quality(photos):
    x = photos[:4].float() / 127.5 - 1
    for codec, qualities in CODEC_QUALITIES.items():
        bpp, psnr = [], []
        for q in qualities:
            tok = load_tokenizer(f"{codec}-q{q}")
            with torch.inference_mode():
                tokens = tok.encode(x)
                psnr.append(float(PSNR().per_image(photos[:4], to_uint8(tok.decode(tokens))).mean()))
            bpp.append(tokens.bits_per_pixel(256, 256))
        assert psnr == sorted(psnr) and len(set(psnr)) == len(psnr), (codec, psnr)
        assert bpp == sorted(bpp) and len(set(bpp)) == len(bpp), (codec, bpp)


def test_layout_declares_a_capacity_and_pfid_is_refused():
    tok = load_tokenizer("jpeg-q50")
    assert tok.layout(256).scale_shapes == ((3 * 256 * 256 + 1024,),)
    tokens = tok.encode(torch.zeros(1, 3, 64, 96))
    assert tokens.scale_shapes == tok.layout((64, 96)).scale_shapes and int(tokens.lengths[0]) < 1000
    with pytest.raises(ValueError, match="multiples of 16"):
        tok.layout(250)
    with pytest.raises(NotImplementedError, match="pFID does not apply"):
        tok.encode_neighbours(torch.zeros(1, 3, 64, 64), 4)


def test_vtbench_run_reports_the_file_bits(tmp_path, monkeypatch, photos):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "empty-cache"))  # LPIPS/FID unavailable: a fast run
    out = tmp_path / "runs"
    assert main(["run", "--quiet", "--tokenizer", "jpeg-q50", "--tasks", "reconstruction", "--limit", "2",
                 "--no-fetch", "--out", str(out)]) == 0
    res = json.loads((out / "builtin" / "jpeg-q50" / "reconstruction.first2.json").read_text())
    sizes = [len(_pillow(a, "jpeg", 50)[0]) for a in photos[:2].permute(0, 2, 3, 1).numpy()]
    m = res["metrics"]
    assert m["bits_per_pixel"]["value"] == pytest.approx(8 * sum(sizes) / (2 * 256 * 256), rel=1e-12)
    assert m["tokens_per_image"]["value"] == pytest.approx(sum(sizes) / 2)
    assert res["tokenizer"]["codec"] == "jpeg" and res["tokenizer"]["quality"] == 50
    board = (out / "leaderboards" / "reconstruction.md").read_text()
    codecs = board.split("### Classical codecs")[1]
    assert "| JPEG | 50 | " in codecs and "jpeg-q50" not in board.split("### Classical codecs")[0]

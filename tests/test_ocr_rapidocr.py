"""The text task in Chinese: RapidOCR reads rendered Chinese offline, and each sample's language picks its engine."""

import json
import socket
import subprocess
import sys

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from vtbench.bench import text
from vtbench.bench.datasets import Fingerprint, ImageBatch, load_manifest
from vtbench.bench.metrics import EvalBatch
from vtbench.bench.text import TextPreservation
from vtbench.tokenizers import Tokens

from .fake_ocr import FakeOCR
from .test_metrics import _degrade

#: (lines, font size at 256 px, dark text on light background?)
CHINESE = [
    (["视觉分词器", "文字保真度测试"], 26, True),
    (["图像重建质量", "字符错误率", "北京上海广州"], 24, True),
    (["今天天气很好", "我们去公园散步"], 28, False),
    (["深度学习模型", "共有128个码本", "二零二四年"], 22, True),
]


def _cjk_font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Sans CJK SC from the ``noto-cjk-sans-otc`` package, else the first font fontconfig has for zh."""
    try:
        import noto_cjk_sans_otc
    except ImportError:
        try:
            found = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout
        except OSError:
            found = ""
        if not found.strip():
            pytest.skip("no font with Chinese glyphs: pip install noto-cjk-sans-otc")
        return ImageFont.truetype(sorted(found.splitlines())[0].strip().rstrip(":"), size)
    for index in range(5):  # the collection's Simplified Chinese face
        font = ImageFont.truetype(str(noto_cjk_sans_otc.FONT_PATH), size, index=index)
        if font.getname()[0].endswith("SC"):
            return font
    return ImageFont.truetype(str(noto_cjk_sans_otc.FONT_PATH), size)


def _render(lines: list[str], size: int, dark_on_light: bool, n: int = 256) -> torch.Tensor:
    font = _cjk_font(size)
    bg, fg = ("white", "black") if dark_on_light else ((20, 30, 60), (240, 240, 220))
    img = Image.new("RGB", (n, n), bg)
    draw = ImageDraw.Draw(img)
    top = (n - int(size * 1.6) * len(lines)) / 2
    for k, line in enumerate(lines):
        draw.text((14, top + k * int(size * 1.6)), line, font=font, fill=fg)
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(n, n, 3).permute(2, 0, 1)


def _run(images, recons, meta, cache, **kwargs):
    m = TextPreservation(cache=cache, **kwargs)
    m.update(EvalBatch([str(i) for i in range(len(images))], images, recons,
                       Tokens.from_latents(torch.zeros(len(images), 1, 1, 1)), meta, 0.0, 0.0))
    return m, m.compute(), m.rows


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def chinese():
    images = torch.stack([_render(lines, size, dark) for lines, size, dark in CHINESE])
    return images, [{"text": "\n".join(lines), "lang": "zh"} for lines, _, _ in CHINESE]


@pytest.mark.usefixtures("no_network")
def test_rapidocr_reads_rendered_chinese_offline_and_loses_it_under_blur(chinese, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("rapidocr")
    images, meta = chinese
    m, clean, rows = _run(images, images, meta, tmp_path)
    assert m.unavailable is None, m.unavailable
    assert rows["ocr_engine"] == ["rapidocr-ch"] * len(images)
    assert clean["ocr_baseline_cer"].value < 0.05, rows["ocr_text"]
    assert clean["cer"].value == pytest.approx(clean["ocr_baseline_cer"].value)
    assert clean["cer"].count == len(images)
    engines = clean["cer"].extra["ocr_engines"]
    assert list(engines) == ["rapidocr-ch"] and engines["rapidocr-ch"]["images"] == len(images)
    assert engines["rapidocr-ch"]["cache_tag"].startswith("rapidocr-ch-v1-rapidocr3.")
    for key in TextPreservation.WORD_KEYS:  # no spaces between Chinese words: CER only
        assert not clean[key].available and "space-separated" in clean[key].reason
        assert rows["word_accuracy"] == [None] * len(images)
    _, blurred, _ = _run(images, _degrade(images, "blur", 3.5), meta, tmp_path)
    assert blurred["cer"].value > clean["cer"].value + 0.2


class _FakeEnglish(FakeOCR):
    name, cache_tag = "easyocr-en", "fake-en-v1"

    def read(self, images):
        return ["en " + t for t in super().read(images)]


class _FakeChinese(FakeOCR):
    name, cache_tag = "rapidocr-ch", "fake-zh-v1"

    def read(self, images):
        return ["zh " + t for t in super().read(images)]


@pytest.fixture
def fake_engines(monkeypatch):
    monkeypatch.setitem(text.ENGINES, "easyocr-en", _FakeEnglish)
    monkeypatch.setitem(text.ENGINES, "rapidocr-ch", _FakeChinese)


def _flat(*values: int) -> torch.Tensor:
    return torch.stack([torch.full((3, 8, 8), v, dtype=torch.uint8) for v in values])


@pytest.mark.usefixtures("fake_engines")
def test_each_samples_language_picks_its_engine_and_the_result_says_which(tmp_path):
    images = _flat(0, 10, 20, 30, 40)
    meta = [{"text": "en mean 0"}, {"text": "zh mean 10", "lang": "zh-CN"}, {"text": "en mean 20", "lang": "en-GB"},
            {"text": "zh mean 30", "lang": "zh_TW"}, {"lang": "zh"}]
    m, out, rows = _run(images, images, meta, tmp_path)
    assert m.unavailable is None, m.unavailable
    assert rows["ocr_engine"] == ["easyocr-en", "rapidocr-ch", "easyocr-en", "rapidocr-ch", "rapidocr-ch"]
    assert rows["ocr_text"] == ["en mean 0", "zh mean 10", "en mean 20", "zh mean 30", "zh mean 40"]
    assert out["cer"].value == 0 and out["cer"].count == 4
    assert out["ocr_agreement_cer"].count == 1
    assert {k: v["images"] for k, v in out["cer"].extra["ocr_engines"].items()} == {"easyocr-en": 2, "rapidocr-ch": 3}
    assert "en: easyocr-en, zh: rapidocr-ch" in out["cer"].implementation
    # word metrics: over the two English images only, and they say so
    assert out["word_accuracy"].count == 2 and "over the 2 of 4 images" in out["word_accuracy"].note
    assert rows["word_accuracy"] == [1.0, None, 1.0, None, None]

    m, out, rows = _run(images, images, meta, tmp_path, engine="rapidocr-ch")  # one engine for every image
    assert rows["ocr_engine"] == ["rapidocr-ch"] * 5
    assert out["cer"].implementation.startswith("rapidocr-ch via vtbench")
    assert list(out["cer"].extra["ocr_engines"]) == ["rapidocr-ch"]
    with pytest.raises(ValueError, match="unknown OCR engine"):
        TextPreservation(engine="tesseract")


@pytest.mark.usefixtures("fake_engines")
@pytest.mark.parametrize("lang", ["ja", "ko", "hi"])
def test_languages_without_an_offline_engine_are_unavailable(lang, tmp_path):
    m, out, rows = _run(_flat(0, 1), _flat(0, 1), [{"text": "x"}, {"text": "x", "lang": lang}], tmp_path)
    assert rows is None and out["cer"].available is False
    assert f"language {lang}" in out["cer"].reason and "Japanese, Korean" in out["cer"].reason


def test_missing_rapidocr_is_unavailable_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # import fails as if not installed
    text._engine.cache_clear()
    try:
        m, out, _ = _run(_flat(0), _flat(0), [{"text": "你好", "lang": "zh"}], tmp_path)
    finally:
        text._engine.cache_clear()
    assert out["cer"].available is False
    assert "pip install rapidocr onnxruntime" in out["cer"].reason


def test_a_manifests_language_reaches_every_sample_and_the_fingerprint(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (16, 16), "white").save(tmp_path / "imgs" / "a.png")
    (tmp_path / "imgs" / "a.txt").write_text("你好", encoding="utf-8")
    manifest = {"kind": "folder", "name": "zh-folder", "root": "imgs", "lang": "zh"}
    (tmp_path / "zh.json").write_text(json.dumps(manifest))
    (sample,) = load_manifest(tmp_path / "zh.json").samples("text")
    assert sample.meta["lang"] == "zh" and sample.meta["text"] == "你好"

    def digest(meta):
        fp = Fingerprint()
        fp.update(ImageBatch(["a"], _flat(255), [meta]))
        return fp.hexdigest()

    assert digest({"text": "你好", "lang": "zh"}) != digest({"text": "你好", "lang": "ja"}) != digest({"text": "你好"})

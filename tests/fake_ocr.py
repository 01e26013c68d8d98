"""A stand-in OCR engine for tests where OCR is not what is tested: instant, deterministic, no weights.

Use the `fake_ocr` fixture (``from .fake_ocr import fake_ocr  # noqa: F401``) to make the text task read
with it in place of EasyOCR.
"""

import pytest
import torch

from vtbench.bench import text


class FakeOCR:
    """Reads ``"mean N"``: N is the image's mean pixel value, rounded."""

    name = "fake-ocr"
    version = 1
    weights = ()
    cache_tag = "fake-ocr-v1"

    def __init__(self, device: str = "cpu"):
        self.batches: list[int] = []  # the batch size of every read

    def read(self, images: torch.Tensor) -> list[str]:
        self.batches.append(len(images))
        return [f"mean {int(v)}" for v in images.float().mean((1, 2, 3)).round()]


@pytest.fixture
def fake_ocr(monkeypatch):
    """The text task's default engine reads with `FakeOCR`."""
    monkeypatch.setitem(text.ENGINES, "easyocr-en", FakeOCR)
    return FakeOCR

"""Text preservation: edit distances, normalisation, and OCR on the builtin rendered text."""

import json
from dataclasses import replace

import pytest
import torch

from vtbench.bench import metric_weights
from vtbench.bench.datasets import BuiltinDataset, batches
from vtbench.bench.metrics import EvalBatch
from vtbench.bench.text import EasyOCREngine, OCRCache, TextPreservation, align, normalise
from vtbench.tokenizers import Tokens

from .fake_ocr import FakeOCR, fake_ocr  # noqa: F401
from .test_metrics import _degrade


def test_normalisation_is_nfkc_whitespace_and_optional_casefold():
    assert normalise("  Ｈｅｌｌｏ\n\tﬁne  world ") == "Hello fine world"
    assert normalise("Straße ABC", casefold=True) == "strasse abc"


@pytest.mark.parametrize("ref,hyp,edits,hits", [
    ("kitten", "sitting", 3, 4),
    ("", "abc", 3, 0),
    ("abc", "", 3, 0),
    (["the", "cat", "sat"], ["the", "cat", "sat"], 0, 3),
    (["the", "cat", "sat"], ["the", "bat", "sat", "down"], 2, 2),  # one substitution, one insertion
    (["a", "b", "c", "d"], ["a", "c", "d"], 1, 3),  # one deletion
])
def test_alignment_counts_edits_and_matches(ref, hyp, edits, hits):
    assert align(ref, hyp) == (edits, hits)


def test_word_error_rate_is_word_level_not_characters_per_word():
    m = TextPreservation()
    m._add(0, "alpha beta gamma delta", "alpha beta gamma deltx")
    edits, chars, word_edits, word_hits, words = m.counts[0].tolist()
    assert (edits, chars) == (1, 22)
    assert (word_edits, word_hits, words) == (1, 3, 4)  # WER 0.25, word accuracy 0.75


@pytest.fixture(scope="module")
def text_images():
    batch = next(batches(BuiltinDataset().samples("text"), 256, 32, []))
    keep = [i for i, sid in enumerate(batch.ids) if "_s24_" in sid or "_s36_" in sid]  # 5 mid-size images
    return batch.images[keep], [batch.meta[i] for i in keep]


def _run(images, recons, meta, tmp_path):
    m = TextPreservation(cache=tmp_path)
    m.update(EvalBatch([str(i) for i in range(len(images))], images, recons,
                       Tokens.from_latents(torch.zeros(len(images), 1, 1, 1)), meta, 0.0, 0.0))
    assert m.unavailable is None, m.unavailable
    return m.compute(), m.rows


def test_ocr_reads_clean_text_and_loses_it_under_blur(text_images, tmp_path):
    images, meta = text_images
    clean, rows = _run(images, images, meta, tmp_path)
    assert clean["ocr_baseline_cer"].value < 0.05  # the OCR engine itself reads the originals
    assert clean["cer"].value == pytest.approx(clean["ocr_baseline_cer"].value)
    assert all(r.strip() for r in rows["ocr_text"])
    blurred, _ = _run(images, _degrade(images, "blur", 2.5), meta, tmp_path)
    assert blurred["cer"].value > clean["cer"].value + 0.2
    assert blurred["word_accuracy"].value < clean["word_accuracy"].value
    assert "ocr_agreement_cer" not in blurred  # every image here has ground truth


def _flat(*values: int) -> torch.Tensor:
    return torch.stack([torch.full((3, 8, 8), v, dtype=torch.uint8) for v in values])


@pytest.mark.usefixtures("fake_ocr")
def test_images_without_ground_truth_are_scored_by_agreement(tmp_path):
    # originals read "mean 0" and "mean 100", reconstructions "mean 255" and "mean 100":
    # 3 edits (0 -> 2, then 5 5 inserted) over 6 reference characters, then 0 over 8
    out, rows = _run(_flat(0, 100), _flat(255, 100), [{}, {}], tmp_path)
    assert rows["ocr_agreement_cer"] == [pytest.approx(3 / 6), 0.0]
    assert out["ocr_agreement_cer"].value == pytest.approx(3 / 14) and out["ocr_agreement_cer"].count == 2
    assert "cer" not in out and rows["cer"] == [None, None]


def test_ocr_of_originals_is_cached_per_engine_version_and_weights(tmp_path):
    engine = FakeOCR()
    images = _flat(0, 10, 20)
    assert OCRCache(engine, tmp_path).read(images) == ["mean 0", "mean 10", "mean 20"]
    assert OCRCache(engine, tmp_path).read(images[1:]) == ["mean 10", "mean 20"]
    assert engine.batches == [3]  # the second read came from the cache
    engine.cache_tag = "fake-ocr-v2"  # another version or other weights: read again
    OCRCache(engine, tmp_path).read(images[:1])
    assert engine.batches == [3, 1]


def test_unreadable_ocr_cache_entries_are_read_again_and_overwritten(tmp_path):
    engine = FakeOCR()
    images = _flat(0, 10, 20, 30)
    cache = OCRCache(engine, tmp_path)
    cache.read(images)
    paths = sorted(cache.root.rglob("*.json"), key=lambda p: json.loads(p.read_text())["text"])
    paths[0].write_bytes(b"\xe9\xff garbage")  # not UTF-8
    paths[1].write_text('{"text": "mean 1')  # truncated
    paths[2].write_text("[1, 2]")  # JSON, but not an entry
    paths[3].write_text('{"text": null}')
    assert cache.read(images) == ["mean 0", "mean 10", "mean 20", "mean 30"]
    assert engine.batches == [4, 4]
    assert [json.loads(p.read_text()) for p in paths] == [{"text": f"mean {v}"} for v in (0, 10, 20, 30)]


def test_easyocr_cache_tag_changes_with_its_pinned_weights(monkeypatch):
    before = EasyOCREngine().cache_tag
    pinned = metric_weights.WEIGHTS["easyocr-english"]
    monkeypatch.setitem(metric_weights.WEIGHTS, "easyocr-english",
                        replace(pinned, member_sha256="0" * 64))
    assert EasyOCREngine().cache_tag != before

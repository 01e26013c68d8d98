"""Text preservation: edit distances, normalisation, and OCR on the builtin rendered text."""

import pytest
import torch

from vtbench.bench.datasets import BuiltinDataset, batches
from vtbench.bench.metrics import EvalBatch
from vtbench.bench.text import OCRCache, TextPreservation, align, normalise
from vtbench.tokenizers import Tokens

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


def _run(images, recons, meta, tmp_path, monkeypatch):
    monkeypatch.setattr(OCRCache, "__init__", lambda self, engine, root=None: setattr(self, "root", tmp_path / engine))
    m = TextPreservation()
    rows = m.update(EvalBatch([str(i) for i in range(len(images))], images, recons,
                              Tokens.from_latents(torch.zeros(len(images), 1, 1, 1)), meta, 0.0, 0.0))
    assert m.unavailable is None, m.unavailable
    return m.compute(), rows


def test_ocr_reads_clean_text_and_loses_it_under_blur(text_images, tmp_path, monkeypatch):
    images, meta = text_images
    clean, rows = _run(images, images, meta, tmp_path, monkeypatch)
    assert clean["ocr_baseline_cer"].value < 0.05  # the OCR engine itself reads the originals
    assert clean["cer"].value == pytest.approx(clean["ocr_baseline_cer"].value)
    assert all(r.strip() for r in rows["ocr_text"])
    blurred, _ = _run(images, _degrade(images, "blur", 2.5), meta, tmp_path, monkeypatch)
    assert blurred["cer"].value > clean["cer"].value + 0.2
    assert blurred["word_accuracy"].value < clean["word_accuracy"].value
    assert "ocr_agreement_cer" not in blurred  # every image here has ground truth
    assert len(list((tmp_path / "easyocr-en").rglob("*.txt"))) == len(images)  # originals read once, cached


def test_images_without_ground_truth_are_scored_by_agreement(text_images, tmp_path, monkeypatch):
    images, _ = text_images
    out, rows = _run(images[:2], images[:2], [{}, {}], tmp_path, monkeypatch)
    assert out["ocr_agreement_cer"].value == 0.0 and out["ocr_agreement_cer"].count == 2
    assert "cer" not in out and rows["cer"] == [None, None]

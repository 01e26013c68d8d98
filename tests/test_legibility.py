"""The font-size ladder and the legibility task: rendering, the threshold rule, and OCR end to end."""

import numpy as np
import pytest
import torch
from PIL import ImageFont

from vtbench.bench import builtin
from vtbench.bench.datasets import BuiltinDataset, batches
from vtbench.bench.metrics import EvalBatch
from vtbench.bench.tasks import METRICS, get_task
from vtbench.bench.text import Legibility, legible_from, normalise
from vtbench.tokenizers import Tokens

from .test_metrics import _degrade

#: the threshold tests fill the states by hand, without `update`
pytestmark = pytest.mark.filterwarnings("ignore:The ``compute`` method of metric Legibility:UserWarning")


def _ladder(resolution: int):
    return next(batches(BuiltinDataset().samples("ladder"), resolution, 64, [], workers=0))


def test_ladder_strings_and_font_are_not_the_training_texts():
    training_words = {w.casefold() for w in builtin.WORDS}
    assert not {w for s in builtin.LADDER_STRINGS for w in s.casefold().split()} & training_words
    assert builtin.ladder_font(12).getname()[0] != ImageFont.load_default(size=12).getname()[0]


@pytest.mark.parametrize("resolution", [256, 128, 64])
def test_ladder_renders_deterministically_with_ground_truth_for_every_size(resolution):
    batch, again = _ladder(resolution), _ladder(resolution)
    assert torch.equal(batch.images, again.images) and batch.meta == again.meta
    sizes = [m["font_px"] for m in batch.meta]
    assert sizes == [s for s in builtin.LADDER_SIZES for _ in builtin.LADDER_STRINGS]
    assert batch.ids[0] == "ladder/08px_0"
    for image, meta, sid in zip(batch.images, batch.meta, batch.ids):
        words = meta["text"].split()
        full = builtin.LADDER_STRINGS[int(sid[-1])].split()
        assert words == full[:len(words)]  # a prefix of the string's words, wrapped
        ink = (image.int().sum(0) < 600).nonzero()  # dark pixels (the background sums to 745)
        if not words:  # nothing fits: a blank image, evaluated by no one
            assert len(ink) == 0
            continue
        margin = resolution // 16
        assert ink.min() >= margin - 1 and ink.max() <= resolution - margin  # inside the margins
    fitted = {m["font_px"] for m in batch.meta if m["text"]}
    if resolution >= 256:
        assert fitted == set(builtin.LADDER_SIZES)
        assert all(m["text"] == s for m, s in zip(batch.meta[:6], builtin.LADDER_STRINGS * 2))  # 8, 12 px: whole
    else:
        assert min(fitted) == 8 and max(fitted) < 96


@pytest.mark.parametrize("accuracy,expected", [
    ([0.0, 0.2, 0.5, 0.9, 1.0], 12),  # 0.5 counts as legible
    ([0.0, 0.6, 0.4, 0.8, 1.0], 16),  # legible at 4 px, but not at 8: from 16
    ([0.6, 0.7, 0.9, 1.0, 0.4], None),  # fails at the largest size: never legible
    ([0.0, 0.0, 0.0, 0.0, 0.0], None),
    ([0.0, None, 0.7, None, 0.9], 12),  # sizes not evaluated are passed over
    ([0.9, 0.1, None, 0.8, None], 16),
    ([None] * 5, None),
])
def test_legible_from_is_the_smallest_size_staying_above_the_threshold(accuracy, expected):
    assert legible_from([4, 8, 12, 16, 24], accuracy) == expected


def test_legible_from_takes_sizes_in_any_order():
    assert legible_from([24, 4, 16, 8], [1.0, 0.0, 0.7, 0.6]) == 8


def _with_counts(hits: list[int], words: list[int], baseline_hits: list[int]) -> Legibility:
    """A metric over sizes 8, 16, 32, 64 whose states hold these word counts (0 words: size not evaluated)."""
    m = Legibility(sizes=(8, 16, 32, 64))
    for i, (h, n, b) in enumerate(zip(hits, words, baseline_hits)):
        m.counts[i, 0] = torch.tensor([n - h, 5 * n, n - h, h, n], dtype=torch.float64)
        m.counts[i, 1] = torch.tensor([n - b, 5 * n, n - b, b, n], dtype=torch.float64)
        m.images[0 if n else 1, i] = 2
    return m


def test_legibility_values_and_curve_from_per_size_counts():
    out = _with_counts([0, 7, 3, 4], [10, 10, 10, 4], [4, 10, 10, 4]).compute()
    assert out["legible_from_px"].value == 64  # 70% at 16 px, but 30% at 32 px
    assert out["ocr_baseline_legible_from_px"].value == 16  # 40% at 8 px
    assert out["word_accuracy"].value == pytest.approx(14 / 34)
    assert out["cer"].value == pytest.approx(20 / 170)
    curve = out["legible_from_px"].extra["curve"]
    assert curve["font_px"] == [8, 16, 32, 64] and curve["words"] == [10, 10, 10, 4]
    assert curve["word_accuracy"] == pytest.approx([0.0, 0.7, 0.3, 1.0])
    assert curve["ocr_baseline_word_accuracy"] == pytest.approx([0.4, 1.0, 1.0, 1.0])
    assert out["legible_from_px"].extra["threshold"] == 0.5


def test_never_legible_is_unavailable_with_the_reason_and_the_curve():
    out = _with_counts([9, 9, 9, 1], [10, 10, 10, 4], [10, 10, 10, 4]).compute()
    never = out["legible_from_px"]
    assert never.value is None and not never.available and never.extra["never_legible"]
    assert "never legible" in never.reason and "64 px" in never.reason
    assert never.extra["curve"]["word_accuracy"] == pytest.approx([0.9, 0.9, 0.9, 0.25])
    assert out["ocr_baseline_legible_from_px"].value == 8


def test_sizes_that_do_not_fit_are_left_out_and_said_so():
    out = _with_counts([10, 10, 0, 0], [10, 10, 0, 0], [10, 10, 0, 0]).compute()
    assert out["legible_from_px"].value == 8
    assert out["legible_from_px"].extra["curve"]["word_accuracy"] == [1.0, 1.0, None, None]
    assert "sizes 32, 64 px do not fit" in out["legible_from_px"].note
    nothing = Legibility(sizes=(8, 16))
    nothing.images[1] += 3
    assert not nothing.compute()["legible_from_px"].available


def test_states_are_per_size_sums_declared_up_front():
    m = Legibility()
    assert {k: m._reductions[k].__name__ for k in m._defaults} == {"counts": "dim_zero_sum", "images": "dim_zero_sum"}
    assert m.counts.shape[0] == m.images.shape[1] == len(builtin.LADDER_SIZES)


def test_task_is_registered_and_reads_the_ladder():
    task = get_task("legibility")
    assert task.subset == "ladder" and METRICS["legibility"] is Legibility
    assert [type(m).__name__ for m in task.metrics(None, type("L", (), {"vocab_sizes": (4,)}))][0] == "Legibility"
    assert "legibility" not in BuiltinDataset.default_tasks  # too slow for the default run: by name only


def test_images_from_elsewhere_make_it_unavailable(tmp_path):
    m = Legibility(cache=tmp_path)
    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    m.update(EvalBatch(["a.png"], images, images, Tokens.from_latents(torch.zeros(1, 1, 1, 1)), [{"text": "hi"}],
                       0.0, 0.0))
    assert "font-size ladder" in m.unavailable and "a.png" in m.unavailable
    assert not m.compute()["legible_from_px"].available


def test_ocr_reads_the_original_ladder_from_small_sizes_and_blur_moves_legibility_up(tmp_path):
    batch = _ladder(256)
    keep = [i for i, sid in enumerate(batch.ids) if int(sid[-1]) == builtin.LADDER_SIZES.index(
        batch.meta[i]["font_px"]) % 3]  # one image per size, the three strings in turn
    images, meta = batch.images[keep], [batch.meta[i] for i in keep]
    assert [m["font_px"] for m in meta] == list(builtin.LADDER_SIZES)
    m = Legibility(cache=tmp_path)
    m.update(EvalBatch([batch.ids[i] for i in keep], images, _degrade(images, "blur", 3.0),
                       Tokens.from_latents(torch.zeros(len(keep), 1, 1, 1)), meta, 0.0, 0.0))
    assert m.unavailable is None, m.unavailable
    out = m.compute()
    curve = out["legible_from_px"].extra["curve"]
    assert out["ocr_baseline_legible_from_px"].value <= 16, curve
    blurred = out["legible_from_px"].value
    assert blurred is not None and blurred >= 32, curve  # measured: 48 px (sigma 3), originals 12 px
    assert m.rows["font_px"] == list(builtin.LADDER_SIZES)
    assert all(normalise(t) for t in m.rows["ocr_text"][-3:])  # the largest sizes are still read
    assert np.mean(curve["word_accuracy"][:3]) < 0.5 <= np.mean(curve["ocr_baseline_word_accuracy"][1:3])

"""The leaderboard's reports: JPEG read at a tokenizer's bpp, codec and token-statistics tables, when a best is
withheld, published figures kept apart, rate-distortion plots, and reconstruction grids from showcase strips."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vtbench import load_tokenizer
from vtbench.bench import leaderboard, plots, showcase
from vtbench.bench.datasets import BuiltinDataset
from vtbench.bench.metrics import PSNR, SSIM, TokenStats
from vtbench.bench.results import SCHEMA
from vtbench.bench.runner import RunConfig, evaluate
from vtbench.bench.tasks import Task

ROOT = Path(__file__).resolve().parents[1]
#: no metric weights: runs anywhere in seconds
FAST = Task("reconstruction", "photos", lambda cfg, layout: [PSNR(), SSIM(), TokenStats(layout.vocab_sizes)],
            "PSNR, SSIM and token statistics")


def _metric(value, hib, unit="", **kw):
    return {"value": value, "higher_is_better": hib, "unit": unit, **kw}


def _result(name, bpp, psnr, family="vq", vocab=(4096,), codec=None, quality=None, **metrics):
    tok = {"name": name, "family": family, "discrete": bool(vocab), "tokens_per_image": 256,
           "vocab_sizes": list(vocab), "weights": {"tag": "hub"}}
    if codec:
        tok.update(codec=codec, quality=quality, notes=f"{codec} via Pillow; tokens: bytes")
    return {"schema": SCHEMA, "task": "reconstruction", "tokenizer": tok,
            "dataset": {"name": "builtin", "resolution": 256, "fingerprint": "ab" * 32, "num_samples": 11},
            "metrics": {"psnr": _metric(psnr, True, "dB"), "bits_per_pixel": _metric(bpp, None, "bpp"), **metrics}}


JPEG = [_result(f"jpeg-q{q}", bpp, psnr, "baseline", (256,), "jpeg", q)
        for q, bpp, psnr in ((5, 0.1, 20.0), (20, 0.4, 26.0), (50, 0.8, 30.0))]


def test_jpeg_is_read_at_the_tokenizers_bpp_linear_in_log_bpp():
    curve = plots.rate_distortion(JPEG, "psnr")["JPEG"]
    assert leaderboard._jpeg_at(curve, 0.2) == pytest.approx(20 + 6 * math.log(2) / math.log(4))
    assert leaderboard._jpeg_at(curve, 0.4) == pytest.approx(26.0)
    assert leaderboard._jpeg_at(curve, 0.05) is None and leaderboard._jpeg_at(curve, 1.0) is None


def test_codecs_get_their_own_table_and_tokenizers_a_jpeg_column():
    page = leaderboard.build([_result("tok-a", 0.2, 24.0), *JPEG])["reconstruction.md"]
    main, codecs = page.split("### Classical codecs")
    row = next(line for line in main.splitlines() if line.startswith("| tok-a |"))
    assert row.split(" | ")[-1] == f"{20 + 6 * math.log(2) / math.log(4):.2f} |"
    assert "JPEG psnr at bpp" in main and "jpeg-q" not in main
    assert [line.split(" | ")[:2] for line in codecs.splitlines() if line.startswith("| JPEG")] == [
        ["| JPEG", "5"], ["| JPEG", "20"], ["| JPEG", "50"]]


def test_token_statistics_are_a_table_of_joint_and_per_component_figures():
    stats = {"codebook_usage": _metric(0.25, True, "fraction", count=512), "token_entropy": _metric(6.0, True, "bits"),
             "marginal_codebook_usage": _metric(1.0, True, "fraction"), "marginal_entropy": _metric(2.5, True, "bits")}
    fsq = _result("fsq-a", 0.2, 24.0, "fsq", (8, 8, 8, 8), **stats)
    vq = _result("vq-a", 0.2, 24.0, "vq", (4096,), **stats)
    page = leaderboard.build([fsq, vq])["reconstruction.md"]
    table = page.split("### Token statistics")[1]
    fsq_row = next(line for line in table.splitlines() if line.startswith("| fsq-a |")).split(" | ")
    assert fsq_row[1:8] == ["4,096", "512", "0.2500", "0.1250", "6.0000", "0.5000", "1.0000"]
    vq_row = next(line for line in table.splitlines() if line.startswith("| vq-a |"))
    assert vq_row.endswith("| (one component) | (one component) |")
    assert "codebook_usage" not in page.split("### Token statistics")[0]


@pytest.mark.parametrize("top, wins", [
    ({"ci_low": 0.5, "ci_high": 0.7}, True),
    ({"ci_low": 0.5, "ci_high": 0.7, "count": 3, "min_count": 100}, False),  # below its stated minimum
    ({"ci_low": -0.1, "ci_high": 0.7}, False),  # its interval spans zero
    ({"ci_low": 0.35, "ci_high": 0.7}, False),  # overlaps the runner-up
])
def test_a_best_needs_separation_a_sample_above_the_minimum_and_an_interval_clear_of_zero(top, wins):
    values = [_metric(0.6, True, **top), _metric(0.3, True, ci_low=0.2, ci_high=0.4)]
    assert (leaderboard._best(values, True) is values[0]) == wins


def test_a_metric_below_its_minimum_says_so_under_the_table():
    a, b = _result("a", 0.2, 24.0), _result("b", 0.2, 20.0)
    for r, v in ((a, 0.01), (b, 0.5)):
        r["metrics"]["kid"] = _metric(v, False, count=11, min_count=100, ci_low=v - 0.001, ci_high=v + 0.001)
    page = leaderboard.build([a, b])["reconstruction.md"]
    assert "- `kid`: 11 samples, below its stated minimum of 100: never marked best" in page
    assert "**0.0100" not in page


def test_published_figures_are_a_section_apart_with_their_source_and_why_they_differ():
    a = _result("llamagen-vq16", 0.05, 20.0)
    a["tokenizer"]["weights"]["figures"] = {"rfid": 2.19, "dataset": "ImageNet val, 256x256",
                                            "source": "https://github.com/FoundationVision/LlamaGen"}
    page = leaderboard.build([a, _result("mini-vq", 0.2, 23.0)])["reconstruction.md"]
    measured, published = page.split("## Published figures (reported by the authors, not measured here)")
    assert "2.19" not in measured
    row = "| llamagen-vq16 | 2.19 |  |  | ImageNet val, 256x256 |  | <https://github.com/FoundationVision/LlamaGen> |"
    assert row in published and "mini-vq" not in published and "Why they differ" in published
    assert "Published figures" not in leaderboard.build([_result("mini-vq", 0.2, 23.0)])["reconstruction.md"]


def test_rate_distortion_series_join_a_family_and_keep_codecs_apart():
    flex = [_result(f"mini-flextok-k{k}", k / 100, 10 + k / 10, "flextok") for k in (8, 32)]
    series = plots.rate_distortion([*flex, *JPEG, _result("bicubic-f8", 0.375, 23, "baseline")], "psnr")
    assert list(series) == ["JPEG", "bicubic-f#", "flextok"]
    assert [p[2] for p in series["flextok"]] == ["mini-flextok-k8", "mini-flextok-k32"]


def test_leaderboard_draws_the_rate_distortion_plot(tmp_path):
    pytest.importorskip("matplotlib")
    results = tmp_path / "results"
    for r in [_result("tok-a", 0.2, 24.0), *JPEG]:
        path = results / "builtin" / r["tokenizer"]["name"] / "reconstruction.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(r))
    written = {p.name for p in leaderboard.write(results, tmp_path / "boards")}
    name = "rd_reconstruction_builtin_256px_abababab.png"
    assert name in written and f"]({name})" in (tmp_path / "boards" / "reconstruction.md").read_text()
    assert Image.open(tmp_path / "boards" / name).size[0] > 600


def test_crop_box_finds_the_busiest_window():
    img = torch.full((3, 64, 64), 128, dtype=torch.uint8)
    img[:, 40:56, 8:24] = torch.randint(0, 256, (3, 16, 16), generator=torch.Generator().manual_seed(0))
    top, left = showcase.crop_box(img, 16)
    assert (top, left) == (40, 8)


def _run(out, tok="bicubic-f8", limit=3, **cfg):
    return evaluate(load_tokenizer(tok), BuiltinDataset(), FAST, out,
                    RunConfig(resolution=64, limit=limit, workers=0, **cfg), progress=False)


def test_a_run_keeps_its_showcase_and_the_leaderboard_lays_out_the_grid(tmp_path):
    out = tmp_path / "results"
    r8, p8 = _run(out)
    r16, _ = _run(out, "bicubic-f16")
    assert [i["id"] for i in r8["showcase"]["images"]] == ["photo/astronaut", "photo/chelsea"]
    assert r8["showcase"]["originals"] == r16["showcase"]["originals"]  # stored once per dataset
    originals, recons = showcase.read(p8, r8["showcase"])
    assert originals.shape == recons.shape == (showcase.VIEW, 2 * (showcase.VIEW + showcase.CROP), 3)
    assert not np.array_equal(originals, recons)
    written = {p.name for p in leaderboard.write(out, tmp_path / "boards")}
    grid = "grid_reconstruction_builtin_64px_" + r8["dataset"]["fingerprint"][:8] + ".png"
    assert grid in written
    image = Image.open(tmp_path / "boards" / grid)
    cell = showcase.LABEL + showcase.VIEW + showcase.CROP * showcase.ZOOM
    assert image.size == (3 * (showcase.VIEW + 2), 2 * (cell + 2 + 8))  # original + 2 tokenizers, 2 images


def test_an_altered_showcase_is_left_out_and_a_missing_one_recomputes_the_result(tmp_path):
    out = tmp_path / "results"
    r8, p8 = _run(out)
    _run(out, "bicubic-f16")
    strip = p8.with_name(r8["showcase"]["file"])
    strip.write_bytes(strip.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="bicubic-f8/reconstruction.64px.first3.json: showcase images missing"):
        leaderboard.write(out, tmp_path / "boards")
    with pytest.warns(UserWarning, match="its showcase images are missing"):
        again, _ = _run(out)
    assert showcase.read(p8, again["showcase"]) is not None


def test_strips_of_another_layout_recompute_the_result(tmp_path, monkeypatch):
    _, path = _run(tmp_path)
    view, crop = showcase.VIEW, showcase.CROP
    monkeypatch.setattr(showcase, "VIEW", view + 16)
    with pytest.warns(UserWarning, match=f"its showcase strips are {view}/{crop} px, now {view + 16}/{crop} px"):
        again, _ = _run(tmp_path)
    assert again["showcase"]["view"] == view + 16 and showcase.read(path, again["showcase"])[0].shape[0] == view + 16


def test_the_pfid_task_keeps_no_showcase(tmp_path):
    from vtbench.bench.tasks import get_task

    pfid = replace(get_task("pfid"), metrics=FAST.metrics)
    result, path = evaluate(load_tokenizer("bicubic-f8"), BuiltinDataset(), pfid, tmp_path,
                            RunConfig(resolution=64, limit=2, workers=0), progress=False)
    assert "showcase" not in result and not list(path.parent.glob("*.webp"))


def test_no_showcase_when_asked_for_none(tmp_path):
    result, path = _run(tmp_path, showcase=0)
    assert "showcase" not in result and not list(path.parent.glob("*.webp"))


def test_committed_figures_stay_within_the_size_budget():
    """Committed leaderboards: each grid within 700 kB, all figures within 3 MB, strips within 40 kB each."""
    boards = ROOT / "leaderboards"
    grids = list(boards.glob("grid_*.png"))
    assert all(p.stat().st_size <= 700_000 for p in grids), [(p.name, p.stat().st_size) for p in grids]
    assert sum(p.stat().st_size for p in boards.glob("*.png")) <= 3_000_000
    strips = list((boards / "results").rglob("*.webp"))
    assert all(p.stat().st_size <= 40_000 for p in strips), max((p.stat().st_size, p.name) for p in strips)


def test_showcase_resumes_from_a_checkpoint(tmp_path, monkeypatch):
    """An interrupted run's checkpoint keeps the showcase images it had seen."""
    import vtbench.bench.runner as runner

    monkeypatch.setattr(runner, "CHECKPOINT_EVERY_S", 0.0)
    calls = {"n": 0}
    decode = runner.Tokenizer.decode

    def failing(self, tokens, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return decode(self, tokens, **kw)

    monkeypatch.setattr(runner.Tokenizer, "decode", failing)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, batch_size=2, limit=4)
    monkeypatch.setattr(runner.Tokenizer, "decode", decode)
    resumed, _ = _run(tmp_path, batch_size=2, limit=4)
    fresh, _ = _run(tmp_path / "fresh", batch_size=2, limit=4)
    assert calls["n"] == 2 and resumed["showcase"]["sha256"] == fresh["showcase"]["sha256"]


def test_an_interval_off_centre_is_shown_as_its_ends():
    assert leaderboard._cell(_metric(0.5, False, ci_low=0.4, ci_high=0.6), False) == "0.5000 ±0.1000"
    assert leaderboard._cell(_metric(0.5, False, ci_low=0.1, ci_high=0.3), True) == "**0.5000 [0.1000, 0.3000]**"


def test_the_legibility_page_plots_word_accuracy_against_font_size(tmp_path):
    pytest.importorskip("matplotlib")
    curve = {"font_px": [8, 16, 32], "word_accuracy": [0.0, 0.4, 0.9], "ocr_baseline_word_accuracy": [0.5, 1.0, 1.0]}
    r = _result("tok-a", 0.2, 24.0)
    r["task"] = "legibility"
    r["metrics"]["legible_from_px"] = _metric(32.0, False, "px", extra={"curve": curve, "threshold": 0.5})
    path = tmp_path / "results" / "builtin" / "tok-a" / "legibility.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(r))
    written = {p.name for p in leaderboard.write(tmp_path / "results", tmp_path / "boards")}
    name = "legibility_builtin_256px_abababab.png"
    assert name in written and f"]({name})" in (tmp_path / "boards" / "legibility.md").read_text()

"""End to end: `vtbench run` on builtin images with test-size models, result files, resume, leaderboards."""

import json
from pathlib import Path

import pytest

from vtbench.bench import leaderboard
from vtbench.bench.results import SCHEMA, load_results
from vtbench.cli import main

GOLDEN = Path(__file__).parent / "golden"


def _run(*args):
    return main(["run", "--quiet", *args])


def test_run_writes_versioned_results_and_a_leaderboard(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = _run("--tokenizer", "llamagen-vq-tiny,kl-vae-tiny,bicubic-f8", "--resolution", "64", "--limit", "3",
              "--tasks", "reconstruction,text", "--out", str(out), "--save-images", "1")
    assert rc == 0
    printed = capsys.readouterr().out
    assert "leaderboard:" in printed and "results:" in printed

    res = json.loads((out / "builtin" / "llamagen-vq-tiny" / "reconstruction.json").read_text())
    assert res["schema"] == SCHEMA and res["task"] == "reconstruction"
    assert res["dataset"]["num_samples"] == 3 and res["dataset"]["resolution"] == 64
    assert len(res["dataset"]["fingerprint"]) == 64
    assert res["tokenizer"]["weights"]["tag"] == "random" and res["tokenizer"]["vocab_sizes"] == [64]
    m = res["metrics"]
    assert {"psnr", "ssim", "codebook_usage", "token_entropy", "bits_per_pixel", "encode_images_per_s"} <= set(m)
    assert m["psnr"]["higher_is_better"] is True and m["bits_per_pixel"]["higher_is_better"] is None
    assert m["bits_per_pixel"]["value"] == pytest.approx(32 * 32 * 6 / 64 ** 2)
    rows = [json.loads(x) for x in (out / "builtin" / "llamagen-vq-tiny" / "reconstruction.per_image.jsonl").open()]
    assert [r["id"] for r in rows] == ["photo/astronaut", "photo/chelsea", "photo/coffee"]
    text_rows = [json.loads(x) for x in (out / "builtin" / "bicubic-f8" / "text.per_image.jsonl").open()]
    assert all(r["text"] for r in text_rows)
    assert (out / "builtin" / "bicubic-f8" / "images" / "reconstruction" / "photo__astronaut.png").is_file()

    board = (out / "leaderboards" / "reconstruction.md").read_text()
    assert "llamagen-vq-tiny (random weights)" in board and "kl-vae-tiny (random weights)" in board
    assert "| psnr ↑ |" in board

    # same command again: every result already exists, nothing is recomputed
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert _run("--tokenizer", "llamagen-vq-tiny,kl-vae-tiny,bicubic-f8", "--resolution", "64", "--limit", "3",
                "--tasks", "reconstruction,text", "--out", str(out)) == 0
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}

    # a result made with other weights (another sha256: retrained) is computed anew; the rest still resume
    stale = out / "builtin" / "llamagen-vq-tiny" / "reconstruction.json"
    res["tokenizer"]["weights"]["sha256"] = "0" * 64
    stale.write_text(json.dumps(res))
    assert _run("--tokenizer", "llamagen-vq-tiny,kl-vae-tiny,bicubic-f8", "--resolution", "64", "--limit", "3",
                "--tasks", "reconstruction,text", "--out", str(out)) == 0
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert json.loads(stale.read_text())["tokenizer"]["weights"]["sha256"] != "0" * 64
    assert {p for p in after if after[p] != before[p]} == {stale}


def test_reported_psnr_is_reproduced_by_the_saved_pngs(tmp_path):
    import numpy as np
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    out = tmp_path / "runs"
    assert _run("--tokenizer", "llamagen-vq-tiny", "--resolution", "64", "--limit", "2", "--tasks", "detail",
                "--out", str(out), "--save-images", "2") == 0
    folder = out / "builtin" / "llamagen-vq-tiny"
    rows = [json.loads(x) for x in (folder / "detail.per_image.jsonl").open()]
    for row in rows:
        stem = folder / "images" / "detail" / row["id"].replace("/", "__")
        a = np.asarray(Image.open(f"{stem}.orig.png"))
        b = np.asarray(Image.open(f"{stem}.png"))
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-6)


def test_folder_with_bad_files_finishes_and_reports_them(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    data = tmp_path / "imgs"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(data / f"ok{i}.png")
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (data / "readme.md").write_text("hi")
    out = tmp_path / "runs"
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert _run("--tokenizer", "bicubic-f8", "--dataset", str(data), "--resolution", "32", "--out", str(out)) == 0
    res = json.loads((out / "folder_imgs" / "bicubic-f8" / "reconstruction.json").read_text())
    assert res["dataset"]["num_samples"] == 2 and res["dataset"]["num_skipped"] == 2
    assert {s["id"] for s in res["dataset"]["skipped"]} == {"broken.jpg", "readme.md"}
    assert "2 skipped" in capsys.readouterr().out


def test_unknown_tokenizer_and_missing_weights_are_clear_errors(tmp_path, capsys, monkeypatch):
    from vtbench.tokenizers import weights

    assert _run("--tokenizer", "sd-vae-ft-mes", "--out", str(tmp_path)) == 2
    assert "did you mean 'sd-vae-ft-mse'" in capsys.readouterr().err
    monkeypatch.setattr(weights, "_hub_reachable", lambda timeout=3.0: False)
    assert _run("--tokenizer", "sd-vae-ft-mse", "--out", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "diffusion_pytorch_model.safetensors" in err and "VTBENCH_WEIGHTS_DIR" in err


def test_fixed_resolution_tokenizer_is_skipped_at_another_resolution(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = _run("--tokenizer", "mini-titok,bicubic-f8", "--resolution", "64", "--limit", "1", "--tasks",
              "reconstruction", "--out", str(out))
    assert rc == 1
    assert "[mini-titok] skipped: it encodes 256x256 images only (asked for --resolution 64)" in capsys.readouterr().err
    assert (out / "builtin" / "bicubic-f8" / "reconstruction.json").is_file()
    assert not (out / "builtin" / "mini-titok").exists()


def test_missing_metric_weights_make_metrics_unavailable_not_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("VTBENCH_NO_FETCH", "0")  # restored after the test; --no-fetch sets it
    out = tmp_path / "runs"
    assert _run("--tokenizer", "bicubic-f8", "--resolution", "64", "--limit", "2", "--tasks", "reconstruction,text",
                "--out", str(out), "--no-fetch") == 0
    rec = json.loads((out / "builtin" / "bicubic-f8" / "reconstruction.json").read_text())["metrics"]
    for k in ("lpips", "rfid", "kid"):
        assert rec[k]["available"] is False and rec[k]["value"] is None
        assert "vtbench weights fetch" in rec[k]["reason"]
    assert rec["psnr"]["available"] and rec["psnr"]["value"] > 0
    text = json.loads((out / "builtin" / "bicubic-f8" / "text.json").read_text())["metrics"]
    assert text["cer"]["available"] is False and "easyocr" in text["cer"]["reason"]
    assert "unavailable" in (out / "leaderboards" / "reconstruction.md").read_text()
    assert main(["weights", "status", "lpips-alex"]) == 0
    assert "missing" in capsys.readouterr().out


def test_list_commands(capsys):
    for what in ("tokenizers", "datasets", "metrics", "tasks"):
        assert main(["list", what]) == 0
    out = capsys.readouterr().out
    assert "llamagen-vq16" in out and "vtbench-task1-imagenet" in out and "ssim" in out and "detail" in out


# --- leaderboard ------------------------------------------------------------------------------------
def _result(name, family, psnr, ssim, fingerprint="ab" * 32, task="reconstruction", vocab=(16384,)):
    return {
        "schema": SCHEMA, "task": task,
        "tokenizer": {"name": name, "family": family, "discrete": bool(vocab), "tokens_per_image": 256,
                      "vocab_sizes": list(vocab), "weights": {"tag": "hub"}},
        "dataset": {"name": "builtin", "resolution": 256, "fingerprint": fingerprint, "num_samples": 11},
        "metrics": {
            "psnr": {"value": psnr, "higher_is_better": True, "unit": "dB"},
            "ssim": {"value": ssim, "higher_is_better": True, "unit": ""},
            "bits_per_pixel": {"value": 0.0547, "higher_is_better": None, "unit": "bpp"},
            "encode_images_per_s": {"value": 10.0, "higher_is_better": True, "unit": "img/s"},
        },
    }


def _golden_results():
    vq, vae = _result("llamagen-vq16", "vq", 20.5, 0.61), _result("sd-vae-ft-mse", "kl-vae", 24.75, 0.73, vocab=())
    note = "FID on 11 images is dominated by sampling noise"
    vq["metrics"]["rfid"] = {"value": 80.25, "higher_is_better": False, "unit": "", "note": note}
    vae["metrics"]["rfid"] = {"value": 40.5, "higher_is_better": False, "unit": "", "note": note}
    vae["metrics"]["lpips"] = {"value": None, "higher_is_better": False, "unit": "", "available": False,
                               "reason": "weights missing"}
    return [
        vq,
        vae,
        _result("bicubic-f16", "baseline", 21.3, 0.5622, vocab=(256, 256, 256)),
        _result("bicubic-f8", "baseline", 23.8, 0.6317, task="detail", vocab=(256, 256, 256)),
        _result("other-set", "vq", 30.0, 0.9, fingerprint="cd" * 32),
    ]


def test_leaderboard_matches_golden_files():
    files = leaderboard.build(_golden_results())
    for name, text in files.items():
        assert text == (GOLDEN / name).read_text(), f"{name} differs from tests/golden/{name}"


def test_leaderboard_is_independent_of_input_order():
    assert leaderboard.build(_golden_results()[::-1]) == leaderboard.build(_golden_results())


def test_leaderboard_marks_rows_whose_entry_states_a_caveat():
    weak = _result("mini-x", "vq", 13.0, 0.2)
    weak["tokenizer"]["extra"] = {"caveat": "undertrained: 2000 CPU steps"}
    board = leaderboard.build([weak, _result("mini-y", "vq", 20.0, 0.5)])["reconstruction.md"]
    assert "| mini-x † |" in board and "| mini-y |" in board
    assert board.count("- † mini-x: undertrained: 2000 CPU steps") == 1


def test_leaderboard_refuses_duplicate_rows():
    with pytest.raises(leaderboard.LeaderboardError, match="appear twice"):
        leaderboard.build([_result("a", "vq", 1.0, 0.1), _result("a", "vq", 2.0, 0.2)])


def test_leaderboard_reads_result_files(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "r.json").write_text(json.dumps(_result("a", "vq", 1.0, 0.1)))
    assert len(load_results(tmp_path)) == 1
    (tmp_path / "x" / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="schema"):
        load_results(tmp_path)

"""End to end: `vtbench run` on builtin images with test-size models, result files, resume, leaderboards."""

import json
from pathlib import Path

import pytest

from vtbench.bench import leaderboard
from vtbench.bench.results import SCHEMA, load_results
from vtbench.cli import main

from .fake_ocr import fake_ocr  # noqa: F401  (fixture)

GOLDEN = Path(__file__).parent / "golden"


def _run(*args):
    return main(["run", "--quiet", *args])


@pytest.fixture
def no_metric_weights(tmp_path, monkeypatch):
    """Metrics that need downloaded networks are reported unavailable: fast runs of the run loop itself."""
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("VTBENCH_NO_FETCH", "1")


@pytest.mark.usefixtures("fake_ocr")
def test_run_writes_versioned_results_and_a_leaderboard(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = _run("--tokenizer", "llamagen-vq-tiny,kl-vae-tiny,bicubic-f8", "--resolution", "64", "--limit", "3",
              "--tasks", "reconstruction,text", "--out", str(out), "--save-images", "1")
    assert rc == 0
    printed = capsys.readouterr().out
    assert "leaderboard:" in printed and "results:" in printed

    res = json.loads((out / "builtin" / "llamagen-vq-tiny" / "reconstruction.first3.json").read_text())
    assert res["schema"] == SCHEMA and res["task"] == "reconstruction"
    assert res["dataset"]["num_samples"] == 3 and res["dataset"]["resolution"] == 64
    assert len(res["dataset"]["fingerprint"]) == 64
    assert res["tokenizer"]["weights"]["tag"] == "random" and res["tokenizer"]["vocab_sizes"] == [64]
    m = res["metrics"]
    assert {"psnr", "ssim", "codebook_usage", "token_entropy", "bits_per_pixel", "encode_images_per_s"} <= set(m)
    assert m["psnr"]["higher_is_better"] is True and m["bits_per_pixel"]["higher_is_better"] is None
    assert m["bits_per_pixel"]["value"] == pytest.approx(32 * 32 * 6 / 64 ** 2)
    rows_file = out / "builtin" / "llamagen-vq-tiny" / "reconstruction.first3.per_image.jsonl"
    rows = [json.loads(x) for x in rows_file.open()]
    assert [r["id"] for r in rows] == ["photo/astronaut", "photo/chelsea", "photo/coffee"]
    text_rows = [json.loads(x) for x in (out / "builtin" / "bicubic-f8" / "text.64px.first3.per_image.jsonl").open()]
    assert all(r["text"] for r in text_rows)
    assert (out / "builtin" / "bicubic-f8" / "images" / "reconstruction.64px.first3" / "photo__astronaut.png").is_file()

    board = (out / "leaderboards" / "reconstruction.md").read_text()
    assert "llamagen-vq-tiny (random weights)" in board and "kl-vae-tiny (random weights)" in board
    assert "| psnr ↑ |" in board

    # same command again: every result already exists, nothing is recomputed
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert _run("--tokenizer", "llamagen-vq-tiny,kl-vae-tiny,bicubic-f8", "--resolution", "64", "--limit", "3",
                "--tasks", "reconstruction,text", "--out", str(out)) == 0
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}

    # a result made with other weights (another sha256: retrained) is computed anew; the rest still resume
    stale = out / "builtin" / "llamagen-vq-tiny" / "reconstruction.first3.json"
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
    rows = [json.loads(x) for x in (folder / "detail.first2.per_image.jsonl").open()]
    for row in rows:
        stem = folder / "images" / "detail.first2" / row["id"].replace("/", "__")
        a = np.asarray(Image.open(f"{stem}.orig.png"))
        b = np.asarray(Image.open(f"{stem}.png"))
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-6)


def test_folder_with_bad_files_finishes_and_reports_them(tmp_path, capsys, no_metric_weights):
    import numpy as np
    from PIL import Image

    data = tmp_path / "imgs"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(data / f"ok{i}.png")
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (data / "readme.md").write_text("hi")
    (data / "ok0.txt").write_bytes("caf\xe9".encode("latin-1"))  # ground truth that is not UTF-8
    (data / "gone.png").symlink_to(tmp_path / "moved.png")
    out = tmp_path / "runs"
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert _run("--tokenizer", "bicubic-f8", "--dataset", str(data), "--resolution", "32", "--out", str(out)) == 0
    [result] = (out / "folder_imgs" / "bicubic-f8").glob("reconstruction*.json")
    res = json.loads(result.read_text())
    assert res["dataset"]["num_samples"] == 2 and res["dataset"]["num_skipped"] == 4
    assert {s["id"] for s in res["dataset"]["skipped"]} == {"broken.jpg", "readme.md", "ok0.txt", "gone.png"}
    assert "4 skipped" in capsys.readouterr().out


def test_unknown_tokenizer_and_missing_weights_are_clear_errors(tmp_path, capsys, monkeypatch):
    from vtbench.tokenizers import weights

    assert _run("--tokenizer", "sd-vae-ft-mes", "--out", str(tmp_path)) == 2
    assert "did you mean 'sd-vae-ft-mse'" in capsys.readouterr().err
    monkeypatch.setattr(weights, "_hub_reachable", lambda timeout=3.0: False)
    assert _run("--tokenizer", "sd-vae-ft-mse", "--out", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "diffusion_pytorch_model.safetensors" in err and "VTBENCH_WEIGHTS_DIR" in err


def test_a_resolution_a_tokenizer_cannot_take_skips_it_naming_the_sizes_it_can(tmp_path, capsys, no_metric_weights):
    out = tmp_path / "runs"
    rc = _run("--tokenizer", "mini-titok,bicubic-f16,bicubic-f8", "--resolution", "72", "--limit", "1", "--tasks",
              "reconstruction", "--out", str(out))
    assert rc == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["[mini-titok] skipped: mini-titok encodes 256x256 images only, got 72x72",
                   ("[bicubic-f16] skipped: bicubic-f16 takes heights and widths that are multiples of 16 (e.g. "
                    "256x256), got 72x72")]
    [result] = (out / "builtin" / "bicubic-f8").glob("reconstruction*.json")
    assert json.loads(result.read_text())["dataset"]["resolution"] == 72
    assert not (out / "builtin" / "mini-titok").exists() and not (out / "builtin" / "bicubic-f16").exists()


def test_missing_metric_weights_make_metrics_unavailable_not_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("VTBENCH_NO_FETCH", "0")  # restored after the test; --no-fetch sets it
    out = tmp_path / "runs"
    assert _run("--tokenizer", "bicubic-f8", "--resolution", "64", "--limit", "2", "--tasks", "reconstruction,text",
                "--out", str(out), "--no-fetch") == 0
    rec = json.loads((out / "builtin" / "bicubic-f8" / "reconstruction.64px.first2.json").read_text())["metrics"]
    for k in ("lpips", "rfid", "kid"):
        assert rec[k]["available"] is False and rec[k]["value"] is None
        assert "vtbench weights fetch" in rec[k]["reason"]
    assert rec["psnr"]["available"] and rec["psnr"]["value"] > 0
    text = json.loads((out / "builtin" / "bicubic-f8" / "text.64px.first2.json").read_text())["metrics"]
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
    f16 = _result("bicubic-f16", "baseline", 21.3, 0.5622, vocab=(256, 256, 256))
    for r, (low, high) in ((vq, (19.9, 21.1)), (vae, (24.1, 25.4)), (f16, (20.8, 21.8))):  # PSNR: a bold best
        r["metrics"]["psnr"].update(ci_low=low, ci_high=high)
    return [
        vq,
        vae,
        f16,
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
    weak["tokenizer"]["caveat"] = "undertrained: 2000 CPU steps"
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


# --- options, errors, interruption -----------------------------------------------------------------
@pytest.mark.parametrize("command, option, value, allowed", [
    ("run", "--batch-size", "-1", "must be an integer >= 1, got -1"),
    ("run", "--batch-size", "0", "must be an integer >= 1, got 0"),
    ("run", "--limit", "0", "must be an integer >= 1, got 0"),
    ("run", "--limit", "-1", "must be an integer >= 1, got -1"),
    ("run", "--resolution", "100000", "must be a multiple of 8 from 8 to 4096, got 100000"),
    ("run", "--resolution", "7", "must be a multiple of 8 from 8 to 4096, got 7"),
    ("run", "--resolution", "abc", "must be a multiple of 8 from 8 to 4096, got 'abc'"),
    ("run", "--alpha", "1.5", "must be comma-separated fractions in [0, 1), got '1.5'"),
    ("run", "--alpha", "-1", "must be comma-separated fractions in [0, 1), got '-1'"),
    ("run", "--alpha", "abc", "must be comma-separated fractions in [0, 1), got 'abc'"),
    ("run", "--alpha", "0.1,,0.2", "must be comma-separated fractions in [0, 1), got '0.1,,0.2'"),
    ("run", "--alpha", "nan", "must be comma-separated fractions in [0, 1), got 'nan'"),
    ("run", "--delta", "0", "must be an integer >= 2, got 0"),
    ("run", "--delta", "1", "must be an integer >= 2, got 1"),
    ("run", "--seed", "-1", "must be an integer >= 0, got -1"),
    ("run", "--save-images", "-1", "must be an integer >= 0, got -1"),
    ("run", "--device", "gpu", "must be auto, cpu, cuda, cuda:N, mps, ..., got 'gpu'"),
    ("run", "--device", "cuda:99", "cuda:99: "),
    ("run", "--weights", "/no/such/model.pt", "must be a checkpoint file, and there is no file /no/such/model.pt"),
    ("train", "--steps", "0", "must be an integer >= 1, got 0"),
    ("train", "--batch-size", "0", "must be an integer >= 1, got 0"),
    ("train", "--crop", "16", "must be a multiple of 8 from 32 to 1024, got 16"),
    ("train", "--crop", "65", "must be a multiple of 8 from 32 to 1024, got 65"),
    ("train", "--lr", "0", "must be a number > 0, got '0'"),
    ("train", "--lr", "inf", "must be a number > 0, got 'inf'"),
    ("train", "--seed", "-2", "must be an integer >= 0, got -2"),
    ("train", "--threads", "0", "must be an integer >= 1, got 0"),
])
def test_bad_option_values_are_refused_in_one_line_before_anything_runs(command, option, value, allowed, capsys,
                                                                        monkeypatch):
    import vtbench.tokenizers

    monkeypatch.setattr(vtbench.tokenizers, "load_tokenizer", lambda *a, **k: pytest.fail("a model was loaded"))
    extra = ["--tokenizer", "mini-vq"]
    with pytest.raises(SystemExit) as exit_:
        main([command, *extra, f"{option}={value}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"vtbench {command}: error: argument {option}: {allowed}")
    assert err[0].startswith(f"usage: vtbench {command}")


def test_good_option_values_are_parsed_to_their_types():
    from vtbench.cli import build_parser

    args = build_parser().parse_args(["run", "--alpha", "0,0.1,0.99", "--delta", "2", "--resolution", "4096",
                                      "--batch-size", "1", "--limit", "1", "--seed", "0", "--save-images", "0"])
    assert (args.alpha, args.delta, args.resolution, args.batch_size, args.limit) == ((0.0, 0.1, 0.99), 2, 4096, 1, 1)
    assert build_parser().parse_args(["run"]).alpha == (0.0, 0.05, 0.1, 0.2, 0.3)
    args = build_parser().parse_args(["train", "--tokenizer", "mini-vq", "--crop", "32", "--lr", "3e-4"])
    assert (args.crop, args.lr) == (32, 3e-4)


def test_weights_need_exactly_one_tokenizer_and_are_passed_to_the_loader(tmp_path, capsys, monkeypatch):
    import vtbench.tokenizers
    from vtbench.tokenizers import WeightsUnavailable

    ckpt = tmp_path / "mine.safetensors"
    ckpt.write_bytes(b"x")
    for tokenizers in (["--tokenizer", "mini-vq,mini-fsq"], []):
        with pytest.raises(SystemExit) as exit_:
            main(["run", *tokenizers, "--weights", str(ckpt)])
        assert exit_.value.code == 2
        assert "argument --weights: needs exactly one --tokenizer" in capsys.readouterr().err
    calls = []

    def fake_load(spec, device="cpu", **kw):
        calls.append((spec, kw))
        raise WeightsUnavailable("stopped here by the test")

    monkeypatch.setattr(vtbench.tokenizers, "load_tokenizer", fake_load)
    assert _run("--tokenizer", "mini-vq", "--weights", str(ckpt), "--out", str(tmp_path / "runs")) == 1
    assert calls == [("mini-vq", {"weights": ckpt})]


def test_every_tokenizer_name_is_checked_before_the_first_model_loads(tmp_path, capsys, monkeypatch):
    import vtbench.tokenizers

    monkeypatch.setattr(vtbench.tokenizers, "load_tokenizer", lambda *a, **k: pytest.fail("a model was loaded"))
    assert _run("--tokenizer", "mini-vq,mini-nope", "--out", str(tmp_path)) == 2
    assert capsys.readouterr().err.startswith("vtbench: error: unknown tokenizer 'mini-nope'")


def test_vtbench_errors_are_one_line_bugs_show_their_traceback(tmp_path, capsys, monkeypatch):
    assert _run("--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("vtbench: error: unknown dataset") and err.count("\n") == 1

    assert main(["--debug", "run", "--quiet", "--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "DatasetUnavailable" in err
    assert err.splitlines()[-1].startswith("vtbench: error: unknown dataset")

    import vtbench.bench.datasets

    def bug(spec):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(vtbench.bench.datasets, "get_dataset", bug)
    with pytest.raises(RuntimeError, match="an internal bug"):  # not turned into a one-line "error"
        _run("--out", str(tmp_path))


def test_ctrl_c_stops_in_one_line_keeps_finished_results_and_the_same_command_resumes(
        tmp_path, capsys, monkeypatch, no_metric_weights):
    from vtbench.bench import runner

    out = tmp_path / "runs"
    command = ("--tokenizer", "bicubic-f8", "--resolution", "32", "--limit", "1", "--tasks", "reconstruction,detail",
               "--out", str(out))
    real_evaluate = runner.evaluate

    def interrupted_in_second_task(tok, dataset, task, *args, **kw):
        if task.name == "detail":
            raise KeyboardInterrupt
        return real_evaluate(tok, dataset, task, *args, **kw)

    monkeypatch.setattr(runner, "evaluate", interrupted_in_second_task)
    assert _run(*command) == 130
    err = capsys.readouterr().err
    assert err == (f"vtbench: interrupted: the results of finished tasks are kept in {out}/; the same command "
                   "resumes after them\n")
    folder = out / "builtin" / "bicubic-f8"
    [finished] = folder.glob("reconstruction*.json")
    before = finished.stat().st_mtime_ns
    assert not list(folder.glob("detail*"))

    monkeypatch.setattr(runner, "evaluate", real_evaluate)
    assert _run(*command) == 0
    assert finished.stat().st_mtime_ns == before  # kept, not recomputed
    assert len(list(folder.glob("detail*.json"))) == 1


def test_leaderboard_writes_beside_the_results_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "r.json").write_text(json.dumps(_result("a", "vq", 1.0, 0.1)))
    assert main(["leaderboard", "--results", "runs"]) == 0
    assert (tmp_path / "runs" / "leaderboards" / "reconstruction.md").is_file()
    assert not (tmp_path / "leaderboards").exists()  # the repository's committed tables are left alone
    assert main(["leaderboard", "--results", "runs", "--out", "leaderboards"]) == 0
    assert (tmp_path / "leaderboards" / "reconstruction.md").is_file()


def test_rows_are_grouped_by_family_with_baselines_last_in_natural_order():
    from vtbench.bench.leaderboard import _row_order

    def result(name, family):
        return {"tokenizer": {"name": name, "family": family}}

    rows = [result(n, f) for n, f in (("bicubic-f16", "baseline"), ("mini-vq", "vq"), ("bicubic-f8", "baseline"),
                                      ("bicubic-f8-4bit", "baseline"), ("mini-flextok-k32", "flextok"),
                                      ("mini-flextok-k8", "flextok"))]
    assert [r["tokenizer"]["name"] for r in sorted(rows, key=_row_order)] == [
        "mini-flextok-k8", "mini-flextok-k32", "mini-vq", "bicubic-f8", "bicubic-f8-4bit", "bicubic-f16"]

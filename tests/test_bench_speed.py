"""`vtbench bench-speed`: result files, warm-up excluded, precision handling, and the speed leaderboard page."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import vtbench
from vtbench.bench import speed
from vtbench.bench.results import ResultError, load_results
from vtbench.cli import main

TINY = "llamagen-vq-tiny"  # random-weight test fixture, 64 px native; at 32 px a batch takes milliseconds
REPO = Path(__file__).resolve().parents[1]


def _bench(out, *args):
    return main(["bench-speed", "--tokenizer", TINY, "--batch-size", "2", "--resolution", "32", "--iters", "3",
                 "--warmup", "2", "--device", "cpu", "--out", str(out), *args])


def _only_result(out) -> dict:
    files = list((out / "speed").rglob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_writes_a_result_with_positive_rates(tmp_path, capsys):
    assert _bench(tmp_path) == 0
    machine = speed.machine(torch.device("cpu"))
    path = tmp_path / "speed" / machine["slug"] / f"{TINY}.b2.fp32.32px.json"
    assert path.is_file() and str(path) in capsys.readouterr().out
    r = json.loads(path.read_text())
    assert r["schema"] == speed.SCHEMA == "vtbench.speed/1"
    assert r["tokenizer"]["name"] == TINY and r["tokenizer"]["weights"]["tag"] == "random"
    assert r["config"].items() >= {"batch_size": 2, "precision": "fp32", "resolution": 32, "device": "cpu", "iters": 3,
                                    "warmup": 2}.items()
    assert r["machine"]["cpu"] and r["machine"]["cores"] >= 1 and r["machine"]["torch_threads"] >= 1
    assert r["machine"]["gpu"] is None and r["environment"]["torch"] == torch.__version__
    assert r["vtbench_version"] == vtbench.__version__ and "git_commit" in r
    for part in ("encode", "decode"):
        assert len(r[part]["seconds"]) == 3 and all(s > 0 for s in r[part]["seconds"])  # warm-up not kept
        assert r[part]["images_per_s"]["mean"] > 0 and r[part]["images_per_s"]["std"] >= 0
    mem = r["peak_memory"]
    assert mem["bytes"] > 0 and "ru_maxrss" in mem["method"] and mem["what"] == "process peak resident set size"


def test_warmup_iterations_are_run_but_not_timed(monkeypatch):
    tok = vtbench.load_tokenizer(TINY)
    calls, at_reset = {"encode": 0, "decode": 0}, []
    encode, decode, reset = tok.encode, tok.decode, speed.reset_peak_memory

    def counted(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapper

    monkeypatch.setattr(tok, "encode", counted("encode", encode))
    monkeypatch.setattr(tok, "decode", counted("decode", decode))
    monkeypatch.setattr(speed, "reset_peak_memory", lambda d: at_reset.append(dict(calls)) or reset(d))
    out = speed.measure(tok, speed.SpeedConfig(batch_size=1, resolution=16, iters=4, warmup=3), torch.device("cpu"))
    assert calls == {"encode": 7, "decode": 7}
    assert at_reset == [{"encode": 3, "decode": 3}]  # the peak-memory window opens after the warm-up
    assert len(out["encode"]["seconds"]) == len(out["decode"]["seconds"]) == 4


def test_refuses_fp16_on_cpu_before_loading(tmp_path, capsys, monkeypatch):
    def no_load(*a, **kw):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(vtbench.tokenizers, "load_tokenizer", no_load)
    assert _bench(tmp_path, "--precision", "fp16") == 2
    err = capsys.readouterr().err
    assert "fp16" in err and "CUDA" in err and "bf16" in err
    assert not (tmp_path / "speed").exists()


def test_bf16_on_cpu_runs_under_autocast(tmp_path, monkeypatch):
    seen = []  # the autocast state inside every encode
    real_load = vtbench.tokenizers.load_tokenizer

    def load(spec, device="cpu", **kw):
        tok = real_load(spec, device=device, **kw)
        inner = tok.encode
        tok.encode = lambda x: seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))) \
            or inner(x)
        return tok

    monkeypatch.setattr(vtbench.tokenizers, "load_tokenizer", load)
    assert _bench(tmp_path, "--precision", "bf16") == 0
    assert seen and set(seen) == {(True, torch.bfloat16)}
    r = _only_result(tmp_path)
    assert r["config"]["precision"] == "bf16" and r["encode"]["images_per_s"]["mean"] > 0
    assert next((tmp_path / "speed").rglob("*.json")).name == f"{TINY}.b2.bf16.32px.json"


def test_a_size_the_tokenizer_refuses_is_skipped(tmp_path, capsys):
    assert main(["bench-speed", "--tokenizer", "mini-titok", "--resolution", "64", "--iters", "1", "--device", "cpu",
                 "--out", str(tmp_path)]) == 1
    assert "256x256 images only" in capsys.readouterr().err


def test_leaderboard_renders_a_speed_table_beside_the_task_pages(tmp_path):
    assert _bench(tmp_path) == 0
    assert _bench(tmp_path, "--precision", "bf16") == 0
    task_result = REPO / "leaderboards" / "results" / "builtin" / "bicubic-f8-4bit" / "reconstruction.json"
    shutil.copy(task_result, tmp_path / "reconstruction.json")
    assert [r["task"] for r in load_results(tmp_path)] == ["reconstruction"]  # speed files are not task results
    assert main(["leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "boards")]) == 0
    page = (tmp_path / "boards" / "speed.md").read_text()
    machine = speed.machine(torch.device("cpu"))
    assert f"`{machine['slug']}`" in page and machine["cpu"] in page
    header = "| Tokenizer | Batch | Precision | Resolution | Device | encode img/s ↑ | decode img/s ↑ | peak memory |"
    assert header in page
    rows = [line for line in page.splitlines() if line.startswith(f"| {TINY} (random weights) |")]
    assert [row.split(" | ")[1:5] for row in rows] == [["2", "bf16", "32", "cpu"], ["2", "fp32", "32", "cpu"]]
    assert all("MiB RSS" in row for row in rows)
    assert (tmp_path / "boards" / "reconstruction.md").is_file()
    assert "[speed](speed.md)" in (tmp_path / "boards" / "README.md").read_text()


def test_other_foreign_json_still_fails_the_loader(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"schema": "something/1"}))
    with pytest.raises(ResultError, match="something/1"):
        load_results(tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_measures_gpu_memory(tmp_path):
    assert main(["bench-speed", "--tokenizer", TINY, "--batch-size", "2", "--precision", "fp16", "--iters", "2",
                 "--warmup", "1", "--device", "cuda", "--out", str(tmp_path)]) == 0
    r = _only_result(tmp_path)
    assert r["machine"]["gpu"] == torch.cuda.get_device_name(0) and r["config"]["precision"] == "fp16"
    mem = r["peak_memory"]
    assert mem["method"] == "torch.cuda.max_memory_allocated" and mem["bytes"] >= mem["at_start_bytes"] > 0
    assert r["encode"]["images_per_s"]["mean"] > 0 and r["decode"]["images_per_s"]["mean"] > 0

"""Sharded evaluation: `torchrun` with 2 gloo processes equals 1 process for every task, and a run killed
midway resumes from its checkpoint (benchmarks/distributed_check.py is the comparison)."""

import json

import pytest
import torch

from tests import benchmark_scripts
from vtbench.bench import runner
from vtbench.bench.datasets import get_dataset
from vtbench.bench.metrics import PSNR
from vtbench.bench.runner import RunConfig, evaluate
from vtbench.bench.tasks import get_task
from vtbench.tokenizers import load_tokenizer


@pytest.fixture(scope="module")
def check():
    return benchmark_scripts.load("distributed_check")


def test_two_gloo_processes_equal_one_for_every_task(check, tmp_path, capsys):
    # 5 images in batches of 2: the processes get 3 and 2 images, no padding
    assert check.main(["--tokenizer", "mini-vq", "--limit", "5", "--resolution", "64", "--batch-size", "2",
                       "--work", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "4 results" in printed and printed.count(": equal") == 4, printed
    res = json.loads((tmp_path / "many/builtin/mini-vq/pfid.64px.first5.json").read_text())
    assert res["environment"]["world_size"] == 2 and res["environment"]["backend"] == "gloo"
    assert res["metrics"]["pfid"]["available"] and len(res["metrics"]["pfid"]["extra"]["curve"]) == 5
    assert not list((tmp_path / "many").rglob("*.pt"))  # checkpoints are removed once the result is written


def test_the_comparison_sees_a_changed_value(check, tmp_path):
    for name in ("one", "many"):
        folder = tmp_path / name / "d"
        folder.mkdir(parents=True)
        moved = 1 if name == "one" else 1 + 1e-8  # beyond a mean's 1e-9, within FID's 1e-6
        (folder / "r.json").write_text(json.dumps({"metrics": {"psnr": {"value": 30.0 * moved},
                                                               "rfid": {"value": 5.0 * moved}}}))
        (folder / "r.per_image.jsonl").write_text("{}\n")
    diffs, n = check.compare(tmp_path / "one", tmp_path / "many")
    assert n == 1 and len(diffs) == 1 and diffs[0].startswith("d/r.json.metrics.psnr.value: 30.0 != 30.00000029")


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "no-metric-weights"))  # LPIPS and FID unavailable: fast
    monkeypatch.setenv("VTBENCH_NO_FETCH", "1")
    monkeypatch.setattr(runner, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint after every batch
    tok, dataset, task = load_tokenizer("mini-vq"), get_dataset("builtin"), get_task("reconstruction")
    cfg = RunConfig(limit=5, batch_size=2, resolution=64)
    whole, _ = evaluate(tok, dataset, task, tmp_path / "whole", cfg, progress=False)

    calls, original = [], PSNR._update

    def interrupted(self, batch):
        calls.append(len(batch.ids))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(PSNR, "_update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(tok, dataset, task, tmp_path / "cut", cfg, progress=False)
    assert [p.name for p in (tmp_path / "cut/.partial").iterdir()] == [
        "builtin__mini-vq__reconstruction.64px.first5.rank0of1.pt"]
    calls.clear()
    monkeypatch.setattr(PSNR, "_update", lambda self, batch: calls.append(len(batch.ids)) or original(self, batch))
    resumed, path = evaluate(tok, dataset, task, tmp_path / "cut", cfg, progress=False)
    assert calls == [2, 1]  # the first batch came from the checkpoint
    assert {k: v["value"] for k, v in resumed["metrics"].items() if "per_s" not in k} == \
        {k: v["value"] for k, v in whole["metrics"].items() if "per_s" not in k}
    assert resumed["dataset"] == whole["dataset"]
    rows = [(tmp_path / d / "builtin/mini-vq/reconstruction.64px.first5.per_image.jsonl").read_text()
            for d in ("whole", "cut")]
    assert rows[0] == rows[1]
    assert not list((tmp_path / "cut/.partial").iterdir())
    assert torch.distributed.is_initialized() is False

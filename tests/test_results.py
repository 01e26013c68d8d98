"""Results over time: versions, resume only when a result still stands, sample sets side by side, empty
datasets refused, committed leaderboards rebuilt byte for byte, and a numeric golden per shipped entry."""

import json
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vtbench import load_tokenizer
from vtbench.bench import leaderboard
from vtbench.bench.datasets import BuiltinDataset, FolderDataset
from vtbench.bench.metrics import PSNR, SSIM
from vtbench.bench.results import SCHEMA, load_results, read_rows, rows_path
from vtbench.bench.runner import RunConfig, RunError, evaluate
from vtbench.bench.tasks import Task
from vtbench.cli import main
from vtbench.common import sha256_file
from vtbench.tokenizers import list_tokenizers

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "leaderboards"
#: PSNR and SSIM only: no metric weights, so these tests run anywhere in a second
FAST = Task("reconstruction", "photos", lambda cfg, layout: [PSNR(), SSIM()], "PSNR and SSIM only")


def _evaluate(out, task=FAST, dataset=None, tok="bicubic-f8", **cfg):
    settings = {"resolution": 32, "limit": 2, **cfg}
    return evaluate(load_tokenizer(tok), dataset or BuiltinDataset(), task, out, RunConfig(**settings), progress=False)


def _reused(path, out, **kw) -> bool:
    """Evaluate again; True when the result at ``path`` was returned untouched, with no word of recomputing."""
    before = path.read_bytes(), path.stat().st_mtime_ns
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result, again = _evaluate(out, **kw)
    return (again == path and (path.read_bytes(), path.stat().st_mtime_ns) == before
            and result == json.loads(before[0]) and not [w for w in said if "recomputing" in str(w.message)])


def _noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8))


def _folder(root: Path, seeds: list[int]) -> FolderDataset:
    root.mkdir(exist_ok=True)
    for i, seed in enumerate(seeds):
        _noise(seed).save(root / f"img{i}.png")
    return FolderDataset(root)


def test_result_records_versions_sample_set_and_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(SSIM, "version", 4)
    result, path = _evaluate(tmp_path, task=replace(FAST, version=3))
    assert path.name == "reconstruction.32px.first2.json" and json.loads(path.read_text()) == result
    assert result["schema"] == SCHEMA == "vtbench.result/2"
    assert result["versions"] == {"task": 3, "metrics": {"psnr": PSNR.version, "ssim": 4}}
    assert result["dataset"]["limit"] == 2 and result["dataset"]["num_samples"] == 2
    assert result["per_image"] == rows_path(path).name
    assert result["per_image_sha256"] == sha256_file(rows_path(path))
    assert [r["id"] for r in read_rows(path)] == ["photo/astronaut", "photo/chelsea"]


def test_unchanged_run_reuses_its_result(tmp_path):
    path = _evaluate(tmp_path)[1]
    assert _reused(path, tmp_path)
    assert _reused(path, tmp_path, alpha=(0.5,), batch_size=1)  # FAST depends on neither


@pytest.mark.parametrize("change, said", [
    ("metric version", f'metric versions {{"psnr": {PSNR.version}}} -> {{"psnr": {PSNR.version + 1}}}'),
    ("task version", "task version 1 -> 2"),
    ("seed", "seed 0 -> 1"),
    ("setting the task depends on", "alpha [0.5] -> [0.25]"),
    ("weights", "weights sha256"),
    ("rows", "per-image rows reconstruction.32px.first2.per_image.jsonl are missing"),
    ("schema", "result schema 'vtbench.result/1', expected 'vtbench.result/2'"),
])
def test_a_result_that_no_longer_stands_is_recomputed_saying_why(tmp_path, monkeypatch, change, said):
    task = replace(FAST, settings=("seed", "alpha"))
    first, path = _evaluate(tmp_path, task=task, alpha=(0.5,))
    kw = {"task": task, "alpha": (0.5,)}
    if change == "metric version":
        monkeypatch.setattr(PSNR, "version", PSNR.version + 1)
    elif change == "task version":
        kw["task"] = replace(task, version=2)
    elif change == "seed":
        kw["seed"] = 1
    elif change == "setting the task depends on":
        kw["alpha"] = (0.25,)
    elif change == "rows":
        rows = rows_path(path)
        rows.write_text(rows.read_text().splitlines()[0] + "\n")  # as if cut short
    else:
        stored = json.loads(path.read_text())
        if change == "weights":
            stored["tokenizer"]["weights"]["sha256"] = "0" * 64
        else:
            stored["schema"] = "vtbench.result/1"
        path.write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match=re.escape(said)):
        again, _ = _evaluate(tmp_path, **kw)
    assert again["created"] is not None and json.loads(path.read_text()) == again
    assert len(read_rows(path)) == 2 and again["per_image_sha256"] == sha256_file(rows_path(path))
    assert _reused(path, tmp_path, **kw)


def test_a_changed_folder_is_noticed_on_resume(tmp_path):
    data = tmp_path / "imgs"
    first, path = _evaluate(tmp_path / "runs", dataset=_folder(data, [10, 200]), limit=None)
    _noise(90).save(data / "img1.png")  # one image replaced
    with pytest.warns(UserWarning, match="dataset fingerprint"):
        replaced, _ = _evaluate(tmp_path / "runs", dataset=FolderDataset(data), limit=None)
    assert replaced["dataset"]["fingerprint"] != first["dataset"]["fingerprint"]
    assert replaced["metrics"]["psnr"]["value"] != first["metrics"]["psnr"]["value"]
    _folder(data, [10, 90, 160])  # one image added
    with pytest.warns(UserWarning, match="dataset fingerprint"):
        added, _ = _evaluate(tmp_path / "runs", dataset=FolderDataset(data), limit=None)
    assert added["dataset"]["num_samples"] == 3


def test_a_limited_run_writes_beside_the_full_one_and_gets_its_own_heading(tmp_path):
    full, full_path = _evaluate(tmp_path, limit=None)
    part, part_path = _evaluate(tmp_path, limit=4)
    every, every_path = _evaluate(tmp_path, limit=100)  # more than there are: the whole set again
    assert (full_path.name, part_path.name, every_path) == ("reconstruction.32px.json",
                                                            "reconstruction.32px.first4.json", full_path)
    assert json.loads(full_path.read_text())["dataset"]["num_samples"] == 11 and every["dataset"]["limit"] is None
    assert json.loads(part_path.read_text())["dataset"]["num_samples"] == 4
    leaderboard.write(tmp_path, tmp_path / "boards")
    page = (tmp_path / "boards" / "reconstruction.md").read_text()
    assert re.findall(r"^## .*", page, re.M) == ["## builtin at 32 px", "## builtin at 32 px, first 4 images"]


def test_sets_told_apart_only_by_their_images_name_the_fingerprint(tmp_path):
    data = tmp_path / "imgs"
    a, _ = _evaluate(tmp_path / "a", dataset=_folder(data, [10, 200]), limit=None)
    _folder(data, [30, 60])
    b, _ = _evaluate(tmp_path / "b", dataset=FolderDataset(data), limit=None)
    page = leaderboard.build([a, b])["reconstruction.md"]
    headings = re.findall(r"^## .*", page, re.M)
    assert sorted(headings) == sorted(f"## folder:imgs at 32 px, images `{r['dataset']['fingerprint'][:8]}`"
                                      for r in (a, b))


def test_an_empty_or_all_bad_folder_fails_and_keeps_earlier_results(tmp_path, capsys):
    data, out = tmp_path / "imgs", tmp_path / "runs"
    _, path = _evaluate(out, dataset=_folder(data, [10, 200]), limit=None)
    kept = {p: p.read_bytes() for p in path.parent.iterdir()}
    for p in data.iterdir():
        p.write_bytes(b"not an image")
    with pytest.raises(RunError, match=r"no image of dataset folder:imgs could be evaluated .*2 skipped: img0.png"), \
            pytest.warns(UserWarning) as said:
        _evaluate(out, dataset=FolderDataset(data), limit=None)
    assert [str(w.message).split(":")[0] for w in said] == [f"recomputing {path}", "skipping img0.png",
                                                            "skipping img1.png"]
    for p in list(data.iterdir()):
        p.unlink()
    with pytest.raises(RunError, match="dataset folder:imgs has no images for task reconstruction"):
        _evaluate(out, dataset=FolderDataset(data), limit=None)
    assert main(["run", "--quiet", "--tokenizer", "bicubic-f8", "--dataset", str(data), "--out", str(out)]) != 0
    assert "has no images" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in path.parent.iterdir()} == kept


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("limit", 0), ("limit", -1), ("alpha", (1.5,)),
                                          ("alpha", ()), ("delta", 1), ("resolution", -8), ("save_images", -1)])
def test_run_config_refuses_values_out_of_range(field, value):
    with pytest.raises(RunError, match=f"{field}="):
        RunConfig(**{field: value})


# --- the committed leaderboards ----------------------------------------------------------------------
def test_committed_leaderboards_are_rebuilt_byte_for_byte(tmp_path):
    """``leaderboards/*`` is exactly what `leaderboard.write` makes of ``leaderboards/results``.

    A pFID plot is compared byte for byte when the installed matplotlib is the one that drew it (the PNG
    names it); another matplotlib version may rasterise text differently, so then only its size is.
    """
    made = {p.name: p for p in leaderboard.write(COMMITTED / "results", tmp_path)}
    committed = {p.name: p for p in COMMITTED.iterdir() if p.suffix in (".md", ".png")}
    assert sorted(made) == sorted(committed), "stale or missing files in leaderboards/"
    import matplotlib

    drawn_here = f"matplotlib {matplotlib.__version__}"
    for name, path in made.items():
        if name.endswith(".md") or Image.open(committed[name]).text.get("Software") == drawn_here:
            assert path.read_bytes() == committed[name].read_bytes(), f"leaderboards/{name}: not what its results make"
        else:
            assert Image.open(path).size == Image.open(committed[name]).size


SHIPPED = [n for n in list_tokenizers(include_test=False, available_only=True) if n.startswith(("mini-", "bicubic-"))]


@pytest.mark.parametrize("name", SHIPPED)
def test_two_images_reproduce_the_committed_rows(tmp_path, name):
    """A ``--limit 2`` run at the native resolution gives the committed per-image PSNR and SSIM."""
    committed = COMMITTED / "results" / "builtin" / name / "reconstruction.json"
    assert committed.is_file(), f"{name} ships but has no committed reconstruction result"
    expected = {r["id"]: r for r in read_rows(committed)}
    result, path = evaluate(load_tokenizer(name), BuiltinDataset(), FAST, tmp_path, RunConfig(limit=2), progress=False)
    rows = read_rows(path)
    assert [r["id"] for r in rows] == ["photo/astronaut", "photo/chelsea"]
    for row in rows:
        assert row["psnr"] == pytest.approx(expected[row["id"]]["psnr"], abs=1e-4)
        assert row["ssim"] == pytest.approx(expected[row["id"]]["ssim"], abs=1e-5)


def test_load_results_names_the_file_it_cannot_use(tmp_path):
    _evaluate(tmp_path)
    assert [r["_path"] for r in load_results(tmp_path)] == ["builtin/bicubic-f8/reconstruction.32px.first2.json"]
    (tmp_path / "builtin" / "old.json").write_text(json.dumps({"schema": "vtbench.result/1"}))
    with pytest.raises(ValueError, match="old.json: result schema 'vtbench.result/1'.*recomputes it"):
        load_results(tmp_path)


def test_precision_is_recorded_and_a_change_recomputes(tmp_path, monkeypatch):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "no-metric-weights"))
    monkeypatch.setenv("VTBENCH_NO_FETCH", "1")
    import torch

    tok, ds = load_tokenizer("mini-vq"), BuiltinDataset()
    seen = []
    encode = tok._encode
    monkeypatch.setattr(tok, "_encode", lambda x: seen.append(torch.get_autocast_dtype("cpu")
                                                              if torch.is_autocast_enabled("cpu") else None)
                        or encode(x))
    fp32, _ = evaluate(tok, ds, FAST, tmp_path, RunConfig(limit=2, resolution=64), progress=False)
    with pytest.warns(UserWarning, match="precision"):
        bf16, _ = evaluate(tok, ds, FAST, tmp_path, RunConfig(limit=2, resolution=64, precision="bf16"),
                           progress=False)
    assert seen == [None, torch.bfloat16]
    assert (fp32["config"]["precision"], bf16["config"]["precision"]) == ("fp32", "bf16")
    assert bf16["metrics"]["psnr"]["value"] == pytest.approx(fp32["metrics"]["psnr"]["value"], abs=0.5)
    with warnings.catch_warnings(), pytest.raises(RunError, match="fp16 needs a CUDA device"):
        warnings.simplefilter("error")  # refused before anything is recomputed
        evaluate(tok, ds, FAST, tmp_path, RunConfig(limit=2, resolution=64, precision="fp16"), progress=False)


def test_a_folder_fingerprint_is_cached_by_file_list_sizes_and_mtimes(tmp_path, monkeypatch):
    import os

    from vtbench.bench import runner

    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    tok, ds = load_tokenizer("bicubic-f8"), FolderDataset(folder)
    cfg = RunConfig(resolution=32)
    first, _ = evaluate(tok, ds, FAST, tmp_path / "runs", cfg, progress=False)
    hashed = []
    real = runner.batches
    monkeypatch.setattr(runner, "batches", lambda *a, **k: hashed.append(1) or real(*a, **k))
    assert evaluate(tok, FolderDataset(folder), FAST, tmp_path / "runs", cfg, progress=False)[0] == first
    assert hashed == []  # the fingerprint came from the cache, no image was decoded
    os.utime(folder / "1.png", ns=(1, 1))  # touched: the cache no longer applies, the pixels are hashed again
    assert evaluate(tok, FolderDataset(folder), FAST, tmp_path / "runs", cfg, progress=False)[0] == first
    assert hashed == [1]
    verified = replace(cfg, verify=True)
    assert evaluate(tok, FolderDataset(folder), FAST, tmp_path / "runs", verified, progress=False)[0] == first
    assert hashed == [1, 1]


def test_rows_of_a_class_folder_tree_name_each_image_class(tmp_path, monkeypatch):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for cls in ("n01440764", "n01443537"):
        (tmp_path / "val" / cls).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "val" / cls / f"{i}.JPEG")
    _, path = evaluate(load_tokenizer("bicubic-f8"), FolderDataset(tmp_path / "val"), FAST, tmp_path / "runs",
                       RunConfig(resolution=32, batch_size=3), progress=False)
    assert [(r["id"], r["class"]) for r in read_rows(path)] == [
        ("n01440764/0.JPEG", "n01440764"), ("n01440764/1.JPEG", "n01440764"),
        ("n01443537/0.JPEG", "n01443537"), ("n01443537/1.JPEG", "n01443537")]

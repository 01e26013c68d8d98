"""`vtbench.results`: result files as a DataFrame (one row per metric value, one per image), and
`vtbench leaderboard --format csv|json`."""

import json
import math
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import vtbench.results
from vtbench._extras import MissingExtra
from vtbench.bench import leaderboard
from vtbench.bench.results import METRIC_COLUMNS, interval, load_results, metric_records, read_rows
from vtbench.bench.tasks import METRICS
from vtbench.cli import main

pd = pytest.importorskip("pandas")

COMMITTED = Path(__file__).resolve().parents[1] / "leaderboards" / "results"
REQUIRED = ("tokenizer", "registry_name", "weights_tag", "weights_sha256", "random_weights", "dataset", "subset",
            "resolution", "limit", "task", "metric", "value", "unit", "higher_is_better", "count", "min_count",
            "available", "reason", "note", "interval_low", "interval_high", "task_version", "metric_version",
            "vtbench_version", "git_commit", "created", "precision", "world_size", "path")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two baselines x two tasks at 32 px on 2 images, and one on 1 image; no metric weights, so LPIPS, rFID
    and KID are unavailable and it takes seconds."""
    root = tmp_path_factory.mktemp("frame")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTBENCH_CACHE", str(root / "empty-cache"))
        mp.setenv("VTBENCH_NO_FETCH", "1")  # restored on exit; --no-fetch sets it
        common = ["run", "--quiet", "--no-fetch", "--resolution", "32", "--out", str(root / "runs")]
        assert main([*common, "--tokenizer", "bicubic-f16,bicubic-f8", "--limit", "2",
                     "--tasks", "detail,reconstruction"]) == 0
        assert main([*common, "--tokenizer", "bicubic-f8", "--limit", "1", "--tasks", "detail"]) == 0
    return root / "runs"


def _missing(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def _same(got, expected) -> bool:
    """A frame cell holds the JSON value (None as NaN/NA)."""
    return _missing(got) if expected is None else got == expected


def test_every_metric_of_every_result_is_one_row_with_its_values(runs):
    results = load_results(runs)
    frame = vtbench.results.load(runs)
    assert set(REQUIRED) <= set(frame.columns) and list(frame.columns) == list(METRIC_COLUMNS)
    assert len(frame) == sum(len(r["metrics"]) for r in results) == len(frame.drop_duplicates(["path", "metric"]))
    rows = {(row["path"], row["metric"]): row for row in frame.to_dict("records")}
    def version(r, value):  # of the metric in this result that computes ``value``
        return next(v for o, v in r["versions"]["metrics"].items() if value in (METRICS[o].outputs or {o: None}))

    unavailable = set()
    for r in results:
        tok, d = r["tokenizer"], r["dataset"]
        for name, m in r["metrics"].items():
            row = rows[(r["_path"], name)]
            expected = {"tokenizer": tok["name"], "registry_name": tok["registry_name"],
                        "weights_tag": tok["weights"]["tag"], "weights_sha256": tok["weights"]["sha256"],
                        "random_weights": False, "dataset": d["name"], "subset": d["subset"],
                        "resolution": d["resolution"], "limit": d["limit"], "task": r["task"],
                        **{k: m[k] for k in ("value", "unit", "higher_is_better", "count", "available", "reason",
                                             "note", "implementation")},
                        "interval_low": m.get("ci_low"), "interval_high": m.get("ci_high"),
                        "min_count": m.get("min_count", 0),
                        "task_version": r["versions"]["task"],
                        "metric_version": version(r, name),
                        **{k: r[k] for k in ("vtbench_version", "git_commit", "created")},
                        "precision": "fp32", "world_size": 1}
            assert [k for k, v in expected.items() if not _same(row[k], v)] == [], (r["_path"], name)
            if not m["available"]:
                assert _missing(row["value"]) and row["reason"]
                unavailable.add(name)
    assert {"lpips", "rfid", "kid"} <= unavailable
    assert sorted(frame["limit"].dropna().unique()) == [1, 2]


def test_order_is_fixed_whatever_order_the_results_come_in(runs):
    results = load_results(runs)
    shuffled = results[:]
    random.Random(0).shuffle(shuffled)
    assert metric_records(shuffled) == metric_records(results)
    frame = vtbench.results.load(runs)
    key = ["dataset", "subset", "task", "resolution", "limit", "tokenizer", "path", "metric"]
    assert frame.sort_values(key, na_position="first", kind="stable").index.tolist() == list(range(len(frame)))
    pd.testing.assert_frame_equal(frame, vtbench.results.load(runs))


def test_intervals_come_from_the_ci_fields(runs, tmp_path):
    assert interval({"value": 1.0}) == (None, None)
    assert interval({"ci_low": 1.0, "ci_high": 2}) == (1.0, 2.0)
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    path = copy / "builtin" / "bicubic-f8" / "detail.32px.first2.json"
    data = json.loads(path.read_text())
    data["metrics"]["psnr"].update(ci_low=7.0, ci_high=8.0)
    path.write_text(json.dumps(data))
    frame = vtbench.results.load(copy)
    mine = frame[frame.path == "builtin/bicubic-f8/detail.32px.first2.json"].set_index("metric")
    assert (mine.loc["psnr", "interval_low"], mine.loc["psnr", "interval_high"]) == (7.0, 8.0)
    assert mine.loc["ssim", "interval_low"] < mine.loc["ssim", "value"] < mine.loc["ssim", "interval_high"]
    assert mine.drop(["psnr", "ssim", "gmsd", "hf_energy_ratio"])["interval_low"].isna().all()
    assert frame["interval_low"].dtype == "float64"


def test_csv_and_json_round_trip(runs, tmp_path, capsys):
    frame = vtbench.results.load(runs)
    assert main(["leaderboard", "--results", str(runs), "--out", str(tmp_path), "--format", "csv"]) == 0
    assert main(["leaderboard", "--results", str(runs), "--out", str(tmp_path), "--format", "json"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "results.csv"), str(tmp_path / "results.json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.json"]  # no markdown

    text = [c for c in frame.columns if c not in vtbench.results.DTYPES and c != "random_weights"]
    back = pd.read_csv(tmp_path / "results.csv", dtype={c: str for c in text}, keep_default_na=False,
                       na_values={c: [""] for c in vtbench.results.DTYPES})
    pd.testing.assert_frame_equal(back.astype(vtbench.results.DTYPES), frame.fillna({c: "" for c in text}),
                                  check_dtype=False)
    assert np.array_equal(back["value"], frame["value"], equal_nan=True)  # to the last bit, not approximately

    records = json.loads((tmp_path / "results.json").read_text())
    assert records == metric_records(load_results(runs))  # NaN/NA are null, ints stay ints, floats exact
    assert [list(r) for r in records] == [list(METRIC_COLUMNS)] * len(frame)
    assert any(r["value"] is None and r["reason"] for r in records)


def test_md_format_is_the_leaderboard_unchanged(runs, tmp_path, capsys):
    expected = leaderboard.write(runs, tmp_path / "write")
    assert main(["leaderboard", "--results", str(runs), "--out", str(tmp_path / "md"), "--format", "md"]) == 0
    assert main(["leaderboard", "--results", str(runs), "--out", str(tmp_path / "default")]) == 0
    for folder in ("md", "default"):
        made = sorted((tmp_path / folder).iterdir())
        assert [p.name for p in made] == sorted(p.name for p in expected)
        assert all(p.read_bytes() == (tmp_path / "write" / p.name).read_bytes() for p in made)


def test_per_image_rows(runs):
    rows = vtbench.results.load_rows(runs)
    results = sorted(load_results(runs), key=lambda r: (r["task"], r["dataset"]["limit"], r["tokenizer"]["name"]))
    assert rows["path"].drop_duplicates().tolist() == [r["_path"] for r in results]
    for r in results:
        mine = rows[rows.path == r["_path"]]
        expected = read_rows(runs / r["_path"])
        assert mine["id"].tolist() == [e["id"] for e in expected]
        assert (mine[["tokenizer", "task"]].drop_duplicates().values.tolist()
                == [[r["tokenizer"]["name"], r["task"]]])
        assert mine["psnr"].tolist() == [e["psnr"] for e in expected]


def test_missing_pandas_names_the_extra(runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingExtra, match=r"vtbench\[bench\]"):
        vtbench.results.load(runs)
    with pytest.raises(MissingExtra, match=r"vtbench\[bench\]"):
        vtbench.results.load_rows(runs)


def test_committed_results_give_one_row_per_result_and_metric():
    results = load_results(COMMITTED)
    frame = vtbench.results.load(COMMITTED)
    assert sorted(zip(frame["path"], frame["metric"])) == sorted((r["_path"], k) for r in results for k in r["metrics"])
    assert frame.groupby(["path", "metric"]).size().max() == 1
    assert frame["metric_version"].notna().all() and frame["task_version"].notna().all()
    assert json.loads(vtbench.results.to_json(frame)) == metric_records(results)

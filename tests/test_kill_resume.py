"""kill -9 during a multi-tokenizer run then resume, and two writers into one --out, give the results of an
uninterrupted run (the check itself is benchmarks/kill_resume_check.py, run here at a small size)."""


import pytest

from tests import benchmark_scripts


@pytest.fixture(scope="module")
def check():
    return benchmark_scripts.load("kill_resume_check")


def test_killed_and_concurrent_runs_equal_an_uninterrupted_one(check, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "no-metric-weights"))  # LPIPS and FID unavailable: fast
    assert check.main(["--limit", "2", "--resolution", "64", "--no-fetch", "--work", str(tmp_path / "work")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("killed at") == 3 and printed.count(": equal") == 4, printed
    assert "uninterrupted: 6 results, 12 per-image rows" in printed


def test_the_comparison_sees_repeated_cut_and_changed_rows(check, tmp_path, monkeypatch):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "no-metric-weights"))
    from vtbench.cli import main

    assert main(["run", "--quiet", "--no-fetch", "--tokenizer", "bicubic-f8", "--tasks", "detail", "--limit", "3",
                 "--resolution", "32", "--out", str(tmp_path)]) == 0
    reference = check.snapshot(tmp_path)
    assert check.compare(reference, check.snapshot(tmp_path)) == []
    (rows_file,) = tmp_path.rglob("*.per_image.jsonl")
    lines = rows_file.read_text().splitlines(keepends=True)
    for edited, said in ((lines + lines[:1], "repeated"), (lines[:2], "rows differ (2 rows, expected 3)"),
                         ([lines[0].replace('"psnr": ', '"psnr": 1'), *lines[1:]], "rows differ (3 rows")):
        rows_file.write_text("".join(edited))
        assert any(said in d for d in check.compare(reference, check.snapshot(tmp_path)))
    (result,) = tmp_path.rglob("detail.*.json")
    result.write_text(result.read_text()[:100])
    with pytest.raises(ValueError, match="not readable JSON"):
        check.snapshot(tmp_path)

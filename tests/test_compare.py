"""`vtbench compare`: paired per-image statistics of two tokenizers from result files."""

from pathlib import Path

import numpy as np
import pytest

from vtbench.bench.compare import CompareError, compare_page, paired
from vtbench.bench.results import SCHEMA, result_path, write_result
from vtbench.cli import main

REPO = Path(__file__).resolve().parents[1]
DIRECTIONS = {"psnr": (True, "dB"), "lpips": (False, "")}


def _rows(psnr, lpips=None):
    lpips = np.full(len(psnr), 0.3) if lpips is None else lpips
    return [{"id": f"img{i:02d}", "psnr": float(p), "lpips": float(q)} for i, (p, q) in enumerate(zip(psnr, lpips))]


def _write(folder, name, rows, task="reconstruction", fingerprint="ab" * 32, key=""):
    metrics = {k: {"value": float(np.mean([r[k] for r in rows])), "higher_is_better": hib, "unit": unit}
               for k, (hib, unit) in DIRECTIONS.items()}
    metrics["bits_per_pixel"] = {"value": 0.19, "higher_is_better": None, "unit": "bpp"}
    result = {"schema": SCHEMA, "task": task, "tokenizer": {"name": name, "family": "vq"},
              "dataset": {"name": "builtin", "resolution": 256, "limit": None, "fingerprint": fingerprint,
                          "num_samples": len(rows)},
              "metrics": metrics}
    write_result(result_path(folder, "builtin", name, task, key), result, rows)


def _a_better_by_one_db(n=30):
    rng = np.random.default_rng(0)
    b = 20 + rng.normal(0, 2, n)
    return _rows(b + 1 + rng.normal(0, 0.3, n)), _rows(b)


def test_a_clearly_better_gets_an_interval_above_zero():
    a, b = _a_better_by_one_db()
    s = paired(a, b, "psnr", True)
    assert s.n == 30 and s.only_a == s.only_b == ()
    assert s.mean_a - s.mean_b == pytest.approx(s.diff)
    assert 0.8 < s.interval[0] < s.diff < s.interval[1] < 1.2
    assert s.wins == 30 and s.ties == s.losses == 0 and s.p_value < 1e-6
    assert s.verdict == "A better"
    assert paired(b, a, "psnr", True).verdict == "B better"


def test_symmetric_differences_are_no_significant_difference():
    rng = np.random.default_rng(1)
    b = 20 + rng.normal(0, 2, 20)
    d = np.abs(rng.normal(0, 1, 10))
    s = paired(_rows(b + np.concatenate([d, -d])), _rows(b), "psnr", True)
    assert s.diff == pytest.approx(0, abs=1e-9)
    assert s.interval[0] < 0 < s.interval[1]
    assert s.wins == s.losses == 10 and s.p_value == 1.0
    assert s.verdict == "no significant difference"


def test_lower_is_better_metrics_count_a_lower_value_as_a_win():
    psnr = np.full(12, 20.0)
    a, b = _rows(psnr, lpips=np.linspace(0.1, 0.2, 12)), _rows(psnr, lpips=np.linspace(0.3, 0.5, 12))
    s = paired(a, b, "lpips", False)
    assert s.diff < 0 and s.interval[1] < 0
    assert (s.wins, s.ties, s.losses) == (12, 0, 0) and s.verdict == "A better"
    tie = paired(a, b, "psnr", True)
    assert (tie.wins, tie.ties, tie.losses, tie.p_value, tie.verdict) == (0, 12, 0, 1.0, "no significant difference")


def test_images_missing_on_one_side_are_counted_and_reported(tmp_path):
    a, b = _a_better_by_one_db(12)
    a, b = a[:10], b[2:]
    s = paired(a, b, "psnr", True)
    assert (s.n, s.only_a, s.only_b) == (8, ("img00", "img01"), ("img10", "img11"))
    _write(tmp_path, "tok-a", a)
    _write(tmp_path, "tok-b", b)
    page = compare_page(tmp_path, "tok-a", "tok-b")
    assert "- not paired for psnr, lpips: 2 image(s) only in A (`img00`, `img01`); " \
           "2 image(s) only in B (`img10`, `img11`)" in page


def test_page_has_a_table_per_shared_set_and_the_largest_differences(tmp_path):
    a, b = _a_better_by_one_db()
    _write(tmp_path, "tok-a", a)
    _write(tmp_path, "tok-b", b)
    page = compare_page(tmp_path, "tok-a", "tok-b")
    assert page.startswith("# tok-a vs tok-b\n\nA = `tok-a`, B = `tok-b`")
    assert "## reconstruction: builtin at 256 px" in page
    assert "| psnr ↑ | 30 |" in page and "| lpips ↓ | 30 |" in page and "bits_per_pixel" not in page
    assert page.count("| A better |") == 1 and "| no significant difference |" in page  # lpips is equal
    top = max(zip(a, b), key=lambda p: abs(p[0]["psnr"] - p[1]["psnr"]))[0]["id"]
    largest = page.split("Largest per-image differences in psnr (top 10 by |A − B|):")[1]
    rows = [line for line in largest.splitlines() if line.startswith("| img")]
    assert len(rows) == 10 and rows[0].startswith(f"| {top} |")


def test_results_on_different_images_are_never_paired(tmp_path):
    a, b = _a_better_by_one_db()
    _write(tmp_path, "tok-a", a, fingerprint="ab" * 32)
    _write(tmp_path, "tok-b", b, fingerprint="cd" * 32)
    page = compare_page(tmp_path, "tok-a", "tok-b")
    assert "| psnr" not in page and "## Not paired" in page
    assert f"- reconstruction on builtin at 256 px: A on images `{'ab' * 8}`, B on images `{'cd' * 8}`" in page
    _write(tmp_path, "tok-a", a, task="detail")  # a set they share: compared; the other still is not
    _write(tmp_path, "tok-b", b, task="detail")
    page = compare_page(tmp_path, "tok-a", "tok-b")
    assert "## detail: builtin at 256 px" in page and "## reconstruction" not in page and "## Not paired" in page


def test_unknown_tokenizer_or_no_shared_set_is_a_clear_error(tmp_path, capsys):
    a, b = _a_better_by_one_db(5)
    _write(tmp_path, "tok-a", a)
    _write(tmp_path, "tok-b", b, task="detail")
    with pytest.raises(CompareError, match="no results for 'tok-c' .* tokenizers there: tok-a, tok-b"):
        compare_page(tmp_path, "tok-a", "tok-c")
    with pytest.raises(CompareError, match="tok-a and tok-b share no sample set: tok-a has reconstruction on "
                                           "builtin at 256 px; tok-b has detail on builtin at 256 px"):
        compare_page(tmp_path, "tok-a", "tok-b")
    assert main(["compare", "tok-a", "nope", "--results", str(tmp_path)]) == 2
    assert "vtbench: error: no results for 'nope'" in capsys.readouterr().err


def test_cli_prints_the_page_or_writes_it(tmp_path, capsys):
    a, b = _a_better_by_one_db()
    _write(tmp_path / "results", "tok-a", a)
    _write(tmp_path / "results", "tok-b", b)
    args = ["compare", "tok-a", "tok-b", "--results", str(tmp_path / "results")]
    assert main(args) == 0
    page = capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "out" / "a_vs_b.md")]) == 0
    assert (tmp_path / "out" / "a_vs_b.md").read_text() == page
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "a_vs_b.md")


def test_the_committed_results_compare():
    page = compare_page(REPO / "leaderboards" / "results", "mini-vq", "bicubic-f8-4bit")
    assert "## reconstruction: builtin at 256 px" in page and "| lpips ↓ | 11 |" in page

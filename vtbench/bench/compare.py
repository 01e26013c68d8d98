"""Two tokenizers image by image, from the result files (`vtbench compare A B`); no model is run.

Within each sample set both were evaluated on (task, dataset, resolution, ``--limit``, dataset fingerprint:
results on different images are never paired), per metric: images are matched by ``id``, the mean of the
per-image differences A - B gets a 95% bootstrap interval (`intervals.bootstrap_mean`), and the
images A wins and loses get a two-sided sign test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from ..errors import VtbenchError
from .intervals import RESAMPLES, SEED, bootstrap_mean
from .leaderboard import _fmt, _headings, _sample_sets, metric_order
from .results import ResultError, load_results, read_rows, rows_path

#: rows of the per-image table, and image ids listed at most in a note
TOP = 10
VERDICTS = ("A better", "B better", "no significant difference")


class CompareError(VtbenchError, ValueError):
    """Two tokenizers the results cannot compare: a name without results, or no sample set in common."""


@dataclass(frozen=True)
class Paired:
    """One metric of A against B over the images that have a value on both sides (`paired`)."""

    metric: str
    higher_is_better: bool
    n: int
    mean_a: float | None
    mean_b: float | None
    diff: float | None  # mean of the per-image differences A - B
    interval: tuple[float, float] | None  # its 95% bootstrap interval; None below 2 pairs
    wins: int  # images where A is better (by the metric's direction)
    ties: int
    losses: int
    p_value: float  # two-sided sign test of wins against losses; 1.0 when there are none
    verdict: str  # one of VERDICTS
    pairs: tuple[tuple[str, float, float], ...]  # (id, A's value, B's value), in A's row order
    only_a: tuple[str, ...]  # ids with a value in A's rows only: not paired
    only_b: tuple[str, ...]


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _values(rows: list[dict], metric: str) -> dict[str, float]:
    return {r["id"]: float(r[metric]) for r in rows if _is_number(r.get(metric))}


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _verdict(interval: tuple[float, float] | None, higher_is_better: bool) -> str:
    if interval is None or interval[0] <= 0 <= interval[1]:
        return VERDICTS[2]
    return VERDICTS[0] if (interval[0] > 0) == higher_is_better else VERDICTS[1]


def paired(a_rows: list[dict], b_rows: list[dict], metric: str, higher_is_better: bool) -> Paired:
    """``metric`` of A's per-image rows against B's, matched by ``id`` (rows without a number for it on one side
    are counted in ``only_a``/``only_b``). The verdict names the better side when the 95% bootstrap interval of
    the mean difference excludes 0, and is "no significant difference" otherwise (or below 2 pairs); the
    sign-test p-value is reported beside it, not used for it."""
    a, b = _values(a_rows, metric), _values(b_rows, metric)
    pairs = tuple((i, a[i], b[i]) for i in a if i in b)
    diffs = np.array([x - y for _, x, y in pairs], dtype=np.float64)
    better = diffs if higher_is_better else -diffs
    wins, losses = int((better > 0).sum()), int((better < 0).sum())
    interval = bootstrap_mean(diffs)
    return Paired(metric, higher_is_better, len(pairs), _mean([p[1] for p in pairs]), _mean([p[2] for p in pairs]),
                  _mean(diffs), interval, wins, len(pairs) - wins - losses, losses,
                  float(binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0,
                  _verdict(interval, higher_is_better), pairs,
                  tuple(i for i in a if i not in b), tuple(i for i in b if i not in a))


# --- the page ------------------------------------------------------------------------------------------
def _explanation(a: str, b: str) -> str:
    return (f"A = `{a}`, B = `{b}`, matched image by image (by id) within each sample set; results on different "
            f"images are never paired. Δ: the mean of A − B per image, with its 95% paired bootstrap interval "
            f"({RESAMPLES} resamples, seed {SEED}); the verdict names a side only when that interval excludes 0. "
            "W/T/L: images where A is better/equal/worse; p: two-sided sign test of wins against losses "
            "(ties dropped). ↑ higher is better, ↓ lower is better.")


def _rows(results_dir: Path, r: dict) -> list[dict]:
    try:
        return read_rows(results_dir / r["_path"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{rows_path(results_dir / r['_path'])}: per-image rows not readable ({e})") from None


def _directions(ra: dict, rb: dict, rows_a: list[dict], rows_b: list[dict]) -> dict[str, bool]:
    """Metric -> higher is better, for the numeric per-image metrics of both rows files with a known direction."""
    numeric = [{k for r in rows for k, v in r.items() if k != "id" and _is_number(v)} for rows in (rows_a, rows_b)]
    out = {}
    for k in sorted(numeric[0] & numeric[1] & ra["metrics"].keys() & rb["metrics"].keys(), key=metric_order):
        seen = {ra["metrics"][k].get("higher_is_better"), rb["metrics"][k].get("higher_is_better")}
        if len(seen) > 1:
            raise CompareError(f"metric {k!r} has conflicting directions in {ra['_path']} and {rb['_path']}")
        if None not in seen:
            out[k] = seen.pop()
    return out


def _num(value: float | None, unit: str, signed: bool = False) -> str:
    text = _fmt(value, unit)
    return "+" + text if signed and value is not None and value >= 0 else text


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def _metric_table(stats: list[Paired], units: dict[str, str]) -> list[str]:
    lines = ["| metric | n | A | B | Δ (A − B) | 95% interval of Δ | W/T/L | p | verdict |",
             "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for s in stats:
        u = units[s.metric]
        interval = "n/a" if s.interval is None else f"[{_num(s.interval[0], u, True)}, {_num(s.interval[1], u, True)}]"
        cells = [f"{s.metric} {'↑' if s.higher_is_better else '↓'}", str(s.n), _num(s.mean_a, u), _num(s.mean_b, u),
                 _num(s.diff, u, True), interval, f"{s.wins}/{s.ties}/{s.losses}", _p(s.p_value), s.verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ids(ids: tuple[str, ...]) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:TOP])
    return shown + (f" and {len(ids) - TOP} more" if len(ids) > TOP else "")


def _unpaired(stats: list[Paired]) -> list[str]:
    """One note per distinct set of images left unpaired, naming the metrics it concerns."""
    groups: dict[tuple, list[str]] = {}
    for s in stats:
        if s.only_a or s.only_b:
            groups.setdefault((s.only_a, s.only_b), []).append(s.metric)
    notes = []
    for (only_a, only_b), metrics in groups.items():
        sides = [f"{len(ids)} image(s) only in {side} ({_ids(ids)})" for side, ids in (("A", only_a), ("B", only_b))
                 if ids]
        notes.append(f"- not paired for {', '.join(metrics)}: " + "; ".join(sides))
    return ([""] + notes) if notes else []


def _largest(s: Paired, unit: str) -> list[str]:
    """The images with the largest |A - B| in ``s``'s metric."""
    top = sorted(s.pairs, key=lambda p: (-abs(p[1] - p[2]), p[0]))[:TOP]
    lines = ["", f"Largest per-image differences in {s.metric} (top {len(top)} by |A − B|):", "",
             "| image | A | B | A − B | better |", "|---|---:|---:|---:|---|"]
    for i, x, y in top:
        better = "tie" if x == y else "A" if (x > y) == s.higher_is_better else "B"
        lines.append(f"| {i} | {_num(x, unit)} | {_num(y, unit)} | {_num(x - y, unit, True)} | {better} |")
    return lines


def _section(results_dir: Path, key: tuple, heading: str, ra: dict, rb: dict) -> list[str]:
    rows_a, rows_b = _rows(results_dir, ra), _rows(results_dir, rb)
    units = {k: ra["metrics"][k].get("unit", "") for k in ra["metrics"]}
    stats = [paired(rows_a, rows_b, k, hib) for k, hib in _directions(ra, rb, rows_a, rows_b).items()]
    out = [f"## {key[0]}: {heading}", "",
           f"{len(rows_a)} images in A's rows, {len(rows_b)} in B's; dataset fingerprint `{key[4][:16]}`.", ""]
    if not stats:
        return out + ["No per-image metric with a known direction in both rows files.", ""]
    headline = next((s for s in stats if s.metric == "psnr"), stats[0])
    return out + _metric_table(stats, units) + _unpaired(stats) + _largest(headline, units[headline.metric]) + [""]


def _one(rs: list[dict], name: str) -> dict | None:
    found = [r for r in rs if r["tokenizer"]["name"] == name]
    if len(found) > 1:
        raise CompareError(f"{name} has {len(found)} results for one sample set: "
                           f"{', '.join(r['_path'] for r in found)}; point --results at one of them")
    return found[0] if found else None


def _set_name(key: tuple) -> str:
    return f"{key[0]} on {key[1]} at {key[2]} px" + (f", first {key[3]} images" if key[3] is not None else "")


def _apart(groups: dict[tuple, list[dict]], a: str, b: str) -> list[str]:
    """Notes on sets both were evaluated on, but on different images (fingerprints): never paired."""
    fps: dict[tuple, tuple[set, set]] = {}
    for key, rs in groups.items():
        for side, name in enumerate((a, b)):
            if _one(rs, name):
                fps.setdefault(key[:4], (set(), set()))[side].add(key[4])
    notes = []
    for coarse, (fa, fb) in fps.items():
        if fa - fb and fb - fa:
            names = [", ".join(f"`{f[:16]}`" for f in sorted(fs)) for fs in (fa - fb, fb - fa)]
            notes.append(f"- {_set_name(coarse)}: A on images {names[0]}, B on images {names[1]}")
    return notes


def compare_page(results_dir: Path, a: str, b: str) -> str:
    """Markdown comparing tokenizers ``a`` and ``b`` over every sample set of ``results_dir`` both have results
    for: a table of paired statistics per metric, then the images that differ most on the headline metric."""
    results_dir = Path(results_dir)
    results = load_results(results_dir)
    names = sorted({r["tokenizer"]["name"] for r in results})
    for name in (a, b):
        if name not in names:
            raise CompareError(f"no results for {name!r} under {results_dir}; tokenizers there: {', '.join(names)}")
    groups = _sample_sets([r for r in results if r["tokenizer"]["name"] in (a, b)])
    shared = {k: (ra, rb) for k, rs in groups.items() if (ra := _one(rs, a)) and (rb := _one(rs, b))}
    apart = _apart(groups, a, b)
    if not shared and not apart:
        have = [", ".join(sorted({_set_name(k) for k, rs in groups.items() if _one(rs, n)})) for n in (a, b)]
        raise CompareError(f"{a} and {b} share no sample set: {a} has {have[0]}; {b} has {have[1]}")
    out = [f"# {a} vs {b}", "", _explanation(a, b), ""]
    for task in dict.fromkeys(k[0] for k in shared):
        headings = _headings([k for k in shared if k[0] == task])
        out += [line for k in shared if k[0] == task
                for line in _section(results_dir, k, headings[k][0], *shared[k])]
    if apart:
        out += ["## Not paired", "", "Both were evaluated on these sets, but on different images (dataset "
                "fingerprints differ), so their results are not compared:", "", *apart, ""]
    return "\n".join(out)

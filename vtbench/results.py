"""Result files as pandas DataFrames.

``load(folder)``: one row per metric value of every result file below ``folder`` (tokenizer x dataset x task
x sample set x metric); ``load_rows(folder)``: one row per image per result. ``write`` saves ``load``'s frame
as CSV or JSON (`vtbench leaderboard --format csv|json`). pandas comes with the ``bench`` extra.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ._extras import require
from .bench.results import METRIC_COLUMNS, load_results, metric_records, row_records
from .common import write_atomic

#: what `write` can make (``md``, the leaderboard pages, is `vtbench.bench.leaderboard.write`)
FORMATS = ("csv", "json")
#: column dtypes of `load`'s frame (the others are inferred: text, and bool for random_weights)
DTYPES = {"resolution": "Int64", "limit": "Int64", "num_samples": "Int64", "count": "Int64", "min_count": "Int64",
          "task_version": "Int64", "metric_version": "Int64", "world_size": "Int64", "value": "float64",
          "interval_low": "float64", "interval_high": "float64", "higher_is_better": "boolean", "available": "boolean"}


def _pandas():
    return require("pandas", "bench", "vtbench.results (result files as a DataFrame)")


def load(folder: str | Path):
    """One row per (result file, metric) below ``folder``, columns `METRIC_COLUMNS` (`metric_records`), in a
    fixed order; a missing value (an unavailable metric's, an interval the file has none of) is NaN/NA."""
    pd = _pandas()
    frame = pd.DataFrame.from_records(metric_records(load_results(Path(folder))), columns=list(METRIC_COLUMNS))
    return frame.astype(DTYPES)


def load_rows(folder: str | Path):
    """One row per image per result below ``folder``: tokenizer, dataset, sample set, task and path, then the
    per-image values (`read_rows`); NaN where a result has no such value."""
    pd = _pandas()
    folder = Path(folder)
    return pd.DataFrame.from_records(row_records(folder, load_results(folder)))


def _json_value(v, na):
    if v is None or v is na or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v  # numpy scalars


def to_json(frame) -> str:
    """``frame`` as a JSON list of records, one a line, in its row and column order; NaN and NA as null."""
    na, columns = _pandas().NA, list(frame.columns)
    records = (json.dumps({k: _json_value(v, na) for k, v in zip(columns, row)}, ensure_ascii=False, allow_nan=False)
               for row in frame.itertuples(index=False, name=None))
    return "[\n" + ",\n".join(records) + "\n]\n"


def write(results_dir: str | Path, out_dir: str | Path, fmt: str) -> Path:
    """``<out_dir>/results.<fmt>`` (``fmt``: csv or json) from ``load(results_dir)``; returns its path."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    frame = load(results_dir)
    path = Path(out_dir) / f"results.{fmt}"
    write_atomic(path, frame.to_csv(index=False, lineterminator="\n") if fmt == "csv" else to_json(frame))
    return path

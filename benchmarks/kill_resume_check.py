"""kill -9 a multi-tokenizer `vtbench run` at three points and resume it; run two writers into one --out;
compare every outcome with an uninterrupted run.

    python benchmarks/kill_resume_check.py [--tokenizers bicubic-f8,bicubic-f16,mini-vq]
        [--tasks reconstruction,detail] [--limit N] [--resolution R] [--no-fetch] [--work DIR]

Kill points (SIGKILL as soon as the results folder shows them; the run may get a few milliseconds
further): the first per-image rows on disk, half of the result files on disk, the last per-image rows
on disk. After each kill the same command runs to the end in the same folder. Then two processes
write into one fresh folder at the same time (the tokenizers in opposite orders). Each outcome is
compared with the uninterrupted run: the same result files, every metric value equal (throughput
excluded: it is wall clock), every per-image row equal, in order, none repeated or cut; every file
parses. Prints one line per check and the differences; exits 1 on any.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import vtbench
from vtbench.bench.results import ResultError, load_results, read_rows

WALL_CLOCK = {"encode_images_per_s", "decode_images_per_s"}


def _command(out: Path, args: argparse.Namespace, tokenizers: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "vtbench", "run", "--quiet", "--out", str(out), "--tokenizer", ",".join(tokenizers),
           "--tasks", args.tasks]
    cmd += ["--limit", str(args.limit)] if args.limit else []
    cmd += ["--resolution", str(args.resolution)] if args.resolution else []
    return cmd + (["--no-fetch"] if args.no_fetch else [])


def _env() -> dict:
    """This process's environment, with the vtbench it imported first on the path of the runs it starts."""
    here = str(Path(vtbench.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def _finish(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")


def _count(out: Path, pattern: str) -> int:
    return sum(1 for p in out.rglob(pattern) if p.parent.name != "leaderboards")


def kill_when(cmd: list[str], out: Path, ready: Callable[[Path], bool]) -> tuple[float, bool]:
    """Start ``cmd``, SIGKILL it once ``ready(out)``: (seconds it ran, whether it was killed before its end)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not (out.is_dir() and ready(out)):
        time.sleep(0.002)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return time.perf_counter() - start, killed


def snapshot(out: Path) -> dict[str, dict]:
    """Relative result path -> its metric values (wall clock excluded) and per-image rows."""
    found = {}
    for r in load_results(out):
        path = out / r["_path"]
        found[r["_path"]] = {"metrics": {k: v["value"] for k, v in r["metrics"].items() if k not in WALL_CLOCK},
                             "fingerprint": r["dataset"]["fingerprint"], "rows": read_rows(path)}
    return found


def compare(reference: dict[str, dict], other: dict[str, dict]) -> list[str]:
    """Every way ``other`` differs from ``reference``, one line each."""
    diffs = [f"{p}: missing" for p in sorted(reference.keys() - other.keys())]
    diffs += [f"{p}: not in the uninterrupted run" for p in sorted(other.keys() - reference.keys())]
    for p in sorted(reference.keys() & other.keys()):
        ref, got = reference[p], other[p]
        diffs += [f"{p}: {k} {ref['metrics'].get(k)} != {got['metrics'].get(k)}"
                  for k in sorted(ref["metrics"].keys() | got["metrics"].keys())
                  if ref["metrics"].get(k) != got["metrics"].get(k)]
        if ref["fingerprint"] != got["fingerprint"]:
            diffs.append(f"{p}: dataset fingerprint differs")
        ids = [row["id"] for row in got["rows"]]
        if len(ids) != len(set(ids)):
            diffs.append(f"{p}: per-image rows repeated ({len(ids)} rows, {len(set(ids))} images)")
        elif got["rows"] != ref["rows"]:
            diffs.append(f"{p}: per-image rows differ ({len(got['rows'])} rows, expected {len(ref['rows'])})")
    return diffs


def _outcome(reference: dict, out: Path) -> list[str]:
    try:
        return compare(reference, snapshot(out))
    except (ResultError, ValueError, OSError) as e:  # a half-written file: JSON that does not parse
        return [f"unreadable: {e}"]


def check(args: argparse.Namespace, work: Path) -> list[str]:
    tokenizers = args.tokenizers.split(",")
    expected = len(tokenizers) * len(args.tasks.split(","))
    t0 = time.perf_counter()
    _finish(_command(work / "reference", args, tokenizers))
    reference = snapshot(work / "reference")
    rows = sum(len(r["rows"]) for r in reference.values())
    print(f"uninterrupted: {len(reference)} results, {rows} per-image rows ({time.perf_counter() - t0:.1f} s)")
    points = {"first per-image rows on disk": lambda out: _count(out, "*.per_image.jsonl") >= 1,
              "half of the result files on disk": lambda out: _count(out, "*.json") >= expected // 2,
              "last per-image rows on disk": lambda out: _count(out, "*.per_image.jsonl") >= expected}
    failures = []
    for i, (name, ready) in enumerate(points.items()):
        out = work / f"killed{i}"
        cmd = _command(out, args, tokenizers)
        ran, killed = kill_when(cmd, out, ready)
        on_disk = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p.parent.name != "leaderboards"}
        _finish(cmd)
        reused = sum(p.stat().st_mtime_ns == t for p, t in on_disk.items())
        diffs = _outcome(reference, out)
        state = (f"killed at {ran:.2f} s with {len(on_disk)} result files on disk" if killed
                 else "finished before the kill")
        print(f"kill at {name}: {state}; resumed ({reused} reused): {'equal' if not diffs else 'DIFFERENT'}")
        failures += [f"  {name}: {d}" for d in diffs] + ([] if killed else [f"  {name}: never killed"])
    out = work / "concurrent"
    procs = [subprocess.Popen(_command(out, args, order), env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for order in (tokenizers, tokenizers[::-1])]
    errors = [p.communicate()[1] for p in procs]
    codes = [p.returncode for p in procs]
    diffs = _outcome(reference, out) + [f"writer {i} exited {c}: {e[-500:]}"
                                        for i, (c, e) in enumerate(zip(codes, errors)) if c != 0]
    diffs += [f"left behind: {p.relative_to(out)}" for p in out.rglob("*.tmp")]
    print(f"two writers into one --out: exit codes {codes}: {'equal' if not diffs else 'DIFFERENT'}")
    return failures + [f"  concurrent: {d}" for d in diffs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizers", default="bicubic-f8,bicubic-f16,mini-vq")
    ap.add_argument("--tasks", default="reconstruction,detail")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--resolution", type=int)
    ap.add_argument("--no-fetch", action="store_true", help="skip metrics whose weights are not cached")
    ap.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        failures = check(args, args.work or Path(tmp))
    print("\n".join(failures) if failures else "all equal to the uninterrupted run")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""`vtbench run` in one process and under `torchrun` with several: the result files must agree.

Per-image rows exactly; metric means to 1e-9 relative; FID, KID and pFID (its whole curve) to 1e-6
relative; everything else in the result (tokenizer, dataset, fingerprint, skipped files, config) exactly,
except when and how fast it was made (``created``, ``timings``, the throughput metric) and the
``environment`` block, which records the world size. Prints one line per result and every difference;
exit status 1 when anything differs.

    python benchmarks/distributed_check.py --tokenizer mini-vq --limit 8 --nproc 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

FID_LIKE = {"rfid", "kid", "pfid"}
TIMING = {"encode_images_per_s", "decode_images_per_s"}  # wall-clock rates: not a result to reproduce
IGNORED = {"created", "timings", "environment", "per_image_sha256", "git_commit"}


def run(out: Path, nproc: int, args) -> float:
    """One `vtbench run` into ``out`` with ``nproc`` processes; its wall time."""
    cli = ["run", "--quiet", "--tokenizer", args.tokenizer, "--tasks", args.tasks, "--limit", str(args.limit),
           "--batch-size", str(args.batch_size), "--out", str(out)]
    cli += ["--resolution", str(args.resolution)] if args.resolution else []
    cli += ["--no-fetch"] if args.no_fetch else []
    launcher = [sys.executable, "-m", "vtbench"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "vtbench"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    started = time.perf_counter()
    subprocess.run(launcher + cli, check=True, env=env)
    return time.perf_counter() - started


def _close(a, b, rel: float) -> bool:
    if a is None or b is None or isinstance(a, bool) or not isinstance(a, (int, float)):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def _walk(a, b, rel: float, where: str, out: list[str]) -> None:
    """Differences between two JSON values, numbers compared to ``rel``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            _walk(a.get(k), b.get(k), rel, f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, rel, f"{where}[{i}]", out)
    elif not _close(a, b, rel):
        out.append(f"{where}: {json.dumps(a)} != {json.dumps(b)}")


def compare(one: Path, many: Path) -> tuple[list[str], int]:
    """(differences, number of results compared) between two results folders."""
    diffs, n = [], 0
    names = sorted(p.relative_to(one) for p in one.rglob("*.json") if "leaderboards" not in p.parts)
    others = sorted(p.relative_to(many) for p in many.rglob("*.json") if "leaderboards" not in p.parts)
    if names != others:
        return [f"different result files: {names} vs {others}"], 0
    for name in names:
        a, b = (json.loads((root / name).read_text()) for root in (one, many))
        found: list[str] = []
        _walk({k: v for k, v in a.items() if k not in IGNORED | {"metrics"}},
              {k: v for k, v in b.items() if k not in IGNORED | {"metrics"}}, 0.0, "", found)
        for k in sorted((a["metrics"].keys() | b["metrics"].keys()) - TIMING):
            _walk(a["metrics"].get(k), b["metrics"].get(k), 1e-6 if k in FID_LIKE else 1e-9, f".metrics.{k}", found)
        rows = [(root / name).with_name(name.name[:-5] + ".per_image.jsonl").read_text() for root in (one, many)]
        if rows[0] != rows[1]:
            found.append("per-image rows differ")
        print(f"{name}: {'equal' if not found else f'{len(found)} differences'}")
        diffs += [f"{name}{d}" for d in found]
        n += 1
    return diffs, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", default="mini-vq")
    p.add_argument("--tasks", default="reconstruction,detail,text,pfid")
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--resolution", type=int)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process (default 1)")
    p.add_argument("--no-fetch", action="store_true")
    p.add_argument("--work", type=Path, default=Path("distributed-check"))
    args = p.parse_args(argv)
    t1 = run(args.work / "one", 1, args)
    tn = run(args.work / "many", args.nproc, args)
    diffs, n = compare(args.work / "one", args.work / "many")
    for d in diffs:
        print("  " + d)
    print(f"{n} results: 1 process {t1:.1f} s, {args.nproc} processes {tn:.1f} s; "
          f"{'equal' if not diffs and n else 'DIFFERENT'}")
    return 0 if n and not diffs else 1


if __name__ == "__main__":
    sys.exit(main())

"""`vtbench list | run | weights | train | leaderboard`."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

def _cmd_list(args) -> int:
    from .bench import datasets
    from .bench.tasks import METRICS, TASKS
    from .tokenizers import get_entry, list_tokenizers

    what = args.what
    if what == "tokenizers":
        rows = []
        for name in list_tokenizers():
            e = get_entry(name)
            status = "test fixture (random)" if e.test_only else (
                "available" if e.available_offline() else "needs weights")
            rows.append((name, ",".join(e.weights), status, e.description))
        _print_table(("name", "weights", "status", "description"), rows)
    elif what == "datasets":
        rows = [("builtin", "builtin", datasets.BuiltinDataset.description)]
        rows += [(n, "manifest", str(datasets.find_manifest(n))) for n in datasets.list_manifests()]
        rows.append(("PATH", "folder", "any folder of images (name.txt beside name.png is its ground-truth text)"))
        _print_table(("name", "kind", "description"), rows)
    elif what == "metrics":
        _print_table(("name", "description"), [(n, m.description) for n, m in METRICS.items()])
    elif what == "tasks":
        _print_table(("name", "builtin subset", "description"), [(t.name, t.subset, t.description) for t in TASKS.values()])
    return 0


def _print_table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())


def _cmd_run(args) -> int:
    from .bench import leaderboard, metric_weights
    from .bench.datasets import get_dataset
    from .bench.runner import RunConfig, evaluate, pick_device
    from .bench.tasks import get_task
    from .tokenizers import WeightsUnavailable, list_tokenizers, load_tokenizer

    dataset = get_dataset(args.dataset)
    if args.no_fetch:
        os.environ[metric_weights.NO_FETCH_ENV] = "1"
    tasks = [get_task(t) for t in (args.tasks.split(",") if args.tasks else dataset.default_tasks)]
    device = pick_device(args.device)
    if args.tokenizer:
        specs = args.tokenizer.split(",")
    else:
        specs = list_tokenizers(available_only=True, include_test=False)
        print(f"no --tokenizer given: running every tokenizer whose weights are on this machine: {', '.join(specs)}")
    cfg = RunConfig(batch_size=args.batch_size, limit=args.limit, seed=args.seed, resolution=args.resolution,
                    save_images=args.save_images, overwrite=args.overwrite, delta=args.delta,
                    alpha=tuple(float(a) for a in args.alpha.split(",")))
    out = Path(args.out)
    failures = 0
    for spec in specs:
        try:
            tok = load_tokenizer(spec, device=device)
        except WeightsUnavailable as e:
            print(f"[{spec}] skipped: {e}", file=sys.stderr)
            failures += 1
            continue
        native = tok.info.resolution
        if tok.info.extra.get("fixed_resolution") and args.resolution not in (None, native):
            print(f"[{spec}] skipped: it encodes {native}x{native} images only (asked for --resolution "
                  f"{args.resolution})", file=sys.stderr)
            failures += 1
            continue
        for task in tasks:
            result, path = evaluate(tok, dataset, task, out, cfg, progress=not args.quiet)
            summary = ", ".join(f"{k}={v['value']:.4g}" for k, v in result["metrics"].items() if v["value"] is not None)
            missing = [k for k, v in result["metrics"].items() if not v.get("available", True)]
            if missing:
                summary += f"; unavailable: {', '.join(missing)} (reasons in the result file)"
            d = result["dataset"]
            skipped = f", {d['num_skipped']} skipped" if d["num_skipped"] else ""
            print(f"[{result['tokenizer']['name']}] {task.name}: {d['num_samples']} images{skipped}: {summary}")
            print(f"  -> {path}")
    if not any(out.rglob("*.json")):
        print("no results were written", file=sys.stderr)
        return 1
    boards = leaderboard.write(out, Path(args.leaderboard) if args.leaderboard else out / "leaderboards")
    print(f"results: {out}/")
    print(f"leaderboard: {boards[-1].parent}/ ({', '.join(p.name for p in boards)})")
    return 1 if failures and args.tokenizer else 0


def _cmd_weights(args) -> int:
    from .bench import metric_weights as mw

    names = args.names or list(mw.WEIGHTS)
    unknown = [n for n in names if n not in mw.WEIGHTS]
    if unknown:
        raise KeyError(f"unknown metric weights {', '.join(unknown)}; known: {', '.join(mw.WEIGHTS)}")
    if args.action == "fetch":
        failed = 0
        for n in names:
            try:
                mw.WEIGHTS[n].fetch()
            except mw.MetricWeightsUnavailable as e:
                print(f"{n}: {e}", file=sys.stderr)
                failed += 1
        if failed:
            return 1
    rows = []
    for n in names:
        w = mw.WEIGHTS[n]
        ok, where = w.status()
        rows.append((n, "found" if ok else "missing", w.used_by, f"{w.package}=={w.version}",
                     f"sha256 {w.member_sha256[:16]}...", where))
    print(f"cache: {mw.cache_dir()} (set ${mw.CACHE_ENV} to move it)")
    _print_table(("name", "status", "used by", "source package", "expected", "location"), rows)
    return 0


def _cmd_train(args) -> int:
    from dataclasses import fields

    from .train import TrainConfig, train

    name = args.tokenizer
    if not name.startswith("mini-"):
        raise KeyError(f"vtbench trains the mini-zoo (mini-<family>), not {name!r}; see `vtbench list tokenizers`")
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    cfg = TrainConfig(**overrides)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .bench.runner import pick_device

    out = train(name[len("mini-"):], Path(args.out or f"runs/train/{name}"), cfg, progress=not args.quiet,
                device=pick_device(args.device))
    print(f"trained {name}: {out}/model.safetensors, {out}/config.json")
    return 0


def _cmd_leaderboard(args) -> int:
    from .bench import leaderboard

    paths = leaderboard.write(Path(args.results), Path(args.out))
    for p in paths:
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="vtbench", description="Visual tokenizer zoo and benchmark.")
    p.add_argument("--version", action="version", version=f"vtbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list tokenizers, datasets, metrics or tasks")
    ls.add_argument("what", nargs="?", default="tokenizers", choices=("tokenizers", "datasets", "metrics", "tasks"))
    ls.set_defaults(func=_cmd_list)

    run = sub.add_parser("run", help="evaluate tokenizers and write results and a leaderboard")
    run.add_argument("--tokenizer", help="name[:weights], comma-separated; default: all with weights on this machine")
    run.add_argument("--dataset", default="builtin", help="builtin, a folder of images, or a manifest name/path")
    run.add_argument("--tasks", help="comma-separated task names (default: the dataset's own list)")
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument("--limit", type=int, help="evaluate only the first N images of each task")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--resolution", type=int, help="evaluation resolution (default: the tokenizer's native one)")
    run.add_argument("--out", default="runs", help="results folder (default: ./runs)")
    run.add_argument("--leaderboard", help="where the leaderboard goes (default: <out>/leaderboards)")
    run.add_argument("--save-images", type=int, default=0, metavar="N", help="save the first N reconstructions as PNG")
    run.add_argument("--overwrite", action="store_true", help="recompute results that already exist")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    run.add_argument("--alpha", default="0,0.05,0.1,0.2,0.3",
                     help="pFID: fraction(s) of tokens perturbed, comma-separated (headline at 0.1)")
    run.add_argument("--delta", type=int, default=100, help="pFID: neighbourhood size (capped at the vocabulary)")
    run.add_argument("--no-fetch", action="store_true",
                     help="never download metric weights; metrics without them are reported unavailable")

    wt = sub.add_parser("weights", help="status or fetch of the pretrained networks that metrics use")
    wt.add_argument("action", choices=("status", "fetch"))
    wt.add_argument("names", nargs="*", help="weights to act on (default: all)")
    wt.set_defaults(func=_cmd_weights)

    tr = sub.add_parser("train", help="train a mini-zoo tokenizer (resumable)")
    tr.add_argument("--tokenizer", required=True, help="mini-<family>, e.g. mini-vq")
    tr.add_argument("--steps", type=int, help="optimizer steps (default: 6000, the shipped 2D minis' budget)")
    tr.add_argument("--batch-size", dest="batch_size", type=int)
    tr.add_argument("--crop", type=int, help="training crop size (default: 64 for the conv families; the 1D ViTs train at their fixed 256)")
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int)
    tr.add_argument("--manifest", help="training data manifest (default: mini-train)")
    tr.add_argument("--precision", choices=("fp32", "bf16"),
                    help="bf16: autocast to bfloat16 (1.7-2x faster on CPUs with AMX; default fp32)")
    tr.add_argument("--threads", type=int, help="torch CPU threads")
    tr.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    tr.add_argument("--out", help="output folder (default: runs/train/<tokenizer>)")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=_cmd_train)

    lb = sub.add_parser("leaderboard", help="make markdown leaderboards from result files")
    lb.add_argument("--results", default="runs", help="folder of result files")
    lb.add_argument("--out", default="leaderboards", help="where the markdown goes")
    lb.set_defaults(func=_cmd_leaderboard)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda message, *_args, **_kw: f"vtbench: warning: {message}\n"
    try:
        return args.func(args)
    except (KeyError, ValueError, RuntimeError, ImportError, OSError) as e:  # DatasetUnavailable is a RuntimeError
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"vtbench: error: {msg}", file=sys.stderr)
        return 2

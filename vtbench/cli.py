"""`vtbench list | run | tokenize | export | weights | train | leaderboard`.

Every option is checked while the arguments are parsed (a usage error naming the option and its allowed
values, exit 2), before any model loads. vtbench's own errors print one line (`vtbench: error: ...`,
exit 2), anything else is a bug and prints its traceback; ``--debug`` prints the traceback for all.
Ctrl-C stops with one line saying what was kept (exit 130).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
import warnings
from pathlib import Path

from .errors import UnknownName

MAX_RESOLUTION = 4096


def _integer(low: int, high: int | None = None, multiple: int = 1):
    """argparse ``type=``: an integer in [low, high] that is a multiple of ``multiple``."""
    allowed = (f"a multiple of {multiple} " if multiple > 1 else "an integer ") + (
        f"from {low} to {high}" if high is not None else f">= {low}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high) or value % multiple:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


def _alphas(text: str) -> tuple[float, ...]:
    """argparse ``type=`` of --alpha: comma-separated fractions in [0, 1)."""
    try:
        values = tuple(float(a) for a in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(0 <= a < 1 for a in values):  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be comma-separated fractions in [0, 1), got {text!r}")
    return values


def _token_counts(text: str) -> tuple[int, ...]:
    """argparse ``type=`` of --num-tokens: comma-separated token counts >= 1."""
    try:
        values = tuple(int(k) for k in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 1, got {text!r}")
    return values


def _sampling(text: str) -> dict:
    """argparse ``type=`` of --sampling: ``key=value,...`` with int, float or true/false values."""
    options = {}
    for part in text.split(","):
        key, eq, raw = part.partition("=")
        value = {"true": True, "false": False}.get(raw.strip().lower())
        for kind in (int, float):
            if value is None:
                try:
                    value = kind(raw)
                except ValueError:
                    pass
        if not eq or not key.strip() or value is None or value != value:
            raise argparse.ArgumentTypeError(f"must be key=value pairs (numbers or true/false), got {text!r}")
        options[key.strip()] = value
    return options


def _expand(spec: str, list_tokenizers) -> list[str]:
    """A --tokenizer item: a name[:tag], or a glob over names (``jpeg-q*``) naming at least one entry."""
    if not any(c in spec for c in "*?["):
        return [spec]
    names = list_tokenizers(spec, include_test=False)
    if not names:
        raise UnknownName(f"--tokenizer {spec!r} matches no tokenizer (see `vtbench list tokenizers`)")
    return names


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _device(text: str) -> str:
    """argparse ``type=`` of --device: auto, or a torch device that exists on this machine."""
    if text == "auto":
        return text
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N, mps, ..., got {text!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: there is no CUDA device here (use auto or cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s), cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}")
    return text


def _existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"must be a checkpoint file, and there is no file {text}")
    return path


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
            checkpoint = e.weights[e.default_weights]
            rows.append((name, ",".join(e.weights), status, _files(checkpoint), _published(checkpoint.published),
                         e.description))
        _print_table(("name", "weights", "status", "default file", "published", "description"), rows)
    elif what == "datasets":
        rows = [("builtin", "builtin", datasets.BuiltinDataset.description)]
        rows += [(n, "manifest", str(datasets.find_manifest(n))) for n in datasets.list_manifests()]
        rows.append(("PATH", "folder", "any folder of images (name.txt beside name.png is its ground-truth text)"))
        _print_table(("name", "kind", "description"), rows)
    elif what == "metrics":
        _print_table(("name", "description"), [(n, m.description) for n, m in METRICS.items()])
    elif what == "tasks":
        rows = [(t.name, t.subset, t.description) for t in TASKS.values()]
        _print_table(("name", "builtin subset", "description"), rows)
    return 0


def _files(checkpoint) -> str:
    """The default weights' files; a released file without a sha256 pin says so."""
    from .tokenizers.weights import HubFile, ManualFile

    def one(src) -> str:
        unpinned = isinstance(src, (HubFile, ManualFile)) and not src.sha256
        return src.describe() + (" (unpinned)" if unpinned else "")

    return ", ".join(one(src) for src in checkpoint.files.values())


_FIGURES = {"rfid": "rFID", "psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS"}


def _published(figures: dict) -> str:
    """The authors' figures for the default weights, e.g. "rFID 2.19 (ImageNet val, 256x256)"."""
    shown = [f"{_FIGURES.get(k, k)} {v}" for k, v in figures.items() if isinstance(v, (int, float))]
    if not shown:
        return figures.get("note", "")
    return ", ".join(shown) + (f" ({figures['dataset']})" if "dataset" in figures else "")


def _print_table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())


def _cmd_run(args) -> int:
    """Under ``torchrun`` every process evaluates its shard; rank 0 prints, writes results and leaderboard."""
    from . import distributed

    with distributed.session() as (rank, _):
        return _run(args, print if rank == 0 else lambda *a, **k: None)


def _run(args, say) -> int:
    from .bench import leaderboard, metric_weights
    from .bench.datasets import get_dataset
    from .bench.runner import Prefix, RunConfig, RunError, evaluate, pick_device
    from .bench.tasks import get_task
    from .tokenizers import WeightsUnavailable, list_tokenizers, load_tokenizer
    from .tokenizers.registry import parse_spec

    dataset = get_dataset(args.dataset)
    if args.no_fetch:
        os.environ[metric_weights.NO_FETCH_ENV] = "1"
    tasks = [get_task(t) for t in (args.tasks.split(",") if args.tasks else dataset.default_tasks)]
    device = pick_device(args.device)
    if args.tokenizer:
        specs = [name for spec in args.tokenizer.split(",") for name in _expand(spec, list_tokenizers)]
    else:
        specs = list_tokenizers(available_only=True, include_test=False, default_run_only=True)
        say(f"no --tokenizer given: running every tokenizer whose weights are on this machine: {', '.join(specs)}")
    for spec in specs:  # every name is checked before the first model loads
        parse_spec(spec)
    cfg = RunConfig(batch_size=args.batch_size, limit=args.limit, seed=args.seed, resolution=args.resolution,
                    save_images=args.save_images, showcase=args.showcase, overwrite=args.overwrite, delta=args.delta,
                    alpha=args.alpha, precision=args.precision, workers=args.workers, verify=args.verify)
    if args.precision == "fp16" and device.type != "cuda":
        raise RunError("--precision fp16 needs a CUDA device; use bf16 on the CPU")
    out = Path(args.out)
    failures = 0
    for spec in specs:
        try:
            tok = load_tokenizer(spec, device=device, weights=args.weights)
        except WeightsUnavailable as e:
            say(f"[{spec}] skipped: {e}", file=sys.stderr)
            failures += 1
            continue
        try:
            tok.layout(args.resolution)  # None: the native resolution
            tok.set_sampling(**args.sampling)
            variants = [Prefix(tok, k) for k in args.num_tokens] if args.num_tokens else [tok]
        except (ValueError, TypeError) as e:
            say(f"[{spec}] skipped: {e}", file=sys.stderr)
            failures += 1
            continue
        for tok, task in ((t, task) for t in variants for task in tasks):
            result, path = evaluate(tok, dataset, task, out, cfg, progress=not args.quiet)
            summary = ", ".join(f"{k}={v['value']:.4g}" for k, v in result["metrics"].items() if v["value"] is not None)
            missing = [k for k, v in result["metrics"].items() if not v.get("available", True)]
            if missing:
                summary += f"; unavailable: {', '.join(missing)} (reasons in the result file)"
            d = result["dataset"]
            skipped = f", {d['num_skipped']} skipped" if d["num_skipped"] else ""
            say(f"[{result['tokenizer']['name']}] {task.name}: {d['num_samples']} images{skipped}: {summary}")
            say(f"  -> {path}")
    if not any(out.rglob("*.json")):
        say("no results were written", file=sys.stderr)
        return 1
    if say is print:  # rank 0
        boards = leaderboard.write(out, Path(args.leaderboard) if args.leaderboard else out / "leaderboards")
        say(f"results: {out}/")
        say(f"leaderboard: {boards[-1].parent}/ ({', '.join(p.name for p in boards)})")
    return 1 if failures and args.tokenizer else 0


def _cmd_tokenize(args) -> int:
    from .bench.datasets import get_dataset
    from .bench.runner import pick_device
    from .pretokenize import TokenizeConfig, tokenize
    from .tokenizers import load_tokenizer

    dataset = get_dataset(args.dataset)
    device = pick_device(args.device)
    tok = load_tokenizer(args.tokenizer, device=device, weights=args.weights)
    cfg = TokenizeConfig(augment=args.augment, resolution=args.resolution, batch_size=args.batch_size,
                         shard_size=args.shard_size, limit=args.limit, latent_dtype=args.latent_dtype)
    meta = tokenize(tok, dataset, Path(args.out), cfg, device=device, progress=not args.quiet)
    if meta.exists():
        import json

        m = json.loads(meta.read_text())
        d = m["dataset"]
        print(f"[{m['tokenizer']['name']}] {d['num_samples']} images x {len(m['views'])} views "
              f"({d['num_skipped']} skipped), {m['layout']['seq_len']} positions each -> {meta}")
    return 0


def _cmd_export(args) -> int:
    from .exports import export

    n = export(args.tokens, args.to, args.out, name=args.name, progress=not args.quiet)
    print(f"{n} samples in {args.to} format -> {args.out}")
    return 0


def _cmd_weights(args) -> int:
    from .bench import metric_weights as mw

    names = args.names or list(mw.WEIGHTS)
    unknown = [n for n in names if n not in mw.WEIGHTS]
    if unknown:
        raise UnknownName(f"unknown metric weights {', '.join(unknown)}; known: {', '.join(mw.WEIGHTS)}")
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
                     f"sha256 {w.sha256[:16]}...", where))
    print(f"cache: {mw.cache_dir()} (set ${mw.CACHE_ENV} to move it)")
    _print_table(("name", "status", "used by", "source package", "expected", "location"), rows)
    return 0


def _cmd_train(args) -> int:
    from dataclasses import fields

    from .train import TrainConfig, train

    name = args.tokenizer
    if not name.startswith("mini-"):
        raise UnknownName(f"vtbench trains the mini-zoo (mini-<family>), not {name!r}; see `vtbench list tokenizers`")
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    cfg = TrainConfig(**overrides)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .bench.runner import pick_device

    out = train(name[len("mini-"):], _train_out(args), cfg, progress=not args.quiet,
                device=pick_device(args.device))
    print(f"trained {name}: {out}/model.safetensors, {out}/config.json")
    return 0


def _train_out(args) -> Path:
    return Path(args.out or f"runs/train/{args.tokenizer}")


def _cmd_leaderboard(args) -> int:
    from .bench import leaderboard

    results = Path(args.results)
    out = Path(args.out) if args.out else results / "leaderboards"
    if args.format == "md":
        paths = leaderboard.write(results, out, [tuple(pair) for pair in args.vs])
    else:
        from .results import write as write_table

        paths = [write_table(results, out, args.format)]
    for p in paths:
        print(p)
    return 0


def _cmd_compare(args) -> int:
    from .bench.compare import compare_page
    from .common import write_atomic

    page = compare_page(Path(args.results), args.a, args.b)
    if args.out:
        write_atomic(Path(args.out), page)
        print(args.out)
    else:
        print(page, end="")
    return 0


def _cmd_bench_speed(args) -> int:
    from .bench import speed
    from .bench.runner import pick_device
    from .tokenizers import load_tokenizer

    device = pick_device(args.device)
    speed.check_precision(args.precision, device)  # before any model loads
    cfg = speed.SpeedConfig(batch_size=args.batch_size, precision=args.precision, resolution=args.resolution,
                            iters=args.iters, warmup=args.warmup)
    failures = 0
    for spec in args.tokenizer.split(","):
        try:
            tok = load_tokenizer(spec, device=device)
            result = speed.run(tok, cfg, device)
        except _user_errors() + (ValueError,) as e:
            print(f"[{spec}] skipped: {e}", file=sys.stderr)
            failures += 1
            continue
        path = speed.write(Path(args.out), result)
        c, m, mem = result["config"], result["machine"], result["peak_memory"]
        enc, dec = (result[k]["images_per_s"] for k in ("encode", "decode"))
        peak = f"{mem['bytes'] / 2**20:.0f} MiB ({mem['method']})" if mem["bytes"] is not None else "n/a"
        print(f"[{result['tokenizer']['name']}] batch {c['batch_size']}, {c['precision']}, {c['resolution']} px on "
              f"{c['device']} ({m['gpu'] or m['cpu']}, {m['torch_threads']} threads), {c['iters']} timed iterations "
              f"after {c['warmup']} warm-up: encode {enc['mean']:.4g} ± {enc['std']:.2g} img/s, "
              f"decode {dec['mean']:.4g} ± {dec['std']:.2g} img/s, peak memory {peak}")
        print(f"  -> {path}")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="vtbench", description="Visual tokenizer zoo and benchmark.")
    p.add_argument("--version", action="version", version=f"vtbench {__version__}")
    p.add_argument("--debug", action="store_true", help="print the traceback of every error, not only of bugs")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list tokenizers, datasets, metrics or tasks")
    ls.add_argument("what", nargs="?", default="tokenizers", choices=("tokenizers", "datasets", "metrics", "tasks"))
    ls.set_defaults(func=_cmd_list)

    run = sub.add_parser("run", help="evaluate tokenizers and write results and a leaderboard")
    run.add_argument("--tokenizer", help="name[:weights] or a glob ('jpeg-q*'), comma-separated; default: all with "
                                          "weights on this machine but sweeps such as the codec baselines")
    run.add_argument("--dataset", default="builtin", help="builtin, a folder of images, or a manifest name/path")
    run.add_argument("--tasks", help="comma-separated task names (default: the dataset's own list)")
    run.add_argument("--num-tokens", type=_token_counts, metavar="K,...",
                     help="ordered (1D prefix) tokenizers: score the first K tokens of each image, one row per K "
                          "(labelled <name>-k<K>)")
    run.add_argument("--sampling", type=_sampling, default={}, metavar="KEY=VALUE,...",
                     help="decoding options of stochastic decoders, e.g. steps=8,guidance=3 (FlexTok); recorded in "
                          "the result as tokenizer.sampling")
    run.add_argument("--weights", type=_existing_file, metavar="PATH",
                     help="your own checkpoint of the --tokenizer entry's architecture (one --tokenizer only)")
    run.add_argument("--batch-size", type=_integer(1), default=16, help="images per batch (>= 1; default 16)")
    run.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                     help="the tokenizer's precision (autocast; quantizer lookups and metrics stay float32; "
                          "recorded in the result)")
    run.add_argument("--workers", type=_integer(0), default=2,
                     help="DataLoader processes decoding and resizing images (0: in the main process)")
    run.add_argument("--limit", type=_integer(1), help="evaluate only the first N images of each task")
    run.add_argument("--seed", type=_integer(0), default=0, help="random seed (>= 0)")
    run.add_argument("--resolution", type=_integer(8, MAX_RESOLUTION, multiple=8),
                     help=f"evaluation resolution, a multiple of 8 up to {MAX_RESOLUTION} (default: the tokenizer's "
                          "native one)")
    run.add_argument("--out", default="runs", help="results folder (default: ./runs)")
    run.add_argument("--leaderboard", help="where the leaderboard goes (default: <out>/leaderboards)")
    run.add_argument("--showcase", type=_integer(0), default=2, metavar="N",
                     help="keep the first N images of each task small beside the result, for the leaderboard's "
                          "reconstruction grids (default 2; 0: none)")
    run.add_argument("--save-images", type=_integer(0), default=0, metavar="N",
                     help="save the first N reconstructions as PNG")
    run.add_argument("--overwrite", action="store_true", help="recompute results that already exist")
    run.add_argument("--verify", action="store_true",
                     help="before reusing a stored result over image files, hash their pixels (default: their "
                          "list, sizes and modification times, cached)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    run.add_argument("--alpha", type=_alphas, default=(0.0, 0.05, 0.1, 0.2, 0.3),
                     help="pFID: fraction(s) of tokens perturbed, comma-separated, each in [0, 1) (headline at 0.1)")
    run.add_argument("--delta", type=_integer(2), default=100,
                     help="pFID: neighbourhood size, >= 2 (capped at the vocabulary)")
    run.add_argument("--no-fetch", action="store_true",
                     help="never download metric weights; metrics without them are reported unavailable")

    tk = sub.add_parser("tokenize", help="encode a dataset into sharded token files for AR training (resumable)")
    tk.add_argument("--tokenizer", required=True, help="name[:weights]")
    tk.add_argument("--dataset", default="builtin", help="builtin, a folder of images (one subfolder per class "
                                                          "gives labels), or a manifest name/path")
    tk.add_argument("--out", required=True, help="output folder (a rerun with the same options resumes there)")
    tk.add_argument("--augment", choices=("none", "flip", "ten-crop"), default="none",
                    help="views per image: none, flip (image and mirror), ten-crop (LlamaGen's --ten-crop)")
    tk.add_argument("--weights", type=_existing_file, metavar="PATH", help="your own checkpoint of that architecture")
    tk.add_argument("--resolution", type=_integer(8, MAX_RESOLUTION, multiple=8),
                    help="image size (default: the tokenizer's native one)")
    tk.add_argument("--batch-size", type=_integer(1), default=32, help="images per batch (default 32)")
    tk.add_argument("--shard-size", type=_integer(1), default=1000, help="images per shard file (default 1000)")
    tk.add_argument("--limit", type=_integer(1), help="only the first N images")
    tk.add_argument("--latent-dtype", choices=("float16", "float32"), default="float16",
                    help="storage of continuous latents (default float16)")
    tk.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    tk.add_argument("--quiet", action="store_true", help="no progress bar")
    tk.set_defaults(func=_cmd_tokenize)

    ex = sub.add_parser("export", help="write a `vtbench tokenize` folder in LlamaGen's or MAR's format")
    ex.add_argument("--tokens", required=True, help="a folder written by `vtbench tokenize`")
    ex.add_argument("--to", required=True, choices=("llamagen", "mar"))
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--name", default="imagenet", help="llamagen: the dataset name in its folder names")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    ex.set_defaults(func=_cmd_export)

    wt = sub.add_parser("weights", help="status or fetch of the pretrained networks that metrics use")
    wt.add_argument("action", choices=("status", "fetch"))
    wt.add_argument("names", nargs="*", help="weights to act on (default: all)")
    wt.set_defaults(func=_cmd_weights)

    tr = sub.add_parser("train", help="train a mini-zoo tokenizer (resumable)")
    tr.add_argument("--tokenizer", required=True, help="mini-<family>, e.g. mini-vq")
    tr.add_argument("--steps", type=_integer(1), help="optimizer steps (default: 6000, the shipped 2D minis' budget)")
    tr.add_argument("--batch-size", dest="batch_size", type=_integer(1))
    tr.add_argument("--crop", type=_integer(32, 1024, multiple=8),
                    help="training crop size, a multiple of 8 from 32 to 1024 (default: 64 for the conv families; "
                         "the 1D ViTs train at their fixed 256)")
    tr.add_argument("--lr", type=_learning_rate)
    tr.add_argument("--seed", type=_integer(0))
    tr.add_argument("--manifest", help="training data manifest (default: mini-train)")
    tr.add_argument("--precision", choices=("fp32", "bf16"),
                    help="bf16: autocast to bfloat16 (1.7-2x faster on CPUs with AMX; default fp32)")
    tr.add_argument("--threads", type=_integer(1), help="torch CPU threads")
    tr.add_argument("--device", type=_device, default="auto",
                    help="auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    tr.add_argument("--out", help="output folder (default: runs/train/<tokenizer>)")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=_cmd_train)

    lb = sub.add_parser("leaderboard", help="make markdown leaderboards (or one CSV/JSON table) from result files")
    lb.add_argument("--results", default="runs", help="folder of result files")
    lb.add_argument("--out", help="where the tables go (default: <results>/leaderboards; the repository's "
                                   "committed tables are rebuilt only with --out leaderboards)")
    lb.add_argument("--format", choices=("md", "csv", "json"), default="md",
                    help="md: a markdown page per task; csv/json: <out>/results.csv or .json, one row per metric "
                         "value (vtbench.results.load)")
    lb.add_argument("--vs", nargs=2, action="append", default=[], metavar=("A", "B"),
                    help="also a page comparing A and B image by image (vs_A__B.md; repeatable; the results "
                         "folder's vs.txt lists pairs too)")
    lb.set_defaults(func=_cmd_leaderboard)

    cmp = sub.add_parser("compare", help="two tokenizers image by image from result files: paired differences, "
                                         "bootstrap intervals, sign tests (markdown)")
    cmp.add_argument("a", metavar="A", help="tokenizer name as in the results (A in the page)")
    cmp.add_argument("b", metavar="B", help="tokenizer name as in the results (B in the page)")
    cmp.add_argument("--results", default="runs", help="folder of result files (default: ./runs)")
    cmp.add_argument("--out", help="write the page to this file instead of printing it")
    cmp.set_defaults(func=_cmd_compare)

    bs = sub.add_parser("bench-speed", help="encode/decode images per second and peak memory on this machine")
    bs.add_argument("--tokenizer", required=True, help="name[:weights], comma-separated (name:random for any "
                                                       "architecture with random weights)")
    bs.add_argument("--batch-size", type=_integer(1), default=16, help="images per batch (>= 1; default 16)")
    bs.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                    help="fp32, or autocast to bf16/fp16 (fp16 on CUDA only; default fp32)")
    bs.add_argument("--resolution", type=_integer(8, MAX_RESOLUTION, multiple=8),
                    help="image size (default: the tokenizer's native one)")
    bs.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    bs.add_argument("--iters", type=_integer(1), default=10, help="timed iterations (>= 1; default 10)")
    bs.add_argument("--warmup", type=_integer(0), default=2, help="untimed warm-up iterations first (default 2)")
    bs.add_argument("--out", default="runs", help="results folder; files go to <out>/speed/<machine>/ "
                                                  "(default: ./runs, where `vtbench leaderboard` looks)")
    bs.set_defaults(func=_cmd_bench_speed)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe the user's input or machine: printed as one line. Anything else is a bug."""
    from .errors import VtbenchError

    return VtbenchError, OSError


def _kept(args) -> str:
    """What an interrupted command leaves behind."""
    if args.command == "run":
        return f"the results of finished tasks are kept in {args.out}/; the same command resumes after them"
    if args.command == "tokenize":
        return f"finished shards are kept in {args.out}/; the same command resumes after them"
    if args.command == "train":
        return f"the last checkpoint is kept in {_train_out(args)}/; the same command resumes from it"
    return "no file is left half-written"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "weights", None) and (not args.tokenizer or "," in args.tokenizer):
        parser.error("argument --weights: needs exactly one --tokenizer, the entry whose architecture the "
                     "checkpoint has")
    warnings.formatwarning = lambda message, *_args, **_kw: f"vtbench: warning: {message}\n"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print(f"vtbench: interrupted: {_kept(args)}", file=sys.stderr)
        return 130
    except _user_errors() as e:
        if args.debug:
            traceback.print_exc()
        print(f"vtbench: error: {e}", file=sys.stderr)
        return 2

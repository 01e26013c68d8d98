"""`vtbench bench-speed`: encode and decode throughput of a tokenizer, and its peak memory, on one machine.

A fixed seeded batch of uniform-noise images in [-1, 1] at the chosen resolution is encoded and the tokens
of each encode decoded, under ``torch.inference_mode()`` and, for bf16/fp16, ``torch.autocast``. Warm-up
iterations run first and are not timed; CUDA is synchronised before and after every timed region. Peak
memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset after the warm-up); elsewhere the process's peak
resident set size (``resource.getrusage``; on Linux reset after the warm-up through
``/proc/self/clear_refs``, so it covers the timed iterations, model and inputs included).

One result file per (machine, tokenizer, batch size, precision, resolution), schema ``vtbench.speed/1``:
``<out>/speed/<machine>/<tokenizer>.b<B>.<precision>.<R>px.json``, written atomically. Speed results are
not `vtbench.result/2` files: `results.load_results` skips them, `load_speed_results` reads them, and
`markdown` renders the leaderboard page (``speed.md``, one table per machine).
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import __version__
from ..common import write_atomic
from ..errors import VtbenchError
from .results import environment, git_commit, slug
from .runner import PRECISIONS, autocast, synchronize

SCHEMA = "vtbench.speed/1"
SEED = 0


class SpeedError(VtbenchError, ValueError):
    """A speed benchmark that cannot run as asked (a precision the device lacks, a size the tokenizer refuses)."""


@dataclass(frozen=True)
class SpeedConfig:
    batch_size: int = 16
    precision: str = "fp32"
    resolution: int | None = None  # None: the tokenizer's native resolution
    iters: int = 10
    warmup: int = 2


# --- machine ---------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Processor", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine(device: torch.device) -> dict:
    """What the numbers were measured on: CPU model, cores, torch threads, GPU name on CUDA, and a slug."""
    m = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
         "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    name = m["gpu"] if m["gpu"] else f"{m['cpu']} {m['cores']}cpu"
    m["slug"] = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"
    return m


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse precisions the device cannot autocast to before any model loads."""
    if precision not in PRECISIONS:
        raise SpeedError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise SpeedError("--precision fp16 needs a CUDA device: CPU autocast runs float16 only partly and "
                         "slowly, so its numbers would mislead; use bf16 or fp32 on the CPU")


# --- memory ----------------------------------------------------------------------------------------------
def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak-memory window; False when the peak cannot be reset (then it counts from process start)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:  # Linux: "5" resets the resident-set high-water mark that ru_maxrss reports
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory(device: torch.device) -> dict:
    """The peak since `reset_peak_memory`, in bytes, with what was measured and how."""
    if device.type == "cuda":
        return {"bytes": int(torch.cuda.max_memory_allocated(device)), "what": "CUDA memory allocated by torch",
                "method": "torch.cuda.max_memory_allocated"}
    try:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return {"bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale,
                "what": "process peak resident set size", "method": "resource.getrusage(RUSAGE_SELF).ru_maxrss"}
    except ImportError:  # Windows
        pass
    try:
        import psutil

        info = psutil.Process().memory_info()
        return {"bytes": int(getattr(info, "peak_wset", info.rss)), "what": "process peak resident set size",
                "method": "psutil.Process().memory_info()." + ("peak_wset" if hasattr(info, "peak_wset") else "rss")}
    except ImportError:
        return {"bytes": None, "what": "process peak resident set size", "method": "unavailable (no resource, psutil)"}


# --- measuring -------------------------------------------------------------------------------------------
def synthetic_batch(batch_size: int, resolution: int, device: torch.device) -> torch.Tensor:
    """The fixed seeded batch: uniform noise in [-1, 1], the same on every machine (drawn on the CPU)."""
    g = torch.Generator().manual_seed(SEED)
    return (torch.rand(batch_size, 3, resolution, resolution, generator=g) * 2 - 1).to(device)


def _timed(fn, device: torch.device):
    """``(fn(), seconds)``, with the device synchronised before and after."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - t0


def rates(seconds: list[float], batch_size: int) -> dict:
    """Images/s over the timed iterations: mean and (sample) std of the per-iteration rates, and the times."""
    per_iter = [batch_size / s for s in seconds]
    return {"images_per_s": {"mean": statistics.fmean(per_iter),
                             "std": statistics.stdev(per_iter) if len(per_iter) > 1 else 0.0},
            "seconds": seconds}


def measure(tok, cfg: SpeedConfig, device: torch.device) -> dict:
    """Time ``cfg.iters`` encodes and decodes after ``cfg.warmup`` untimed ones; peak memory of the timed part
    (with ``at_start_bytes``, what was held when it began: model, inputs, and on the CPU the interpreter)."""
    resolution = cfg.resolution or tok.info.resolution
    x = synthetic_batch(cfg.batch_size, resolution, device)
    seeded = {"generator": torch.Generator(device).manual_seed(SEED)} if tok.sampling_options else {}

    def once():
        tokens, enc = _timed(lambda: tok.encode(x), device)
        _, dec = _timed(lambda: tok.decode(tokens, **seeded), device)
        return enc, dec

    with torch.inference_mode(), autocast(device, cfg.precision):
        for _ in range(cfg.warmup):
            once()
        reset = reset_peak_memory(device)
        start = peak_memory(device)["bytes"] if reset else None  # right after a reset: what is held now
        timed = [once() for _ in range(cfg.iters)]
    memory = {**peak_memory(device), "reset_after_warmup": reset, "at_start_bytes": start}
    return {"encode": rates([e for e, _ in timed], cfg.batch_size),
            "decode": rates([d for _, d in timed], cfg.batch_size), "peak_memory": memory}


def run(tok, cfg: SpeedConfig, device: torch.device) -> dict:
    """The speed result of ``tok`` (already on ``device``) as a JSON-ready dict."""
    check_precision(cfg.precision, device)
    resolution = cfg.resolution or tok.info.resolution
    try:
        layout = tok.layout(resolution)
    except ValueError as e:
        raise SpeedError(str(e)) from None
    measured = measure(tok, cfg, device)
    return {
        "schema": SCHEMA,
        "vtbench_version": __version__,
        "git_commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tokenizer": {"name": tok.label, "registry_name": tok.registry_name, "family": tok.info.family,
                      "weights": asdict(tok.loaded_weights), "parameters": tok.num_parameters,
                      "tokens_per_image": layout.seq_len},
        "config": {**asdict(cfg), "resolution": resolution, "device": str(device), "seed": SEED,
                   "input": "uniform noise in [-1, 1], one fixed seeded batch; decode takes each encode's tokens"},
        "machine": machine(device),
        **measured,
        "environment": environment(device),
    }


# --- files -----------------------------------------------------------------------------------------------
def speed_path(out: Path, result: dict) -> Path:
    """``<out>/speed/<machine>/<tokenizer>.b<B>.<precision>.<R>px.json``."""
    c = result["config"]
    name = f"{slug(result['tokenizer']['name'])}.b{c['batch_size']}.{c['precision']}.{c['resolution']}px.json"
    return Path(out) / "speed" / result["machine"]["slug"] / name


def write(out: Path, result: dict) -> Path:
    """Write the result atomically; returns its path."""
    path = speed_path(out, result)
    write_atomic(path, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return path


def is_speed_result(path: Path) -> bool:
    """Whether the JSON file at ``path`` is a speed result (any ``vtbench.speed/`` schema version)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("vtbench.speed/")


def load_speed_results(folder: Path) -> list[dict]:
    """Every ``vtbench.speed/1`` file below ``folder``, in path order (other JSON files are ignored)."""
    out = []
    for p in sorted(Path(folder).rglob("*.json")):
        if is_speed_result(p):
            data = json.loads(p.read_text(encoding="utf-8"))
            if data["schema"] != SCHEMA:
                raise SpeedError(f"{p}: speed schema {data['schema']!r}, expected {SCHEMA!r} "
                                 "(`vtbench bench-speed` with the same options remeasures it)")
            data["_path"] = str(p.relative_to(folder))
            out.append(data)
    return out


# --- leaderboard -----------------------------------------------------------------------------------------
def _memory(m: dict) -> str:
    if m.get("bytes") is None:
        return "n/a"
    kind = "GPU" if m["method"].startswith("torch.cuda") else "RSS"
    return f"{m['bytes'] / 2**20:.0f} MiB {kind}"


def _rate(part: dict) -> str:
    r = part["images_per_s"]
    return f"{r['mean']:.4g} ± {r['std']:.2g}"


def markdown(results: list[dict]) -> str:
    """The speed page: one table per machine, a row per tokenizer, batch size, precision and resolution."""
    lines = ["# vtbench leaderboard: speed", "",
             "Generated by `vtbench leaderboard` from `vtbench bench-speed` result files; do not edit by hand. "
             "Images per second (mean ± std over the timed iterations, warm-up excluded) on a fixed batch of "
             "synthetic images; peak memory: GPU memory allocated by torch on CUDA, the process's peak resident "
             "set size on the CPU (model and inputs included). Numbers from different machines do not compare.",
             ""]
    by_machine: dict[str, list[dict]] = {}
    for r in results:
        by_machine.setdefault(r["machine"]["slug"], []).append(r)
    for key in sorted(by_machine):
        rs = by_machine[key]
        m = rs[0]["machine"]
        what = f"{m['gpu']} (host CPU: {m['cpu']}, {m['cores']} cores)" if m.get("gpu") else \
            f"{m['cpu']}, {m['cores']} cores"
        threads = sorted({r["machine"]["torch_threads"] for r in rs})
        lines += [f"## {what}", "", f"Machine `{key}`; torch threads: {', '.join(map(str, threads))}.", "",
                  "| Tokenizer | Batch | Precision | Resolution | Device | encode img/s ↑ | decode img/s ↑ "
                  "| peak memory |",
                  "|---|---:|---|---:|---|---:|---:|---:|"]
        order = sorted(rs, key=lambda r: (r["tokenizer"]["name"], r["config"]["batch_size"], r["config"]["precision"],
                                          r["config"]["resolution"]))
        for r in order:
            c, name = r["config"], r["tokenizer"]["name"]
            if r["tokenizer"]["weights"].get("tag") == "random":
                name += " (random weights)"
            lines.append(f"| {name} | {c['batch_size']} | {c['precision']} | {c['resolution']} | {c['device']} | "
                         f"{_rate(r['encode'])} | {_rate(r['decode'])} | {_memory(r['peak_memory'])} |")
        lines.append("")
    return "\n".join(lines)

"""`vtbench train`: train a mini-zoo tokenizer on the training corpus, resumably, with a recorded recipe.

Loss: L1 + LPIPS (AlexNet, the metric's own network) + the quantizer's own loss. Adam, linear warm-up,
cosine decay. Codes no encoder output has chosen for a while are re-seeded on recent encoder outputs.
A checkpoint is written every ``checkpoint_every`` steps; running the same command again resumes from it.
Checkpoints are read with torch's ``weights_only`` loader (tensors and plain data only), so a crafted
file placed as ``checkpoint.pt`` cannot run code; it is refused with `CheckpointError`.
The result is ``model.safetensors`` (float16) and ``config.json`` (model config, recipe, data manifest
and its hash, seed, final losses, wall time, machine).
"""

from __future__ import annotations

import io
import math
import pickle
import platform
import re
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import __version__
from .bench.networks import lpips_network
from .common import write_atomic
from .errors import UnknownName, VtbenchError
from .tokenizers.base import Tokenizer
from .tokenizers.mini import FAMILIES, Mini1DConfig, build, weights_dir
from .tokenizers.pretrained import save_pretrained
from .training_data import TrainingImages

CHECKPOINT_KEYS = ("model", "optimizer", "step", "history", "torch_rng", "data_rng")  # and "runs" (not in older ones)


class CheckpointError(VtbenchError):
    """``<out>/checkpoint.pt`` is not a checkpoint this trainer wrote."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 6000  # the shipped conv families' budget
    batch_size: int = 16
    crop: int | None = None  # None: 64 px crops for the conv families, the native resolution for the 1D ones
    lr: float = 1e-3
    warmup: int = 100
    lpips_weight: float = 1.0
    seed: int = 0
    restart_every: int = 200
    checkpoint_every: int = 250
    manifest: str = "mini-train"
    synthetic: int = 200  # generated text images and procedural textures, each
    precision: str = "fp32"  # "bf16": autocast the tokenizer and LPIPS to bfloat16 (quantizers stay float32)


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def init_vqgan_lc_codebook(model: Tokenizer, data: TrainingImages, cfg: TrainConfig, iters: int = 3) -> None:
    """Frozen codebook = k-means centres of LPIPS-AlexNet conv2 features (192-d, centred, unit norm) of
    training crops."""
    lp = lpips_network("alex")
    size = model.quantizer.codebook_features.shape[0]
    feats = []
    while sum(len(f) for f in feats) < 4 * size:
        h = lp.net.slice2(lp.net.slice1(lp.scaling_layer(data.batch(64, cfg.crop))))  # (B, 192, 7, 7)
        feats.append(h.movedim(1, -1).reshape(-1, h.shape[1]))
    # centred and l2-normalised, as the CLIP embeddings of the paper are, so that the projector starts with
    # codes spread around the encoder's outputs instead of a few large-norm activations winning every lookup
    feats = torch.cat(feats)
    feats = F.normalize(feats - feats.mean(0), dim=1)
    g = torch.Generator().manual_seed(cfg.seed)
    centres = feats[torch.randperm(len(feats), generator=g)[:size]].clone()
    for _ in range(iters):
        assign = torch.cat([torch.cdist(chunk, centres).argmin(1) for chunk in feats.split(4096)])
        sums = torch.zeros_like(centres).index_add_(0, assign, feats)
        counts = torch.bincount(assign, minlength=size).float()
        alive = counts > 0
        centres[alive] = sums[alive] / counts[alive, None]
    model.quantizer.codebook_features.copy_(centres)


@torch.no_grad()
def fit_post_training(model: Tokenizer, data: TrainingImages, cfg: TrainConfig, batches: int = 50) -> None:
    """TokenBridge: fit the dimension-wise quantizer's scale on the KL latent's posterior means."""
    mean = torch.cat([model.latents(data.batch(cfg.batch_size, cfg.crop)) for _ in range(batches)])
    model.quantizer.fit(mean)


def train(family: str, out: Path, cfg: TrainConfig = TrainConfig(), progress: bool = True,
          device: str | torch.device = "cpu") -> Path:
    """Train ``mini-<family>`` into ``out`` on ``device``; resumes from ``out/checkpoint.pt`` when it exists."""
    if family not in FAMILIES:
        raise UnknownName(f"unknown mini family {family!r}; families: {', '.join(FAMILIES)}")
    mcfg = FAMILIES[family]
    cfg = replace(cfg, crop=_crop(mcfg, cfg.crop))
    ckpt_path = out / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.is_file() else None  # before the slow data loading
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    data = TrainingImages(cfg.manifest, seed=cfg.seed, synthetic=cfg.synthetic)
    model = build(mcfg)
    started = time.perf_counter()

    if mcfg.quantizer == "tokenbridge":
        return _post_training(model, data, cfg, out, started)

    if mcfg.quantizer == "vqgan-lc":
        init_vqgan_lc_codebook(model, data, cfg)
    device = torch.device(device)
    model.to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.99))
    step, history, runs = 0, [], []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, runs = ckpt["step"], ckpt["history"], ckpt.get("runs", [])  # older checkpoints: none
        torch.set_rng_state(ckpt["torch_rng"])
        data.rng.bit_generator.state = ckpt["data_rng"]
    runs.append({"from_step": step, "recipe": asdict(cfg), "device": str(device), "threads": torch.get_num_threads()})
    perceptual = lpips_network("alex", str(device))
    model.train()
    recent = deque(history[-100:], maxlen=100)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train mini-{family}", disable=not progress)
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        loss, l1, lp, q_loss = training_loss(model, perceptual, data.batch(cfg.batch_size, cfg.crop).to(device), cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        row = {"step": step, "loss": loss.item(), "l1": l1.item(), "lpips": lp.item(), "quant": q_loss.item()}
        history.append(row)
        recent.append(row)
        if step % cfg.restart_every == 0 and step < cfg.steps * 0.8:
            restart = getattr(model.quantizer, "restart_dead_codes", None)
            if restart:
                row["restarted_codes"] = restart()
        bar.update(1)
        bar.set_postfix(l1=f"{l1.item():.3f}", lpips=f"{lp.item():.3f}", q=f"{q_loss.item():.3f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            runs[-1].update(to_step=step, wall_s=round(time.perf_counter() - started, 1))
            save_checkpoint(ckpt_path, model, opt, step, history, runs, data)
    bar.close()
    final = {k: float(np.mean([r[k] for r in recent])) for k in ("loss", "l1", "lpips", "quant")}
    record = _record(cfg, data, final, started, history, device)
    record["runs"] = runs
    save_pretrained(model.eval(), out, record, dtype=torch.float16)
    return out


def training_loss(model: Tokenizer, perceptual, x: torch.Tensor, cfg: TrainConfig):
    """(loss, L1, LPIPS, quantizer loss) of one batch, in the recipe's precision."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        y, q_loss = model(x)
        lp = perceptual(y, x).float().mean()
    l1 = (y.float() - x).abs().mean()
    return l1 + cfg.lpips_weight * lp + q_loss, l1, lp, q_loss


def _crop(mcfg, crop: int | None) -> int:
    if isinstance(mcfg, Mini1DConfig):  # fixed-resolution ViTs see whole training images at their resolution
        if crop not in (None, mcfg.resolution):
            raise VtbenchError(f"mini-{mcfg.family} is fixed at {mcfg.resolution} px; "
                               f"it cannot train on {crop} px crops")
        return mcfg.resolution
    return crop or 64


def _post_training(model, data, cfg, out, started) -> Path:
    from safetensors.torch import load_file

    source = FAMILIES["kl"]
    kl_dir = weights_dir("kl")
    if not (kl_dir / "model.safetensors").is_file():
        raise FileNotFoundError("mini-tokenbridge quantizes mini-kl's latent: train mini-kl first")
    state = {k: v.float() for k, v in load_file(str(kl_dir / "model.safetensors")).items()}
    # the KL bottleneck reads 2x the channels (mean and log-variance); keep only the mean's projection
    c = source.code_channels
    state["quant_conv.weight"], state["quant_conv.bias"] = state["quant_conv.weight"][:c], state["quant_conv.bias"][:c]
    own = model.state_dict()
    model.load_state_dict({**{k: v for k, v in own.items() if k.startswith("quantizer.")}, **state})
    model.eval()
    fit_post_training(model, data, cfg)
    record = _record(cfg, data, {}, started, [])
    record["post_training"] = {"from": "mini-kl", "value_range": float(model.quantizer.value_range)}
    save_pretrained(model, out, record, dtype=torch.float16)
    return out


def save_checkpoint(path: Path, model, opt, step, history, runs, data) -> None:
    """Everything a resumed run needs (tensors and plain data only), written atomically."""
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "history": history,
                "runs": runs, "torch_rng": torch.get_rng_state(), "data_rng": data.rng.bit_generator.state}, buf)
    write_atomic(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A checkpoint `save_checkpoint` wrote, unpickled with ``weights_only=True``: tensors, dicts, lists,
    numbers and strings are all it holds, and nothing else is accepted (so nothing else can run)."""
    fix = "delete it (or pass another --out) to train from the start"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        call = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if call:
            raise CheckpointError(f"{path} asks to call {call.group(1)} when loaded, which no checkpoint of "
                                  f"vtbench's trainer does; it was not loaded: {fix}") from None
        raise CheckpointError(f"{path} cannot be read as a training checkpoint (damaged, truncated or another "
                              f"format): {fix}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint (no {', '.join(missing)}): {fix}")
    return ckpt


def _record(cfg: TrainConfig, data: TrainingImages, final: dict, started: float, history: list,
            device: torch.device | str = "cpu") -> dict:
    return {
        "train": asdict(cfg),
        "data": data.describe(),
        "final_losses_last_100_steps": final,
        "loss_curve_every_100_steps": [r for r in history if r["step"] % 100 == 0],
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": {"device": str(device), "threads": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__},
        "vtbench_version": __version__,
    }

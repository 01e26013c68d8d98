"""Forward equivalence of `open-magvit2-256` / `open-magvit2-128` with Open-MAGVIT2's official tokenizer
(TencentARC/SEED-Voken, ``src/Open_MAGVIT2/models/lfqgan.py``).

    # SEED-Voken unpacked at /tmp/official/seedvoken, outside this repository
    pip install --target /tmp/deps_magvit einops
    python benchmarks/equivalence/open_magvit2.py --official /tmp/official/seedvoken --deps /tmp/deps_magvit

(``--variant`` 256, the default, or 128; ``--side`` defaults to the variant's resolution.)

The official ``VQModel`` is built as ``evaluation_image.py`` builds it, ``VQModel(**init_args)`` of
``configs/Open-MAGVIT2/gpu/imagenet_lfqgan_{256,128}_L.yaml`` (``use_ema: True``: a ``LitEma`` of every trainable
parameter, the discriminator's included), gets `common.fill_deterministic` weights (the EMA shadows are filled
by their own names, so they differ from the raw weights) and is saved as a Lightning checkpoint:
``{'state_dict', 'epoch', 'global_step', 'pytorch-lightning_version', 'hyper_parameters'}`` with the official
``state_dict()`` (generator, ``loss.*``, ``model_ema.*``). vtbench reads that file through
``read_state_dict`` (``weights_only=True``) with ``weights=PATH`` (default tag: EMA) and with the ``hub-raw``
converter. On astronaut and coffee it compares, against the official model in ``ema_scope`` (as the official
evaluation and reconstruction scripts run it): the bits (``quant > 0``), the joint indices (vtbench's
LSB-first pack against the official ``indices``), the images decoded from the official indices
(``quantize.get_codebook_entry`` + ``decode``), the official AR model's sub-tokens (an LFQ with
``token_factorization=True, factorized_bits=[6, 12]``, the AR configs' first stage, decoded as
``Net2NetTransformer.decode_to_img`` does) and the reconstructions (``decode(quant)``, clamped as the official
evaluation clamps; ``quant`` is the straight-through ``x + (q - x)``, which float rounding can leave an ulp off
+-1, where vtbench decodes +-1 exactly); then the raw weights against the official model outside ``ema_scope``.
Stubs: ``lightning`` (a ``LightningModule`` that is a plain ``nn.Module``: nothing of it runs at inference) and
``main`` (its ``instantiate_from_config``: ``target`` / ``params``), whose imports pull in the Lightning CLI;
the LPIPS of the loss gets a randomly initialised VGG-16 instead of downloading ImageNet and LPIPS weights (its
tensors are still in the saved file, as in the release). Only einops is needed beyond vtbench's environment
(which has the torchvision, PyYAML, requests and tqdm the official modules import).
``--dump-keys FILE`` writes the generator's keys (the official key list in ``tests/official_keys``) and exits.
Exits 1 when fewer than 99.9% of the bits or 99% of the indices agree, or an image differs by more than 1e-4.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
import torchvision
import yaml
from common import agreement, fill_deterministic, max_diff, parse_args, photos, print_header
from torch import nn

from vtbench.tokenizers import create_tokenizer, get_entry, load_tokenizer, pack
from vtbench.tokenizers.open_magvit2 import VARIANTS
from vtbench.tokenizers.weights import load_strict, read_state_dict

TOLERANCE = 1e-4
CONFIGS = {256: "imagenet_lfqgan_256_L.yaml", 128: "imagenet_lfqgan_128_L.yaml"}
KEY_FILE = "src/Open_MAGVIT2/modules/diffusionmodules/improved_model.py"


def import_official():
    """``VQModel`` and ``LFQ`` with the stubs the module docstring lists."""
    lightning = types.ModuleType("lightning")
    lightning.LightningModule = type("LightningModule", (nn.Module,), {})
    main = types.ModuleType("main")

    def instantiate_from_config(config):
        module, name = config["target"].rsplit(".", 1)
        return getattr(importlib.import_module(module), name)(**config.get("params", {}))

    main.instantiate_from_config = instantiate_from_config
    sys.modules.update(lightning=lightning, main=main)
    from src.Open_MAGVIT2.modules.losses import lpips

    lpips.models = types.SimpleNamespace(vgg16=lambda pretrained: torchvision.models.vgg16(weights=None))
    lpips.LPIPS.load_from_pretrained = lambda self, name="vgg_lpips": None
    from src.Open_MAGVIT2.models.lfqgan import VQModel
    from src.Open_MAGVIT2.modules.vqvae.lookup_free_quantize import LFQ

    return VQModel, LFQ


def build_official(repo: Path, variant: int):
    VQModel, LFQ = import_official()
    init_args = yaml.safe_load((repo / "configs/Open-MAGVIT2/gpu" / CONFIGS[variant]).read_text())["model"]["init_args"]
    model = VQModel(**init_args).eval()
    factorized = LFQ(dim=18, codebook_size=2 ** 18, token_factorization=True, factorized_bits=[6, 12])
    return model, factorized, init_args


def dump_keys(model, path: Path, variant: int, repo: Path) -> None:
    keys = {k: v for k, v in model.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    others = sorted({k.split(".")[0] + "." for k in model.state_dict()} - {"encoder.", "decoder."})
    data = (repo / KEY_FILE).read_bytes()
    blob = hashlib.sha1(b"blob %d" % len(data) + bytes(1) + data).hexdigest()
    lines = [f"# Open-MAGVIT2 ImageNet {variant} (configs/Open-MAGVIT2/gpu/{CONFIGS[variant]}): the generator keys "
             f"of VQModel(**init_args).state_dict(), {len(keys)} entries, {sum(v.numel() for v in keys.values()):,} "
             "elements",
             f"# dumped by benchmarks/equivalence/open_magvit2.py --dump-keys ({KEY_FILE} blob {blob}); the "
             f"checkpoint also holds {', '.join(others)} (training losses; LitEma shadows under dot-stripped names)"]
    lines += [f"{k}\t{tuple(v.shape)}\t{str(v.dtype).removeprefix('torch.')}" for k, v in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(keys)} keys to {path}")


def lightning_checkpoint(model, init_args: dict, path: Path) -> dict:
    """The released file's layout: a Lightning checkpoint whose tensors are under ``state_dict``."""
    state = model.state_dict()
    torch.save({"state_dict": state, "epoch": 269, "global_step": 1_350_000, "pytorch-lightning_version": "2.2.1",
                "hyper_parameters": init_args}, path)
    groups = {}
    for k in state:
        ema = k.startswith("model_ema.")
        short = k.removeprefix("model_ema.")
        what = "loss" if short.startswith("loss") else "counter" if short in ("decay", "num_updates") else "generator"
        groups[("model_ema " if ema else "") + what] = groups.get(("model_ema " if ema else "") + what, 0) + 1
    print("saved state_dict entries:", ", ".join(f"{n} {g}" for g, n in groups.items()))
    return state


def official_codes(model, factorized, x):
    """The official forward: (quant, joint indices (B, h, w), bits (B, h, w, 18), (pre, post) (B, h*w))."""
    quant, _, indices, _ = model.encode(x)
    b, d, h, w = quant.shape
    _, _, (pre, post) = factorized(model.encoder(x))
    return quant, indices.view(b, h, w), (quant > 0).long().movedim(1, -1), (pre.view(b, -1), post.view(b, -1))


def official_decode_indices(model, indices):
    """The decoder's output (not clamped) from the joint indices (B, h, w)."""
    b, h, w = indices.shape
    return model.decode(model.quantize.get_codebook_entry(indices.view(b, -1), (b, h, w, 18), None))


def official_decode_subtokens(model, factorized, pre, post, h, w):
    """``Net2NetTransformer.decode_to_img`` with token factorization."""
    b = pre.shape[0]
    q = torch.cat([factorized.get_codebook_entry(pre, (b, h, w, 6), "pre"),
                   factorized.get_codebook_entry(post, (b, h, w, 12), "post")], dim=1)
    return model.decode(q).clamp(-1, 1)


def check_ema(model, factorized, ours, x) -> list[bool]:
    with model.ema_scope():
        quant, indices, bits, (pre, post) = official_codes(model, factorized, x)
        theirs_rec = model.decode(quant).clamp(-1, 1)
        theirs_from_indices = official_decode_indices(model, indices)
        h, w = indices.shape[1:]
        theirs_from_subtokens = official_decode_subtokens(model, factorized, pre, post, h, w)
    tokens = ours.encode(x)
    ok = [agreement("EMA bits", tokens.indices, bits) >= 0.999,
          agreement("EMA indices (LSB first)", tokens.joint_ids(), indices) >= 0.99,
          agreement("EMA AR sub-tokens pre (6)", pack(tokens.indices[..., :6], (2,) * 6, "lsb"), pre) >= 0.99,
          agreement("EMA AR sub-tokens post (12)", pack(tokens.indices[..., 6:], (2,) * 12, "lsb"), post) >= 0.99]
    print(f"{'(official decode)':<28} {100 * (theirs_from_indices.abs() > 1).float().mean():.1f}% of the pixels "
          f"outside [-1, 1], max |value| {theirs_from_indices.abs().max():.2f}")
    ours_unclamped = ours.decoder(ours.quantize.dequantize(ours.tokens_from_indices(indices).indices))
    ok.append(max_diff("EMA decoder, not clamped", ours_unclamped, theirs_from_indices) <= TOLERANCE)
    ok.append(max_diff("EMA decode(official index)", ours.decode_indices(indices), theirs_from_indices.clamp(-1, 1))
              <= TOLERANCE)
    ok.append(max_diff("EMA decode(AR sub-tokens)", ours.decode_indices((pre, post)), theirs_from_subtokens)
              <= TOLERANCE)
    ok.append(max_diff("EMA reconstruction", ours.decode(tokens), theirs_rec) <= TOLERANCE)
    return ok


def check_raw(model, raw, x) -> list[bool]:
    quant, _, indices, _ = model.encode(x)
    theirs_rec = model.decode(quant).clamp(-1, 1)
    tokens = raw.encode(x)
    ok = [agreement("raw indices", tokens.joint_ids(), indices) >= 0.99,
          max_diff("raw reconstruction", raw.decode(tokens), theirs_rec) <= TOLERANCE]
    with model.ema_scope():
        ema_rec = model.decode(model.encode(x)[0]).clamp(-1, 1)
    max_diff("(official EMA vs raw)", ema_rec, theirs_rec)  # how far apart the two weight sets are
    return ok


def main():
    def own(p):
        p.add_argument("--variant", type=int, default=256, choices=sorted(CONFIGS))
        p.add_argument("--dump-keys", type=Path, help="write the official generator keys to this file and exit")
        p.set_defaults(side=None)

    args = parse_args(__doc__, own)
    start = time.time()
    print_header("Open-MAGVIT2", args.official, KEY_FILE)
    torch.set_grad_enabled(False)
    name = f"open-magvit2-{args.variant}"
    model, factorized, init_args = build_official(args.official, args.variant)
    if args.dump_keys:
        dump_keys(model, args.dump_keys, args.variant, args.official)
        return
    fill_deterministic(model)
    side = args.side or VARIANTS[name][0].resolution
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"imagenet_{args.variant}_L.ckpt"
        lightning_checkpoint(model, init_args, path)
        ours = load_tokenizer(name, weights=path)
        raw = create_tokenizer(name).eval()
        load_strict(raw, get_entry(name).weights["hub-raw"].state_dict({"model": read_state_dict(path)}), str(path))
    x = photos(side=side)
    print(f"{name} at {side} px on {x.shape[0]} photos")
    ok = check_ema(model, factorized, ours, x) + check_raw(model, raw, x)
    print(f"{time.time() - start:.0f} s")
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

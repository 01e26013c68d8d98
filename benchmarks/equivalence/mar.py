"""Forward equivalence of `mar-kl16` with MAR's official KL-16 VAE (LTH14/mar ``models/vae.py``) and of
`tokenbridge-kl16` with TokenBridge's official post-training quantizer (YuqingWang1029/TokenBridge,
``post_training_quantize`` in ``reconstruction.py``, the function its README runs for the rFID it reports).

    git clone https://github.com/LTH14/mar /tmp/official/mar                    # anywhere outside this repository
    git clone https://github.com/YuqingWang1029/TokenBridge /tmp/official/tokenbridge
    python benchmarks/equivalence/mar.py --official /tmp/official/mar --tokenbridge /tmp/official/tokenbridge

The official ``AutoencoderKL(embed_dim=16, ch_mult=(1, 1, 2, 2, 4))`` gets `common.fill_deterministic` weights,
saved as ``{"model": ...}`` like ``kl16.ckpt`` and loaded by both vtbench entries with ``weights=PATH``. On
astronaut and coffee at 256 px it compares the posterior (mean and log-variance), the images decoded from the
official latents, and, for TokenBridge, the level indices of the official quantizer (6 bits, range 5) against
vtbench's, on the photos' scaled latents and on 16.4 million normal values spread over the whole range (which puts
values next to every decision boundary), then the images decoded from the official levels.
``post_training_quantize`` is taken from ``reconstruction.py`` by itself (its module imports torch_fidelity
and datasets it does not use) and run with scipy's ``norm`` as that module imports it. The MAR file is also
TokenBridge's (its ``models/vae.py`` is the same file).
Exits 1 when an index differs or an image or latent differs by more than 1e-4.
"""

from __future__ import annotations

import ast
import math
import tempfile
from pathlib import Path

import torch
from common import agreement, fill_deterministic, max_diff, parse_args, photos, print_header

from vtbench.tokenizers import load_tokenizer
from vtbench.tokenizers.mar import CHANNEL_ORDER

TOLERANCE, SCALE, BITS, RANGE = 1e-4, 0.2325, 6, 5.0


def official_quantizer(repo: Path):
    """``post_training_quantize`` alone, compiled from the official file."""
    from scipy.stats import norm

    source = (repo / "reconstruction.py").read_text()
    [fn] = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "post_training_quantize"]
    scope = {"torch": torch, "math": math, "norm": norm}
    exec(compile(ast.Module([fn], []), str(repo / "reconstruction.py"), "exec"), scope)
    return scope["post_training_quantize"]


def main():
    args = parse_args(__doc__, lambda p: p.add_argument("--tokenbridge", required=True, type=Path,
                                                        help="the unpacked TokenBridge repository"))
    tokenbridge = args.tokenbridge
    print_header("MAR", args.official, "models/vae.py")
    print_header("TokenBridge", tokenbridge, "reconstruction.py")
    torch.set_grad_enabled(False)
    from models.vae import AutoencoderKL

    official = AutoencoderKL(embed_dim=16, ch_mult=(1, 1, 2, 2, 4)).eval()
    fill_deterministic(official)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kl16.ckpt"
        torch.save({"model": official.state_dict()}, path)
        mar = load_tokenizer("mar-kl16", weights=path)
        bridge = load_tokenizer("tokenbridge-kl16", weights=path)
    x = photos(side=256)
    posterior, ours = official.encode(x), mar.encode_posterior(x)
    ok = [max_diff("posterior mean", ours.mean, posterior.mean) <= TOLERANCE,
          max_diff("posterior log-variance", ours.logvar, posterior.logvar) <= TOLERANCE,
          max_diff("decode(official mean)", mar.decode(mar.encode(x)), official.decode(posterior.mean)) <= TOLERANCE]

    quantize = official_quantizer(tokenbridge)
    scaled = posterior.mean * SCALE
    idx, dequant = quantize(scaled.permute(0, 2, 3, 1), BITS, -RANGE, RANGE)
    tokens = bridge.encode(x)
    order = list(CHANNEL_ORDER)
    ok.append(agreement("levels of the photos", tokens.indices, idx[..., order]) == 1.0)
    draws = torch.randn(1000, 32, 32, 16, generator=torch.Generator().manual_seed(0)) * 2.2
    ok.append(agreement("levels of 16.4e6 normal values", bridge.quantize(draws.permute(0, 3, 1, 2)).codes,
                        quantize(draws, BITS, -RANGE, RANGE)[0][..., order]) == 1.0)
    print(f"{'distinct levels (photos)':<28} {idx.unique().numel()} of {2 ** BITS}")
    theirs = official.decode(dequant.permute(0, 3, 1, 2) / SCALE)
    ok.append(max_diff("decode(official levels)", bridge.decode(tokens), theirs) <= TOLERANCE)
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

"""Forward equivalence of `vqgan-lc-f16` and `vqgan-lc-f8` with the official VQGAN-LC (zh460045050/VQGAN-LC,
``vqgan-gpt-lc/models/models_vq.py``).

    git clone https://github.com/zh460045050/VQGAN-LC /tmp/official/vqganlc   # anywhere outside this repository
    pip install --target /tmp/offdeps_lc einops omegaconf
    python benchmarks/equivalence/vqgan_lc.py --official /tmp/official/vqganlc/vqgan-gpt-lc --deps /tmp/offdeps_lc

The official VQModel is built as the official loaders build it (``load_config`` of ``vqgan_configs/vq-f16.yaml``
or ``vq-f8.yaml``, and the arguments of ``runTestVQ.sh``: a fixed 100,000-entry codebook of 768-dim features,
a linear ``codebook_projection`` to ``embed_dim`` 8 at f16, 4 at f8 as in ``ldm-lc``'s f8 config). Its
LPIPS (which fetches VGG weights) is replaced by a stub without parameters that scores 0, and the codebook file it
reads at construction by zeros. `common.fill_deterministic` then fills it, and the codebook is moved so that
lookups have real choices to make: the projected codebook should be `common.codebook_from_features` of the
model's own ``quant_conv`` features of the photos, so each row of ``tok_embeddings`` is shifted, within the row
space of the projection (by the pseudo-inverse), to the nearest row that projects onto its target; what lies
in the projection's null space stays as filled. The state dict, with the discriminator it holds and a stand-in
``perceptual_loss`` entry, is saved as ``{"state_dict": ...}`` like the released files and loaded by vtbench
with ``weights=PATH``. On astronaut and coffee at 256 px it compares the indices (official ``encode_to_z`` of
``models_gpt.py``), the images decoded from the official indices (official ``z_to_image``: the model's own
``decode_code`` is broken) and the full reconstructions (the official forward pass, as ``eval_reconstruction.py``
runs it). Exits 1 when fewer than 99% of the indices agree or an image differs by more than 1e-3.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import types
from argparse import Namespace
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    agreement,
    codebook_from_features,
    fill_deterministic,
    max_diff,
    parse_args,
    photos,
    print_header,
)

from vtbench.tokenizers import load_tokenizer

CODES, FEATURE_DIM = 100_000, 768
#: entry -> (official config, embed_dim)
VARIANTS = {"vqgan-lc-f16": ("vq-f16.yaml", 8), "vqgan-lc-f8": ("vq-f8.yaml", 4)}
MIN_AGREEMENT, TOLERANCE = 0.99, 1e-3


class NoLPIPS(torch.nn.Module):
    """Stands in for the official LPIPS, which needs downloaded VGG weights and is training-only."""

    def forward(self, x, y):
        return x.new_zeros(())


def official_model(repo: Path, config: str, embed_dim: int, codebook_file: Path):
    stub = sys.modules["models.lpips"] = types.ModuleType("models.lpips")
    stub.LPIPS = NoLPIPS
    from models.models_gpt import VQGANTransformer, load_config
    from models.models_vq import VQModel

    args = Namespace(stage=1, embed_dim=embed_dim, n_vision_words=CODES, local_embedding_path=str(codebook_file),
                     tuning_codebook=0, use_cblinear=1, quantizer_type="org", rate_p=1.0, rate_q=1.0)
    with contextlib.redirect_stdout(io.StringIO()):  # the constructor's progress messages
        model = VQModel(args=args, **load_config(str(repo / "vqgan_configs" / config)).model.params).eval()
    return model, types.SimpleNamespace(vqgan=model, args=args), VQGANTransformer


def fill(model, x: torch.Tensor) -> None:
    """`fill_deterministic`, then shift ``tok_embeddings`` so that its projection is a codebook of the
    photos' own features (see the module docstring)."""
    fill_deterministic(model)
    z = model.quant_conv(model.encoder(x))
    target = codebook_from_features(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), CODES).double()
    w, proj = model.tok_embeddings.weight, model.codebook_projection
    a, b = proj.weight.double(), proj.bias.double()
    w.copy_(w.double() + (target - F.linear(w.double(), a, b)) @ torch.linalg.pinv(a).T)


def check(name: str, config: str, embed_dim: int, repo: Path, tmp: Path, x: torch.Tensor) -> list[bool]:
    official, gpt_self, gpt = official_model(repo, config, embed_dim, tmp / "codebook-100K.pth")
    fill(official, x)
    path = tmp / f"{name}.pth"
    sd = dict(official.state_dict(), **{"perceptual_loss.lin0.model.1.weight": torch.zeros(1, 64, 1, 1)})
    torch.save({"state_dict": sd}, path)
    del sd
    ours = load_tokenizer(name, weights=path)
    path.unlink()

    quant, idx = gpt.encode_to_z(gpt_self, x)
    side = quant.shape[-1]
    print(f"{name}: {idx.unique().numel()} distinct codes of {CODES:,} over both photos ({idx.numel()} tokens)")
    tokens = ours.encode(x)
    ok = [agreement(f"{name} indices", tokens.indices, idx) >= MIN_AGREEMENT]
    ok.append(max_diff(f"{name} decode(official idx)", ours.decode_indices(idx),
                       gpt.z_to_image(gpt_self, idx, side, side)) <= TOLERANCE)
    rec = official(x, None, 0, step=0, is_val=True)[-1]
    ok.append(max_diff(f"{name} reconstruction", ours.decode(tokens), rec) <= TOLERANCE)
    return ok


def main():
    args = parse_args(__doc__)
    print_header("VQGAN-LC", args.official, "models/models_vq.py")
    torch.set_grad_enabled(False)
    x = photos(side=args.side)
    ok = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(torch.zeros(CODES, FEATURE_DIM), Path(tmp) / "codebook-100K.pth")
        for name, (config, embed_dim) in VARIANTS.items():
            ok += check(name, config, embed_dim, args.official, Path(tmp), x)
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

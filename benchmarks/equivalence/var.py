"""Forward equivalence of `var-vqvae` with VAR's official VQVAE (FoundationVision/VAR, ``models/vqvae.py``).

    git clone https://github.com/FoundationVision/VAR /tmp/official/var   # anywhere outside this repository
    python benchmarks/equivalence/var.py --official /tmp/official/var

The official VQVAE (ch 160, 4096 codes of 32 dims, 4 shared phis) gets `common.fill_deterministic` weights
and a codebook drawn from its own encoder features of the photos (at a spread of magnitudes, since the
coarse scales see averaged residuals); the state dict is saved flat, as the released
``vae_ch160v4096z32.pth`` is, and loaded by vtbench with ``weights=PATH``. At 256 and 512 px, on astronaut
and coffee, it compares: the indices of every scale (official ``img_to_idxBl``), the images decoded from
the official indices (``idxBl_to_img``), the full reconstructions, the teacher-forcing inputs
(``idxBl_to_var_input``) and the generation steps (``get_next_autoregressive_input``).
Exits 1 when fewer than 99.9% of the indices agree or an image or feature differs by more than 1e-4.
"""

from __future__ import annotations

import tempfile
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
from vtbench.tokenizers.var import PATCH_NUMS_256, PATCH_NUMS_512

TOLERANCE = 1e-4


def official_vqvae(patch_nums):
    from models.vqvae import VQVAE

    return VQVAE(vocab_size=4096, z_channels=32, ch=160, share_quant_resi=4, v_patch_nums=patch_nums,
                 test_mode=True)


def check(official, ours, x, patch_nums) -> list[bool]:
    ok = []
    side = x.shape[-1]
    idx = official.img_to_idxBl(x)
    tokens = ours.encode(x)
    for k, (a, b) in enumerate(zip(tokens.scales, idx)):
        ok.append(agreement(f"{side}px scale {k} ({patch_nums[k]}x{patch_nums[k]})", a, b) >= 0.999)
    seq = torch.cat(idx, 1)
    ok.append(max_diff(f"{side}px decode(official idx)", ours.decode_indices(seq),
                       official.idxBl_to_img(idx, same_shape=True, last_one=True)) <= TOLERANCE)
    ok.append(max_diff(f"{side}px reconstruction", ours.decode(tokens),
                       official.img_to_reconstructed_img(x, last_one=True)) <= TOLERANCE)
    theirs = ours.unflat(seq)
    ok.append(max_diff(f"{side}px teacher forcing", ours.teacher_forcing_inputs(theirs),
                       official.quantize.idxBl_to_var_input(idx)) <= TOLERANCE)
    f_ours = f_theirs = None
    shapes = [(s, s) for s in patch_nums]
    for k, codes in enumerate(theirs.scales):
        h = official.quantize.embedding(codes).permute(0, 3, 1, 2)
        f_theirs = torch.zeros(len(x), 32, side // 16, side // 16) if f_theirs is None else f_theirs
        f_theirs, nxt_theirs = official.quantize.get_next_autoregressive_input(k, len(patch_nums), f_theirs, h)
        f_ours, nxt_ours = ours.next_scale_input(k, f_ours, codes, shapes)
    ok.append(max_diff(f"{side}px generation steps", nxt_ours, nxt_theirs) <= TOLERANCE)
    return ok


def main():
    args = parse_args(__doc__)
    print_header("VAR", args.official, "models/quant.py")
    torch.set_grad_enabled(False)
    official = official_vqvae(PATCH_NUMS_256)
    fill_deterministic(official)
    z = official.quant_conv(official.encoder(photos(side=256)))
    features = z.permute(0, 2, 3, 1).reshape(-1, 32)
    coarse = F.interpolate(z, size=(4, 4), mode="area").permute(0, 2, 3, 1).reshape(-1, 32)
    official.quantize.embedding.weight.copy_(codebook_from_features(torch.cat([features, coarse]), 4096))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vae_ch160v4096z32.pth"
        torch.save(official.state_dict(), path)
        ours = load_tokenizer("var-vqvae", weights=path)
    ok = []
    for patch_nums in (PATCH_NUMS_256, PATCH_NUMS_512):
        side = patch_nums[-1] * 16
        other = official_vqvae(patch_nums)
        other.load_state_dict(official.state_dict())
        used = torch.cat(other.img_to_idxBl(photos(side=side)), 1).unique().numel()
        print(f"{side}px: {used} distinct codes over both photos")
        ok += check(other, ours, photos(side=side), patch_nums)
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

"""Forward equivalence of `infinity-vae-d*` with Infinity's official bitwise VAE (FoundationVision/Infinity,
``infinity/models/bsq_vae/``).

    git clone https://github.com/FoundationVision/Infinity /tmp/official/infinity   # outside this repository
    pip install --target /tmp/offdeps_inf einops
    python benchmarks/equivalence/infinity.py --official /tmp/official/infinity --deps /tmp/offdeps_inf --d 32

(``--d`` 16, 24, 32 or 64; ``--sizes 256,512`` by default.)

The official VAE is built by ``vae.vae_model`` as ``tools/run_infinity.py`` builds it (``schedule_mode="dynamic"``,
patch 16, ch_mult 1,2,4,4,4, d bits), gets `common.fill_deterministic` weights, and is saved as the released
file is (``{'vae': state_dict}``, wrapped names, the ``mask`` buffers included); vtbench loads that file with
``weights=PATH``. At 256 and 512 px (7 and 10 scales), on astronaut and coffee, it compares: the bits of every
scale (official ``encode``), the images decoded from the official bits (``decode_from_indices`` with
``label_type='bit_label'``, fed to vtbench as the official per-scale ``(B, 1, h, w, d)`` tensors), the full
reconstructions (official ``decode`` of the quantized sum, given in channels-last layout as the sum of decoded
bits is: the official decoder alone differs by about 2e-4 between the two layouts on a CPU at 512 px, which
the script prints as "official layout noise"), the teacher-forcing inputs and bits of training
(``BitwiseSelfCorrection.flip_requant`` without noise) and the generation-time next-scale inputs (the steps
of ``Infinity.autoregressive_infer_cfg``, restated here with the official ``indices_to_codes`` and
interpolation mode, since the transformer is not built).
Stubs: the package ``infinity`` and ``infinity.models`` are registered as bare namespaces, so their
``__init__`` (which imports the transformer, timm and flash-attention) does not run; only einops is needed.
Exits 1 when fewer than 99.9% of the bits agree or an image or feature differs by more than 1e-4.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from common import agreement, fill_deterministic, max_diff, parse_args, photos, print_header

from vtbench.tokenizers import load_tokenizer

TOLERANCE = 1e-4
SIDES = {256: (1, 2, 4, 6, 8, 12, 16), 512: (1, 2, 4, 6, 8, 12, 16, 20, 24, 32)}


def import_official(repo: Path):
    """The official VAE modules without the package ``__init__`` files' heavy imports."""
    for name, folder in (("infinity", repo / "infinity"), ("infinity.models", repo / "infinity" / "models")):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(folder)]
            sys.modules[name] = module
    from infinity.models.bitwise_self_correction import BitwiseSelfCorrection
    from infinity.models.bsq_vae.vae import vae_model

    return vae_model, BitwiseSelfCorrection


def check(official, bsc, ours, x, sides, d) -> list[bool]:
    ok = []
    side = x.shape[-1]
    schedule = [(1, s, s) for s in sides]
    h, z, _, bits, _, _ = official.encode(x, scale_schedule=schedule)
    tokens = ours.encode(x)
    for k, (a, b) in enumerate(zip(tokens.scales, bits)):
        ok.append(agreement(f"{side}px scale {k} ({sides[k]}x{sides[k]}) bits", a, b.squeeze(1)) >= 0.999)
    _, theirs_img = official.decode_from_indices(bits, schedule, "bit_label")
    ok.append(max_diff(f"{side}px decode(official bits)", ours.decode_indices(list(bits)), theirs_img) <= TOLERANCE)
    # the official decode of its forward's sum takes a contiguous tensor, its decode of bits (and generation) a
    # channels-last one; CPU convolutions round differently in the two layouts, so the reconstruction is compared
    # in vtbench's (channels-last) layout, and the official decoder's own layout difference is printed beside it
    theirs_cl = official.decode(z.contiguous(memory_format=torch.channels_last))
    ok.append(max_diff(f"{side}px reconstruction", ours.decode(tokens), theirs_cl) <= TOLERANCE)
    max_diff(f"{side}px (official layout noise)", official.decode(z), theirs_cl)
    # training: flip_requant without noise gives the teacher-forcing inputs and the bit labels
    tf_theirs, labels = bsc.flip_requant(schedule, x, h, x.device)
    train_bits = torch.cat([lab.reshape(len(x), -1, d) for lab in labels], 1)
    ok.append(agreement(f"{side}px training labels", tokens.flat(), train_bits) >= 0.999)
    theirs_tokens = ours.tokens_from_indices(labels)  # the (B, h*w, d) form
    ok.append(max_diff(f"{side}px teacher forcing", ours.teacher_forcing_inputs(theirs_tokens), tf_theirs)
              <= TOLERANCE)
    # generation: autoregressive_infer_cfg's running sum and next-scale input, from the official bits
    summed, f_ours, worst = 0, None, 0.0
    shapes = [(s, s) for s in sides]
    for k, b in enumerate(bits):
        codes = official.quantizer.lfq.indices_to_codes(b, label_type="bit_label")
        f_ours, nxt_ours = ours.next_scale_input(k, f_ours, b.squeeze(1), shapes)
        if k != len(bits) - 1:
            summed = summed + F.interpolate(codes, size=schedule[-1], mode=official.quantizer.z_interplote_up)
            nxt = F.interpolate(summed, size=schedule[k + 1], mode=official.quantizer.z_interplote_up).squeeze(2)
        else:
            summed = summed + codes
            nxt = summed.squeeze(2)
        worst = max(worst, (nxt_ours - nxt).abs().max().item())
    print(f"{f'{side}px generation steps':<28} max |difference| {worst:.3e} (every scale's input)")
    ok.append(worst <= TOLERANCE)
    return ok


def main():
    def own(p):
        p.add_argument("--d", type=int, default=32, choices=(16, 24, 32, 64))
        p.add_argument("--sizes", default="256,512", help="comma-separated input sides (256: 7 scales, 512: 10)")

    args = parse_args(__doc__, own)
    d = args.d
    print_header("Infinity", args.official, "infinity/models/bsq_vae/multiscale_bsq.py")
    vae_model, BitwiseSelfCorrection = import_official(args.official)
    torch.set_grad_enabled(False)
    official = vae_model(None, "dynamic", d, 2 ** d, patch_size=16, encoder_ch_mult=[1, 2, 4, 4, 4],
                         decoder_ch_mult=[1, 2, 4, 4, 4], test_mode=True)
    fill_deterministic(official)
    bsc = BitwiseSelfCorrection(official, argparse.Namespace(
        noise_apply_layers=0, noise_apply_requant=0, noise_apply_strength=0.0, apply_spatial_patchify=0,
        debug_bsc=0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"infinity_vae_d{d}.pth"
        torch.save({"vae": official.state_dict()}, path)
        ours = load_tokenizer(f"infinity-vae-d{d}", weights=path)
    ok = []
    for side in (int(s) for s in args.sizes.split(",")):
        ok += check(official, bsc, ours, photos(side=side), SIDES[side], d)
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

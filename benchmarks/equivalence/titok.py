"""Forward equivalence of the `titok-*` entries with the official TiTok (bytedance/1d-tokenizer,
``modeling/titok.py``).

    git clone https://github.com/bytedance/1d-tokenizer /tmp/official/titok   # anywhere outside this repository
    pip install --target /tmp/deps_titok --no-deps einops omegaconf antlr4-python3-runtime==4.9.3 accelerate psutil
    python benchmarks/equivalence/titok.py --official /tmp/official/titok --deps /tmp/deps_titok --variant s128

The official ``TiTok`` is built from its inference config (``configs/infer/TiTok/titok_<variant>.yaml``) as
``demo_util.get_titok_tokenizer`` builds it; nothing is stubbed (``accelerate`` and ``huggingface_hub`` are
imported by the official modules, unused here). `common.fill_deterministic` fills it; for the VQ variants the
codebook is then `common.codebook_from_features` of the model's own token features of the photos, so lookups
make real choices. The state dict is saved flat as ``model.safetensors``, as the hub files are, and loaded by
vtbench with ``weights=PATH``. Images go in as the official demo feeds them, in [0, 1]; on astronaut and
coffee at 256 px it compares:

* VQ: the indices (official ``encode(x)[1]["min_encoding_indices"]``), for the two-stage variants the
  decoder's logits over the MaskGIT-VQGAN codes, the images decoded from the official indices
  (``decode_tokens``) and the reconstructions (official ``forward``);
* VAE: the posterior mean and log-variance, the images decoded from the official mean and the
  reconstructions from the mean.

Both sides' images are clamped to [0, 1] as the official demo does; the share of pixels inside (0, 1) is
printed so a saturated comparison shows. Exits 1 when fewer than 99.9% of the indices agree or a feature or
an image differs by more than 1e-4.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from common import agreement, codebook_from_features, fill_deterministic, max_diff, parse_args, photos, print_header

from vtbench.tokenizers import Tokens, load_tokenizer

MIN_AGREEMENT, TOLERANCE = 0.999, 1e-4
#: official config name -> vtbench entry
ENTRIES = {"l32": "titok-l32", "b64": "titok-b64", "s128": "titok-s128", "bl64_vq8k": "titok-bl64-vq8k",
           "bl128_vq8k": "titok-bl128-vq8k", "sl256_vq8k": "titok-sl256-vq8k", "ll32_vae_c16": "titok-ll32-vae",
           "bl64_vae_c16": "titok-bl64-vae", "bl128_vae_c16": "titok-bl128-vae"}


def official_titok(repo: Path, variant: str):
    from modeling.titok import TiTok
    from omegaconf import OmegaConf

    model = TiTok(OmegaConf.load(repo / "configs" / "infer" / "TiTok" / f"titok_{variant}.yaml")).eval()
    fill_deterministic(model)
    return model


def draw_codebook(official, x01: torch.Tensor) -> None:
    z = official.encoder(pixel_values=x01, latent_tokens=official.latent_tokens)
    features = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    official.quantize.embedding.weight.copy_(codebook_from_features(features, official.quantize.codebook_size))


def inside(name: str, images: torch.Tensor) -> None:
    share = ((images > 0) & (images < 1)).float().mean().item()
    print(f"{name:<28} {100 * share:.1f}% of pixels inside (0, 1)")


def check_vq(official, ours, x, x01) -> list[bool]:
    idx = official.encode(x01)[1]["min_encoding_indices"]
    tokens = ours.encode(x)
    print(f"{'distinct codes':<28} {idx.unique().numel()} of {official.quantize.codebook_size}")
    ok = [agreement("indices", tokens.indices, idx) >= MIN_AGREEMENT]
    theirs = official.decode_tokens(idx).clamp(0, 1)
    inside("official decode", theirs)
    if ours.cfg.legacy:
        z = official.quantize.get_codebook_entry(idx.reshape(-1)).reshape(len(x), 1, idx.shape[-1], -1)
        logits = official.decoder(z.permute(0, 3, 1, 2))
        ok.append(max_diff("decoder logits", ours.decoder(ours.quantize.dequantize(idx.squeeze(1))), logits)
                  <= TOLERANCE)
    ok.append(max_diff("decode(official indices)", (ours.decode_indices(idx) + 1) / 2, theirs) <= TOLERANCE)
    ok.append(max_diff("reconstruction", (ours.decode(tokens) + 1) / 2, official(x01)[0].clamp(0, 1)) <= TOLERANCE)
    return ok


def check_vae(official, ours, x, x01) -> list[bool]:
    posterior, mine = official.encode(x01)[1], ours.encode_posterior(x)
    ok = [max_diff("posterior mean", mine.mean, posterior.mean.squeeze(2)) <= TOLERANCE,
          max_diff("posterior log-variance", mine.logvar, posterior.logvar.squeeze(2)) <= TOLERANCE]
    theirs = official.decode_tokens(posterior.mean).clamp(0, 1)
    inside("official decode", theirs)
    decoded = ours.decode(Tokens.from_latents(posterior.mean.squeeze(2)))
    ok.append(max_diff("decode(official mean)", (decoded + 1) / 2, theirs) <= TOLERANCE)
    ok.append(max_diff("reconstruction (mean)", (ours.reconstruct(x) + 1) / 2, theirs) <= TOLERANCE)
    return ok


def main():
    args = parse_args(__doc__, lambda p: p.add_argument("--variant", required=True, choices=sorted(ENTRIES)))
    print_header("TiTok", args.official, "modeling/titok.py")
    torch.set_grad_enabled(False)
    x = photos(side=256)
    x01 = (x + 1) / 2  # what vtbench hands the model inside
    official = official_titok(args.official, args.variant)
    if official.quantize_mode == "vq":
        draw_codebook(official, x01)
    with tempfile.TemporaryDirectory() as tmp:
        from safetensors.torch import save_file

        path = Path(tmp) / "model.safetensors"
        save_file(official.state_dict(), str(path))
        ours = load_tokenizer(ENTRIES[args.variant], weights=path)
    print(f"{ENTRIES[args.variant]} against configs/infer/TiTok/titok_{args.variant}.yaml")
    ok = (check_vq if official.quantize_mode == "vq" else check_vae)(official, ours, x, x01)
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

"""Forward equivalence of the `flextok-*` entries with FlexTok's official code (apple/ml-flextok).

    git clone https://github.com/apple/ml-flextok /tmp/official/flextok   # anywhere outside this repository
    pip install --target /tmp/deps_flextok --no-deps einops hydra-core omegaconf antlr4-python3-runtime==4.9.3 mup
    python benchmarks/equivalence/flextok.py --official /tmp/official/flextok --deps /tmp/deps_flextok

The official model is instantiated with Hydra from a reduced config in the checkpoint's format
(`vtbench.tokenizers.flextok.default_config`: 2 encoder and 2 decoder layers of width 128, head dim 32, the
released 256 registers, FSQ levels, 2x2 patches and full-size 16-channel VAE, scaling factor 0.7), filled by
`common.fill_deterministic`, and saved by the official ``save_safetensors`` with that config in the header.
vtbench loads the file through ``flextok-d12-d12`` with ``weights=PATH``, so the architecture is built from
the header and loaded strictly. On astronaut and coffee (256 px) it compares: the token ids (official
``tokenize``); the decoder's flow prediction at t = 0.55, conditional and unconditional, with the photos
kept at 37 and 256 tokens (nested dropout); and a full seeded decode of those prefixes (official
``detokenize``: 20 steps, guidance 7.5 with APG, noise from a generator seeded 7). Exits 1 unless every id
agrees, the flow predictions agree within 1e-4 and the decoded images within 1e-3.

Stubbed: the official attention runs PyTorch's SDPA fallback (``FlexAttention(use_flex_attention=False)``
by default) on the packers' materialized masks (``return_materialized_mask``, an official option), since
compiling FlexAttention takes about 90 s per shape on this CPU; ``--flex`` runs the official kernel instead.
The official code's other imports (diffusers, huggingface_hub, safetensors) are the ones vtbench installs.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from common import fill_deterministic, max_diff, parse_args, photos, print_header

from vtbench.tokenizers import load_tokenizer
from vtbench.tokenizers.flextok import default_config

KEEP = (37, 256)  # tokens kept per photo in the decoder checks
T = 0.55
SEED = 7
VELOCITY_TOLERANCE, IMAGE_TOLERANCE = 1e-4, 1e-3


def reduced_config(flex: bool) -> dict:
    config = default_config(2, 2, head_dim=32, scaling_factor=0.7)
    if not flex:
        for part in ("encoder", "decoder"):
            for module in config[part]["module_dict"].values():
                if module["_target_"].endswith("BlockWiseSequencePacker"):
                    module["return_materialized_mask"] = True
    return config


def official_model(config: dict, flex: bool):
    from flextok.model.layers.attention import FlexAttention
    from hydra.utils import instantiate

    if not flex:
        *rest, _ = FlexAttention.__init__.__defaults__
        FlexAttention.__init__.__defaults__ = (*rest, False)
    return instantiate(config).eval()


def official_velocity(model, tokens: list[torch.Tensor], noise: torch.Tensor, uncond: bool) -> torch.Tensor:
    d = model._prepare_data_dict_for_detokenization(tokens)
    d["vae_latents_noised"] = list(noise.split(1))
    d["timesteps"] = T * torch.ones(len(tokens))
    if uncond:
        d["eval_dropout_mask"] = [True] * len(tokens)
    return torch.cat(model.decoder(copy.deepcopy(d))["vae_latents_reconst"])


def main():
    args = parse_args(__doc__, lambda p: p.add_argument("--flex", action="store_true",
                                                        help="run the official FlexAttention kernel (slow on CPU)"))
    print_header("FlexTok", args.official, "flextok/flextok_wrapper.py")
    torch.set_grad_enabled(False)
    from flextok.utils.checkpoint import save_safetensors

    config = reduced_config(args.flex)
    official = official_model(config, args.flex)
    fill_deterministic(official)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_safetensors(dict(official.state_dict()), str(path), metadata_dict=config)
        ours = load_tokenizer("flextok-d12-d12", weights=path)
    x = photos(side=args.side)

    theirs_ids = torch.cat(official.tokenize(x))
    tokens = ours.encode(x)
    ids = tokens.joint_ids()
    same = int((ids == theirs_ids).sum())
    print(f"{'token ids':<28} {same}/{ids.numel()} agree ({ids.unique().numel()} distinct ids)")
    ok = [same == ids.numel()]

    prefixes = [theirs_ids[i:i + 1, :k] for i, k in enumerate(KEEP)]
    keep = torch.tensor(KEEP)
    ours_tokens = tokens.with_lengths(keep)
    noise = torch.randn(len(KEEP), 16, 32, 32, generator=torch.Generator().manual_seed(SEED))
    padded = torch.zeros_like(tokens.scales[0])
    for i, k in enumerate(KEEP):
        padded[i, :k] = tokens.scales[0][i, :k]
    quants = ours.regularizer.dequantize(padded).movedim(1, -1)
    for uncond in (False, True):
        name = f"flow t={T}" + (" uncond" if uncond else "")
        theirs = official_velocity(official, prefixes, noise, uncond)
        print(f"{name + ' range':<28} [{theirs.min():.2f}, {theirs.max():.2f}]")
        ok.append(max_diff(name, ours.velocity(noise, T, quants, keep, uncond=uncond), theirs) <= VELOCITY_TOLERANCE)

    theirs = official.detokenize(prefixes, timesteps=20, guidance_scale=7.5, perform_norm_guidance=True,
                                 generator=torch.Generator().manual_seed(SEED), verbose=False)
    mine = ours.decode(ours_tokens, generator=torch.Generator().manual_seed(SEED))
    print(f"{'decoded image range':<28} [{theirs.min():.2f}, {theirs.max():.2f}]")
    ok.append(max_diff("seeded decode (20 steps)", mine, theirs) <= IMAGE_TOLERANCE)
    print("EQUIVALENT" if all(ok) else "DIFFERENT")
    raise SystemExit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()

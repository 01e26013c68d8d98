"""Ported architectures have the official module names and shapes, and compute what the reference computes."""

import pytest
import torch

from vtbench.tokenizers import load_tokenizer
from vtbench.tokenizers.kl_vae import TINY_KL_VAE, AutoencoderKL, KLVAEConfig, convert_diffusers_state_dict
from vtbench.tokenizers.llamagen import TINY_VQ, LlamaGenVQ, VQConfig
from vtbench.tokenizers.weights import load_strict

diffusers = pytest.importorskip("diffusers")


def _diffusers_vae(cfg: KLVAEConfig):
    n = len(cfg.block_out_channels)
    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block, latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups, sample_size=cfg.sample_size, scaling_factor=cfg.scaling_factor,
    ).eval()


def test_sd_vae_has_exactly_the_diffusers_state_dict():
    ours = AutoencoderKL(KLVAEConfig()).state_dict()
    ref = _diffusers_vae(KLVAEConfig()).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_kl_vae_matches_diffusers_with_the_same_random_weights():
    torch.manual_seed(0)
    ref = _diffusers_vae(TINY_KL_VAE)
    ours = AutoencoderKL(TINY_KL_VAE).eval()
    load_strict(ours, ref.state_dict(), "diffusers")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        dist = ref.encode(x).latent_dist
        tokens = ours.encode(x)
        assert torch.allclose(tokens.latents, dist.mode(), atol=1e-5)
        assert torch.allclose(ours.decode(tokens), ref.decode(dist.mode()).sample, atol=1e-5)
    assert tokens.bits_per_image == 4 * 32 * 32 * 32  # latent 4 x 32 x 32 at 64 px (f/2), float32


def test_old_attention_names_are_renamed_on_load():
    ref = AutoencoderKL(TINY_KL_VAE).state_dict()
    new_to_old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    old = {}
    for k, v in ref.items():
        for new, legacy in new_to_old.items():
            k = k.replace(f".attentions.0.{new}.", f".attentions.0.{legacy}.")
        old[k] = v
    assert any(".query." in k for k in old)
    model = AutoencoderKL(TINY_KL_VAE)
    load_strict(model, convert_diffusers_state_dict(old), "old names")
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k])


def test_llamagen_vq16_names_shapes_and_size():
    sd = LlamaGenVQ(VQConfig()).state_dict()
    # 71,883,403 parameters is the count of the official VQ-16 (and of vq_ds16_c2i.pt's "model")
    assert sum(v.numel() for k, v in sd.items() if k != "quantize.codebook_used") == 71_883_403
    assert sd["quantize.embedding.weight"].shape == (16384, 8)
    assert sd["quantize.codebook_used"].shape == (65536,)
    assert sd["quant_conv.weight"].shape == (8, 256, 1, 1)
    # decoder lists its blocks from the lowest resolution up; attention only there
    assert sd["decoder.conv_blocks.0.res.0.conv1.weight"].shape == (512, 512, 3, 3)
    assert "decoder.conv_blocks.0.attn.2.q.weight" in sd and "decoder.conv_blocks.1.attn.0.q.weight" not in sd
    assert "decoder.conv_blocks.4.upsample.conv.weight" not in sd
    assert sd["encoder.conv_blocks.2.res.0.nin_shortcut.weight"].shape == (256, 128, 1, 1)
    assert sd["encoder.conv_blocks.3.downsample.conv.weight"].shape == (256, 256, 3, 3)
    assert "encoder.mid.1.proj_out.weight" in sd


def test_llamagen_lookup_is_cosine_nearest_code():
    tok = load_tokenizer("llamagen-vq-tiny")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        z = tok.pre_quant(tok._to_native(x))
        idx = tok.encode(x).indices
        feats = torch.nn.functional.normalize(z.movedim(1, -1), dim=-1)
        codes = torch.nn.functional.normalize(tok.quantize.embedding.weight, dim=-1)
        dist = torch.cdist(feats.reshape(-1, feats.shape[-1]), codes)
        assert torch.equal(idx.flatten(), dist.argmin(-1))
        assert idx.shape == (2, 32, 32) and int(idx.max()) < TINY_VQ.codebook_size

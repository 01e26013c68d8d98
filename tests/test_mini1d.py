"""The 1D mini tokenizers (TiTok-style, FlexTok-style) on tiny random configs."""

import pytest
import torch

from vtbench.tokenizers.mini import build
from vtbench.tokenizers.mini1d import Mini1DConfig, nested_dropout_keep

TINY = dict(code_channels=4, num_latent_tokens=8, width=32, depth=1, heads=2, patch_size=8, resolution=32)
TITOK = Mini1DConfig("titok", "vq", {"codebook_size": 64, "distance": "cosine"}, **TINY)
FLEXTOK = Mini1DConfig("flextok", "fsq", {"levels": [8, 5, 5, 5]}, ordered=True, **TINY)


def _images(n=3, side=32):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("cfg", [TITOK, FLEXTOK], ids=["titok", "flextok"])
def test_codes_are_a_1d_sequence_and_decode_like_the_straight_path(cfg):
    torch.manual_seed(0)
    tok = build(cfg).eval()
    x = _images()
    with torch.inference_mode():
        tokens = tok.encode(x).validate()
        assert tokens.spatial_dims == 1 and tokens.positions_per_image == 8 == tok.info.tokens_per_image
        assert tokens.indices.shape[:2] == (3, 8)
        straight = tok.decoder(tok.quantize(tok.latents(x)).z_q)
        assert torch.allclose(tok.decode_indices(tokens.indices), straight, atol=1e-5)
        assert tok.decode(tokens).shape == x.shape


@pytest.mark.parametrize("cfg", [TITOK, FLEXTOK], ids=["titok", "flextok"])
def test_gradients_reach_the_encoder_through_the_quantizer(cfg):
    torch.manual_seed(0)
    tok = build(cfg).train()
    y, loss = tok(_images())
    ((y - _images()).abs().mean() + loss).backward()
    for p in (tok.encoder.patch_embed.weight, tok.latent_tokens, tok.decoder.decoder_embed.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def _encoder_output_after_changing_register(cfg, changed: int):
    torch.manual_seed(0)
    tok = build(cfg).eval()
    x = _images(1)
    with torch.no_grad():
        before = tok.latents(x)
        tok.latent_tokens[changed] += torch.randn(cfg.width)  # (a constant shift would vanish in ln_pre)
        return before, tok.latents(x)


def test_flextok_registers_are_causal_titok_registers_are_not():
    before, after = _encoder_output_after_changing_register(FLEXTOK, changed=5)
    assert torch.equal(before[..., :5], after[..., :5])  # tokens before 5 cannot see register 5
    assert not torch.allclose(before[..., 5:], after[..., 5:])
    before, after = _encoder_output_after_changing_register(TITOK, changed=5)
    assert not torch.allclose(before[..., :5], after[..., :5])


def test_flextok_prefixes_decode_as_nested_dropout_trained_them():
    torch.manual_seed(0)
    tok = build(FLEXTOK).eval()
    x = _images(2)
    with torch.inference_mode():
        z_q = tok.quantize(tok.latents(x)).z_q
        tokens = tok.encode(x)
        for n in (1, 3, 8):
            prefix = tokens.map(lambda s, n=n: s[:, :n])
            dropped = tok.decoder(z_q, keep=torch.full((2,), n))
            assert torch.allclose(tok.decode(prefix), dropped, atol=1e-5)
        # a truncated tokenizer is the same weights with a shorter encode
        short = build(FLEXTOK, keep_tokens=3).eval()
        short.load_state_dict(tok.state_dict())
        assert short.info.tokens_per_image == 3
        assert torch.equal(short.encode(x).indices, tokens.indices[:, :3])


def test_titok_refuses_prefixes_and_other_resolutions():
    tok = build(TITOK).eval()
    tokens = tok.encode(_images(1))
    with pytest.raises(ValueError, match=f"decodes sequences of {TITOK.num_latent_tokens} tokens, got 4"):
        tok.decode(tokens.map(lambda s: s[:, :4]))
    with pytest.raises(ValueError, match="encodes 32x32 images only, got 64x64"):
        tok.encode(_images(1, side=64))
    with pytest.raises(ValueError, match="ordered"):
        build(TITOK, keep_tokens=4)


def test_nested_dropout_draws_powers_of_two_up_to_the_sequence_length():
    torch.manual_seed(0)
    keep = nested_dropout_keep(4000, 128)
    assert set(keep.tolist()) == {1, 2, 4, 8, 16, 32, 64, 128}
    assert set(nested_dropout_keep(2000, 12).tolist()) == {1, 2, 4, 8, 12}


def test_pfid_perturbation_moves_only_a_fraction_of_1d_tokens():
    from vtbench.bench.perturbation import perturb

    torch.manual_seed(0)
    tok = build(TITOK).eval()
    x = _images(8)
    tokens, candidates = tok.encode_neighbours(x, 4)
    assert torch.equal(tokens.indices, tok.encode(x).indices)
    gen = torch.Generator().manual_seed(0)
    moved = (perturb(tokens, candidates, 0.25, gen).indices != tokens.indices).float().mean().item()
    assert 0.1 < moved < 0.4
    assert torch.equal(perturb(tokens, candidates, 0.0, gen).indices, tokens.indices)

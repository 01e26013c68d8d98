"""The shared taming/LDM Encoder/Decoder: official names and shapes at every named config, and a working forward."""

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from vtbench.tokenizers.layers import ConvAttnBlock
from vtbench.tokenizers.taming import TAMING_CONFIGS, Decoder, Encoder, TamingConfig

OFFICIAL_KEYS = Path(__file__).parent / "official_keys"

# named config -> key list dumped from the official code (see tests/official_keys/*.txt headers)
KEY_FILES = {
    "var-ch160": "var_vae_ch160v4096z32.txt",
    "vqgan-lc-f16": "vqganlc_f16_generator_only.txt",
    "vqgan-lc-f8": "vqganlc_f8_generator_only.txt",
    "mar-kl16": "mar_kl16.txt",
    "infinity-d16": "infinity_vae_d16.txt",
    "infinity-d32": "infinity_vae_d32.txt",
    "infinity-d64": "infinity_vae_d64.txt",
}

TINY = TamingConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), resolution=32, z_channels=4)


def read_official_keys(path: Path, prefixes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """``key<TAB>shape[<TAB>dtype]`` lines (``#`` lines are headers) -> {key: shape} for keys under ``prefixes``."""
    shapes = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")[:2]
        if key.startswith(prefixes):
            shapes[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return shapes


def assert_official_shapes(ours: dict[str, tuple[int, ...]], official: dict[str, tuple[int, ...]]) -> None:
    """The same keys with the same shapes, each difference listed."""
    assert sorted(set(ours) - set(official)) == [], "keys the official model does not have"
    assert sorted(set(official) - set(ours)) == [], "official keys missing"
    assert {k: s for k, s in ours.items() if official[k] != s} == {}, "shape mismatches"


def full_size_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """{key: shape} of entry ``name``'s full-size state dict, built on the meta device."""
    from vtbench.tokenizers import create_tokenizer

    with torch.device("meta"):
        return {k: tuple(t.shape) for k, t in create_tokenizer(name).state_dict().items()}


def unwrap_infinity_name(key: str) -> str:
    """Infinity's modules wrap every conv and norm: ``conv_in.conv.weight`` is taming's ``conv_in.weight``."""
    return re.sub(r"\.(conv|norm)\.(weight|bias)$", r".\2", key)


def test_every_named_config_has_a_key_file():
    assert set(KEY_FILES) == set(TAMING_CONFIGS)


@pytest.mark.parametrize("name", sorted(KEY_FILES))
def test_named_config_has_exactly_the_official_keys_and_shapes(name):
    official = read_official_keys(OFFICIAL_KEYS / KEY_FILES[name], ("encoder.", "decoder."))
    if name.startswith("infinity-"):
        official = {unwrap_infinity_name(k): s for k, s in official.items()}
    with torch.device("meta"):
        modules = {"encoder": Encoder(TAMING_CONFIGS[name]), "decoder": Decoder(TAMING_CONFIGS[name])}
    ours = {f"{prefix}.{key}": tuple(t.shape) for prefix, module in modules.items()
            for key, t in module.state_dict().items()}
    assert sorted(set(ours) - set(official)) == [], "keys the official model does not have"
    assert sorted(set(official) - set(ours)) == [], "official keys missing"
    assert {k: s for k, s in ours.items() if official[k] != s} == {}, "shape mismatches"


@pytest.mark.parametrize("attention", ["separate", "fused"])
@pytest.mark.parametrize("double_z", [False, True])
def test_tiny_round_trip_shapes(attention, double_z):
    cfg = TamingConfig(**{**asdict(TINY), "attention": attention, "double_z": double_z})
    enc, dec = Encoder(cfg).eval(), Decoder(cfg).eval()
    assert len(enc.down[1].attn) == 1 and len(dec.up[1].attn) == 2 and len(dec.up[0].attn) == 0
    x = torch.rand(2, 3, 32, 48) * 2 - 1  # non-square: only divisibility by the downsample factor matters
    with torch.inference_mode():
        h = enc(x)
        y = dec(h[:, : cfg.z_channels])
    assert h.shape == (2, cfg.z_channels * (2 if double_z else 1), 16, 24)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_fused_attention_splits_qkv_channels_as_q_then_k_then_v():
    torch.manual_seed(0)
    fused, separate = ConvAttnBlock(32, fused_qkv=True).eval(), ConvAttnBlock(32).eval()
    for p in fused.parameters():
        torch.nn.init.normal_(p, std=0.3)
    state = {k: v for k, v in fused.state_dict().items() if not k.startswith("qkv.")}
    for name, w, b in zip("qkv", fused.qkv.weight.chunk(3), fused.qkv.bias.chunk(3)):
        state |= {f"{name}.weight": w, f"{name}.bias": b}
    separate.load_state_dict(state, strict=True)
    x = torch.randn(2, 32, 6, 5)
    with torch.inference_mode():
        assert torch.allclose(fused(x), separate(x), atol=1e-5)


def test_without_mid_attention_the_mid_block_holds_no_attention_weights():
    cfg = TamingConfig(**{**asdict(TINY), "mid_attention": False})
    enc = Encoder(cfg).eval()
    assert not any(k.startswith("mid.attn_1") for k in enc.state_dict())
    assert any(k.startswith("mid.attn_1") for k in Encoder(TINY).state_dict())
    with torch.inference_mode():
        assert enc(torch.zeros(1, 3, 32, 32)).shape == (1, 4, 16, 16)


def test_decoder_attention_can_differ_from_the_encoder():
    cfg = TAMING_CONFIGS["mar-kl16"]
    assert cfg.level_has_attention(4) and not cfg.level_has_attention(4, decoder=True)


def test_config_survives_a_json_round_trip():
    cfg = TAMING_CONFIGS["mar-kl16"]
    assert TamingConfig(**json.loads(json.dumps(asdict(cfg)))) == cfg


def test_unknown_attention_style_is_refused():
    with pytest.raises(ValueError, match="attention must be one of"):
        TamingConfig(attention="flash")

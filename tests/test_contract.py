"""The tokenizer contract an AR trainer relies on, checked on every registered entry.

Entries whose weights are on this machine (the mini-zoo, baselines) are loaded as shipped; the ports, whose
official weights cannot be downloaded here, are built at a tiny config of the same architecture.
"""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import vtbench
from vtbench.tokenizers import Tokens, create_tokenizer, get_entry, list_tokenizers, load_tokenizer, pack, unpack
from vtbench.tokenizers.registry import _REGISTRY
from vtbench.tokenizers.taming import TamingConfig

#: tiny configs of the ports (every entry whose weights are not shipped needs one here)
TINY = {
    "llamagen-vq16": dict(codebook_size=64, codebook_embed_dim=4, ch=32, ch_mult=(1, 2), num_res_blocks=1,
                          z_channels=32, resolution=64),
    "sd-vae-ft-mse": dict(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8, sample_size=64),
}
TINY["llamagen-vq8"] = TINY["llamagen-vq16"]
TINY["sd-vae-ft-ema"] = TINY["sd-vae-ft-mse"]
_TINY_TAMING = TamingConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(16,), resolution=64,
                            z_channels=8)
TINY["var-vqvae"] = dict(taming=replace(_TINY_TAMING, attention="fused"), vocab_size=64,
                         patch_nums=((1, 2, 3, 4, 6, 8), (1, 2, 4, 6, 10, 16)), resolution=64)
TINY["vqgan-lc-f16"] = dict(taming=_TINY_TAMING, embed_dim=8, codebook_size=300, feature_dim=16, resolution=64)
TINY["vqgan-lc-f8"] = {**TINY["vqgan-lc-f16"], "embed_dim": 4}  # the released variants differ in it
TINY["mar-kl16"] = dict(taming=replace(_TINY_TAMING, double_z=True, decoder_attn_resolutions=()), resolution=64)
TINY["tokenbridge-kl16"] = {**TINY["mar-kl16"], "channel_order": (3, 1, 6, 0, 7, 2, 5, 4)}
for _v in ("dual", "triple"):
    TINY[f"fqgan-{_v}-16"] = dict(variant=_v, codebook_size=64, codebook_embed_dim=4, ch=32, ch_mult=(1, 2),
                                  num_res_blocks=1, z_channels=32, adapter_layers=1, adapter_heads=2, resolution=32)
    TINY[f"fqgan-{_v}-8"] = TINY[f"fqgan-{_v}-16"]
for _d in ("16", "24", "32", "64", "32reg"):  # stride 2: 64 px is final side 32 (10 scales), 32 px side 16 (7)
    TINY[f"infinity-vae-d{_d}"] = dict(taming=TamingConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                                                           mid_attention=False, z_channels=8), resolution=64)
# 18 bits as released (the AR model's sub-tokens are 6 + 12); 32 px: 8x8 (f4) and 16x16 (f2) positions
TINY["open-magvit2-256"] = dict(ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, resolution=32)
TINY["open-magvit2-128"] = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, resolution=32)
TINY["bsq-vit-b18"] = dict(bits=6, resolution=32, width=32, layers=1, heads=2, ffn_width=64)  # 4x4 positions
TINY["bsq-vit-b36"] = {**TINY["bsq-vit-b18"], "bits": 12}
for _v in ("l32", "b64", "s128", "bl64-vq8k", "bl128-vq8k", "sl256-vq8k", "ll32-vae", "bl64-vae", "bl128-vae"):
    TINY[f"titok-{_v}"] = dict(num_latent_tokens=8, encoder=(32, 1, 2), decoder=(32, 1, 2), codebook_size=64,
                               token_size=4, patch_size=8, resolution=32,  # 4x4 patches; an x8 MaskGIT-VQGAN
                               pixel=dict(hidden_channels=32, channel_mult=(1, 1, 2, 2), num_res_blocks=1,
                                          z_channels=16, codebook_size=64))

for _v in ("d12-d12", "d18-d18", "d18-d28"):  # 32 px: an f2 VAE, 8x8 patches of 2, 8 registers (the header format)
    TINY[f"flextok-{_v}"] = dict(config=vtbench.tokenizers.flextok.TINY_CONFIG,
                                 vae_arch=vtbench.tokenizers.flextok.TINY_VAE)


def _tokenizer(name: str):
    entry = get_entry(name)
    if entry.available_offline() or entry.test_only:
        return load_tokenizer(name)
    assert name in TINY, f"{name}: add a tiny config of its architecture to TINY"
    return create_tokenizer(name, **TINY[name]).eval()


def assert_pretrained_round_trip(tok, x: torch.Tensor, folder) -> None:
    """`save_pretrained` then `from_pretrained` gives the same config and the same reconstructions of ``x``."""
    import vtbench

    vtbench.save_pretrained(tok, folder)
    back = vtbench.from_pretrained(folder)
    assert back.cfg == tok.cfg
    with torch.inference_mode():
        assert torch.equal(back.reconstruct(x), tok.reconstruct(x))


def _photos(n: int, side: int) -> torch.Tensor:
    """Real photographs (scikit-image), area-resized to side x side, in [-1, 1]."""
    from skimage import data

    imgs = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()][:n]
    x = torch.cat([F.interpolate(torch.from_numpy(im).permute(2, 0, 1)[None].float(), size=(side, side), mode="area")
                   for im in imgs])
    return x.round() / 127.5 - 1


ENTRIES = list_tokenizers()


@pytest.mark.parametrize("name", ENTRIES)
def test_flat_sequence_round_trips_to_the_same_images(name):
    tok = _tokenizer(name)
    r = tok.info.resolution
    x = _photos(2, r)
    with torch.inference_mode():
        tokens = tok.encode(x)
        layout = tok.layout()
        # the declared layout is what encode produces
        assert tokens.scale_shapes == layout.scale_shapes
        assert tokens.kind == layout.kind and tokens.vocab_sizes == layout.vocab_sizes
        assert tokens.flat().shape[1] == layout.seq_len
        if tokens.lengths is None:
            assert tokens.bits_per_image == pytest.approx(layout.bits_per_image)
        else:  # variable-rate entries (codec baselines): the layout declares a capacity
            assert tokens.bits_per_image <= layout.bits_per_image
        y = tok.decode(tokens)
        again = Tokens.from_flat(tokens.flat(), layout)
        assert all(torch.equal(a, b) for a, b in zip(again.scales, tokens.scales))
        assert torch.allclose(tok.decode(tok.unflat(tokens.flat())), y, atol=1e-5)
        if layout.discrete:
            # what an AR model emits, the flat id sequence, decodes to the same images
            assert torch.allclose(tok.decode_indices(tokens.flat()), y, atol=1e-5)
            if layout.joint_vocab_size < 2 ** 63:
                ids = tokens.joint_ids()
                assert int(ids.max()) < layout.joint_vocab_size
                assert torch.equal(layout.unpack(ids).reshape(tokens.flat().shape), tokens.flat())
    assert y.shape == x.shape and y.dtype == torch.float32


@pytest.mark.parametrize("name", ENTRIES)
def test_layout_at_another_size_matches_encode(name):
    tok = _tokenizer(name)
    r, f = tok.info.resolution, tok.info.downsample
    if tok.info.fixed_resolution:
        with pytest.raises(ValueError, match=f"{r}x{r}"):
            tok.layout(r // 2)
        return
    size = (r // 2, r // 2) if tok.info.multiscale else (r // 2, r // 2 + f)
    with torch.inference_mode():
        tokens = tok.encode(torch.zeros(1, 3, *size))
    assert tokens.scale_shapes == tok.layout(size).scale_shapes
    with pytest.raises(ValueError, match=f"multiples of {f}"):
        tok.layout(r - 1)


def test_loaded_tokenizers_are_frozen():
    tok = load_tokenizer("mini-vq")
    assert not tok.training and not any(p.requires_grad for p in tok.parameters())
    y = tok.reconstruct(_photos(1, 64))
    assert not y.requires_grad and y.grad_fn is None


def test_pack_is_mixed_radix_in_the_declared_order():
    codes = torch.tensor([[1, 2, 3], [4, 0, 1]])
    vocab = (5, 3, 4)
    assert pack(codes, vocab, "msb").tolist() == [1 * 12 + 2 * 4 + 3, 4 * 12 + 0 + 1]
    assert pack(codes, vocab, "lsb").tolist() == [1 + 2 * 5 + 3 * 15, 4 + 0 + 1 * 15]
    every = torch.arange(60)
    for order in ("msb", "lsb"):
        assert torch.equal(pack(unpack(every, vocab, order), vocab, order), every)
    # 36 bits (BSQ-ViT b36) need int64: the top bit alone is 2^35
    bits = torch.zeros(1, 36, dtype=torch.long)
    bits[0, 0] = 1
    assert pack(bits, (2,) * 36, "msb").item() == 2 ** 35
    with pytest.raises(ValueError, match="int64"):
        pack(torch.zeros(1, 64, dtype=torch.long), (2,) * 64)
    with pytest.raises(ValueError, match="outside"):
        unpack(torch.tensor([60]), vocab)


def test_llamagen_indices_do_not_change_under_bf16_autocast():
    """Trainers extract codes under autocast: the lookup must still run in float32."""
    tok = load_tokenizer("llamagen-vq-tiny")
    x = _photos(4, 64)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = tok.pre_quant(x)
            codes = tok.quantize(features).codes
        assert features.dtype == torch.bfloat16  # the encoder did run in bf16
        reference = tok.quantize(features.float()).codes  # the same features, looked up outside autocast
        # bf16 matmuls would pick codes by 8-bit mantissas: on random-weight features many flip
        logits_bf16 = features.float().movedim(1, -1).reshape(-1, 4).bfloat16() @ tok.quantize.codebook().bfloat16().t()
    assert torch.equal(codes, reference)
    assert not torch.equal(logits_bf16.float().argmax(1).view_as(reference), reference)


@pytest.mark.parametrize("name", ["mini-var", "mini-infinity"])
def test_next_scale_inputs_rebuild_the_decoder_input(name):
    tok = load_tokenizer(name)
    with torch.inference_mode():
        tokens = tok.encode(_photos(2, 64))
        inputs = tok.teacher_forcing_inputs(tokens)
        shapes = tokens.scale_shapes
        assert inputs.shape == (2, sum(h * w for h, w in shapes[1:]), tok.cfg.code_channels)
        f_hat, steps = None, []
        for k, codes in enumerate(tokens.scales):
            f_hat, nxt = tok.next_scale_input(k, f_hat, codes, shapes)
            steps.append(nxt)
        # teacher forcing is the generation-time inputs of scales 1..K-1, flattened channels last
        assert torch.equal(torch.cat([s.movedim(1, -1).flatten(1, 2) for s in steps[:-1]], 1), inputs)
        # after the last scale f_hat is what the decoder reads: the sum over all scales
        assert torch.allclose(f_hat, tok.quantizer.dequantize(list(tokens.scales)), atol=1e-5)
        assert tuple(steps[0].shape[-2:]) == shapes[1]
    with pytest.raises(TypeError, match="not a multi-scale"):
        load_tokenizer("mini-vq").teacher_forcing_inputs(tokens)


def test_continuous_posterior_samples_with_a_generator():
    tok = load_tokenizer("mini-kl")
    x = _photos(2, 64)
    with torch.inference_mode():
        post = tok.encode_posterior(x)
        assert torch.equal(post.mean, tok.encode(x).latents)
        a = post.sample(torch.Generator().manual_seed(3))
        b = post.sample(torch.Generator().manual_seed(3))
        c = post.sample(torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    sd = create_tokenizer("sd-vae-ft-mse", **TINY["sd-vae-ft-mse"])
    assert sd.info.scaling_factor == pytest.approx(0.18215)
    z = torch.randn(1, 4, 8, 8)
    assert torch.allclose(sd.to_generator_space(z), z * 0.18215)
    assert torch.allclose(sd.from_generator_space(sd.to_generator_space(z)), z)
    with pytest.raises(TypeError, match="discrete"):
        load_tokenizer("mini-vq").encode_posterior(x)


def test_continuous_bits_count_the_declared_width_not_the_dtype():
    tok = load_tokenizer("mini-kl")
    with torch.inference_mode():
        t32 = tok.encode(_photos(1, 64))
    half = t32.map(lambda s: s.half())
    assert half.bits_per_image == t32.bits_per_image == 8 * 8 * 4 * 32


def test_deterministic_decoders_refuse_sampling_options():
    tok = load_tokenizer("mini-vq")
    tokens = tok.encode(_photos(1, 64))
    assert torch.equal(tok.decode(tokens, generator=torch.Generator().manual_seed(0)), tok.decode(tokens))
    with pytest.raises(TypeError, match="no decoding option steps"):
        tok.decode(tokens, steps=20)


def test_per_sample_lengths_decode_each_prefix():
    tok = load_tokenizer("mini-flextok")
    x = _photos(3, 256)
    with torch.inference_mode():
        tokens = tok.encode(x)
        mixed = tok.decode(tokens.with_lengths([1, 16, 128]))
        for b, k in enumerate((1, 16, 128)):
            alone = tok.decode(tokens[b:b + 1].map(lambda s, k=k: s[:, :k]))
            assert torch.allclose(mixed[b:b + 1], alone, atol=1e-5)
        seq = tokens.flat()
        again = tok.unflat(seq, lengths=[1, 16, 128])
        assert again.lengths.tolist() == [1, 16, 128]
        assert again.positions_per_image == pytest.approx((1 + 16 + 128) / 3)
    with pytest.raises(ValueError, match="not ordered"):
        titok = load_tokenizer("mini-titok")
        titok.decode(titok.encode(x[:1]).with_lengths([4]))


# --- bad input to the Python API (issue 13): a clear error, never garbage ------------------------------
def test_decode_indices_refuses_ids_outside_the_vocabulary():
    tok = load_tokenizer("mini-vq")
    good = tok.encode(_photos(1, 64)).indices
    for bad in (4096, -1):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.decode_indices(good.clone().fill_(bad))
    with pytest.raises(TypeError, match="integer"):
        tok.decode_indices(good.float())
    fsq = load_tokenizer("mini-fsq")
    codes = fsq.encode(_photos(1, 64)).indices
    with pytest.raises(ValueError, match="outside the vocabulary"):
        fsq.decode_indices(codes.clone().fill_(8))


def test_multiscale_lists_must_have_every_scale_in_order():
    tok = load_tokenizer("mini-var")
    scales = tok.encode(_photos(1, 64)).indices
    with pytest.raises(ValueError, match="expects scales"):
        tok.decode_indices(scales[1:])
    with pytest.raises(ValueError, match="expects scales"):
        tok.decode_indices(scales[::-1])
    with pytest.raises(ValueError, match="has one scale"):
        load_tokenizer("mini-vq").decode_indices(scales)


def test_encode_refuses_nan_empty_and_sizes_it_cannot_take():
    tok = load_tokenizer("mini-vq")
    x = _photos(1, 64)
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(x.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="empty batch"):
        tok.encode(x[:0])
    for side in (250, 7):
        with pytest.raises(ValueError, match="multiples of 8"):
            tok.encode(torch.zeros(1, 3, side, side))
    with pytest.raises(ValueError, match="multiples of 8"):
        load_tokenizer("bicubic-f8").encode(torch.zeros(1, 3, 250, 250))
    # other float dtypes are cast to float32 for the caller
    assert torch.equal(tok.encode(x.double()).indices, tok.encode(x).indices)
    assert tok.encode(x.half()).indices.shape == tok.encode(x).indices.shape


# --- weights -------------------------------------------------------------------------------------------
def test_own_checkpoint_loads_strictly_and_is_labelled(tmp_path):
    ref = load_tokenizer("mini-vq")
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    state["decoder.out.0.bias"] += 0.1
    path = tmp_path / "mine.safetensors"
    save_file(state, str(path))
    mine = load_tokenizer("mini-vq", weights=path)
    assert mine.label.startswith("mini-vq:file-") and not mine.loaded_weights.published
    assert torch.equal(mine.state_dict()["decoder.out.0.bias"], state["decoder.out.0.bias"])
    other = tmp_path / "fsq.safetensors"
    save_file(load_tokenizer("mini-fsq").state_dict(), str(other))
    with pytest.raises(RuntimeError, match="shape mismatches|missing keys|unexpected keys"):
        load_tokenizer("mini-vq", weights=other)
    with pytest.raises(FileNotFoundError):
        load_tokenizer("mini-vq", weights=tmp_path / "absent.pt")


def test_save_and_from_pretrained_round_trip(tmp_path):
    tok = load_tokenizer("mini-var")
    vtbench.save_pretrained(tok, tmp_path / "var")
    again = vtbench.from_pretrained(tmp_path / "var")
    x = _photos(1, 64)
    assert torch.equal(again.reconstruct(x), tok.reconstruct(x))
    assert not again.loaded_weights.published and not any(p.requires_grad for p in again.parameters())


def test_shipped_weights_are_verified_on_load(tmp_path, monkeypatch):
    from vtbench.tokenizers import weights as W
    from vtbench.tokenizers.mini import SHIPPED_SHA256

    shipped = W.PACKAGE_WEIGHTS
    copy = tmp_path / "weights"
    for rel in SHIPPED_SHA256:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes((shipped / rel).read_bytes())
    monkeypatch.setattr(W, "PACKAGE_WEIGHTS", copy)
    import vtbench.tokenizers.mini as mini

    monkeypatch.setattr(mini, "PACKAGE_WEIGHTS", copy)
    data = bytearray((copy / "mini-vq/model.safetensors").read_bytes())
    data[-100] ^= 0xFF  # one flipped data byte
    (copy / "mini-vq/model.safetensors").write_bytes(bytes(data))
    with pytest.raises(vtbench.WeightsUnavailable, match="sha256 mismatch.*reinstall"):
        load_tokenizer("mini-vq")
    cfg = copy / "mini-fsq/config.json"
    cfg.write_text(cfg.read_text()[:88])  # truncated
    with pytest.raises(vtbench.WeightsUnavailable, match="mini-fsq/config.json.*expected"):
        load_tokenizer("mini-fsq")


def test_every_shipped_file_is_pinned():
    from vtbench.tokenizers.mini import SHIPPED_SHA256
    from vtbench.tokenizers.weights import PACKAGE_WEIGHTS

    shipped = {str(p.relative_to(PACKAGE_WEIGHTS)) for p in PACKAGE_WEIGHTS.rglob("*") if p.is_file()
               and not p.name.startswith(".") and p.name != "checkpoint.pt"}
    assert shipped == set(SHIPPED_SHA256)


def test_plugin_entry_points_register_tokenizers(tmp_path, monkeypatch):
    """A package installed beside vtbench adds entries through the `vtbench.tokenizers` entry point group."""
    import sys

    from vtbench.tokenizers import registry

    site = tmp_path / "site"
    (site / "vtb_plugin_demo").mkdir(parents=True)
    (site / "vtb_plugin_demo" / "__init__.py").write_text(
        "from vtbench import register_tokenizer\n"
        "from vtbench.tokenizers.baselines import BicubicThumbnail\n"
        "from vtbench.tokenizers.weights import NO_WEIGHTS\n"
        "register_tokenizer('plugin-bicubic-f4', weights={'none': NO_WEIGHTS}, description='from a plugin')"
        "(lambda **kw: BicubicThumbnail(4, **kw))\n")
    dist = site / "vtb_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vtb-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vtbench.tokenizers]\ndemo = vtb_plugin_demo\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", False)
    try:
        assert "plugin-bicubic-f4" in list_tokenizers()
        assert load_tokenizer("plugin-bicubic-f4").layout(64).scale_shapes == ((16, 16),)
    finally:
        _REGISTRY.pop("plugin-bicubic-f4", None)
        sys.modules.pop("vtb_plugin_demo", None)


def test_a_broken_plugin_is_reported_not_fatal(tmp_path, monkeypatch):
    from vtbench.tokenizers import registry

    site = tmp_path / "site"
    dist = site / "broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vtbench.tokenizers]\nbroken = no_such_module_here\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", False)
    with pytest.warns(UserWarning, match="plugin 'broken'"):
        names = list_tokenizers()
    assert "mini-vq" in names


def test_bits_per_image_of_a_layout():
    lay = load_tokenizer("mini-var").layout(64)
    assert lay.seq_len == sum(h * w for h, w in lay.scale_shapes)
    assert lay.bits_per_image == pytest.approx(lay.seq_len * math.log2(4096))


def test_a_weights_tag_of_several_files_loads_them_all(tmp_path):
    """FlexTok-style entries name several files per tag; without a converter each role is a key prefix."""
    from vtbench.tokenizers import Checkpoint, register_tokenizer
    from vtbench.tokenizers.llamagen import TINY_VQ, LlamaGenVQ
    from vtbench.tokenizers.weights import LocalFile

    ref = load_tokenizer("llamagen-vq-tiny")
    state = ref.state_dict()
    save_file({k: v for k, v in state.items() if not k.startswith("decoder.")}, str(tmp_path / "model.safetensors"))
    save_file({k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")},
              str(tmp_path / "decoder.safetensors"))
    files = {"model": LocalFile(str(tmp_path / "model.safetensors")),
             "decoder": LocalFile(str(tmp_path / "decoder.safetensors"))}
    register_tokenizer("tmp-two-files", weights={"split": Checkpoint(files)})(lambda: LlamaGenVQ(TINY_VQ))
    try:
        tok = load_tokenizer("tmp-two-files")
        assert tok.loaded_weights.sha256.count("+") == 1
        x = _photos(1, 64)
        assert torch.equal(tok.reconstruct(x), ref.reconstruct(x))
        (tmp_path / "decoder.safetensors").unlink()
        with pytest.raises(vtbench.WeightsUnavailable, match="decoder.safetensors"):
            load_tokenizer("tmp-two-files")
    finally:
        _REGISTRY.pop("tmp-two-files", None)

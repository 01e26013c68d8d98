"""Infinity's bitwise multi-scale VAE (`infinity-vae-d*`): names and shapes against the official key lists at
full size (meta device), the converter's rules (both name forms, the dropped ``mask`` leftovers, wrong d),
the scale schedules, the forms of bits Infinity's AR model emits, teacher forcing / generation and pFID's
bit flips, at a tiny random config. Forward equivalence with the official code is shown by
``benchmarks/equivalence/infinity.py``.
"""

import pytest
import torch
import torch.nn.functional as F

from tests.test_contract import TINY, _photos, assert_pretrained_round_trip
from tests.test_taming import OFFICIAL_KEYS, assert_official_shapes, full_size_shapes, read_official_keys
from vtbench.bench.perturbation import perturb
from vtbench.cli import main
from vtbench.tokenizers import create_tokenizer, get_entry, load_tokenizer, register_tokenizer
from vtbench.tokenizers.infinity import LEFTOVERS, VARIANTS, _converter, _unwrap
from vtbench.tokenizers.registry import _REGISTRY
from vtbench.tokenizers.taming import TamingConfig
from vtbench.tokenizers.weights import RANDOM_INIT, Checkpoint, WeightsMismatch, WeightsUnavailable, single_file

NAMES = sorted(VARIANTS)
#: entry -> official key list; d24 has none: it is the d32 list with d = 32 -> 24 (only conv_out / conv_in
#: of the latent carry d, and no other dimension of the model is 32)
KEY_FILES = {"infinity-vae-d16": "infinity_vae_d16.txt", "infinity-vae-d24": "infinity_vae_d32.txt",
             "infinity-vae-d32": "infinity_vae_d32.txt", "infinity-vae-d32reg": "infinity_vae_d32.txt",
             "infinity-vae-d64": "infinity_vae_d64.txt"}


def _official(name: str) -> dict[str, tuple[int, ...]]:
    """The official module's state dict (wrapped names, with the mask buffers) for this entry."""
    keys = read_official_keys(OFFICIAL_KEYS / KEY_FILES[name], ("",))
    if name == "infinity-vae-d24":
        keys = {k: tuple(24 if n == 32 else n for n in s) for k, s in keys.items()}
    return keys


def _meta(shapes: dict) -> dict:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def _tiny(name: str = "infinity-vae-d32", **kw):
    return create_tokenizer(name, **{**TINY[name], **kw}).eval()


def _convert(name: str, state: dict) -> dict:
    entry = get_entry(name)
    return entry.weights[entry.default_weights].state_dict({"model": state})


@pytest.mark.parametrize("name", NAMES)
def test_full_size_state_dict_has_the_official_keys_and_shapes(name):
    official = {_unwrap(k): s for k, s in _official(name).items() if k not in LEFTOVERS}
    assert len(official) == len(_official(name)) - 2  # 270 entries: the two mask aliases dropped
    assert_official_shapes(full_size_shapes(name), official)


def test_name_mapping_unwraps_only_the_official_wrappers():
    assert _unwrap("encoder.conv_in.conv.weight") == "encoder.conv_in.weight"
    assert _unwrap("encoder.down.0.block.1.norm2.norm.bias") == "encoder.down.0.block.1.norm2.bias"
    assert _unwrap("encoder.down.2.downsample.conv.conv.weight") == "encoder.down.2.downsample.conv.weight"
    assert _unwrap("decoder.up.3.upsample.conv.conv.bias") == "decoder.up.3.upsample.conv.bias"
    assert _unwrap("decoder.up.1.block.0.nin_shortcut.conv.weight") == "decoder.up.1.block.0.nin_shortcut.weight"
    # plain taming names stay as they are, the resamplers' own ``conv`` included
    for plain in ("encoder.down.2.downsample.conv.weight", "decoder.norm_out.weight", "encoder.conv_in.bias"):
        assert _unwrap(plain) == plain


@pytest.mark.parametrize("name", ["infinity-vae-d16", "infinity-vae-d32", "infinity-vae-d64"])
def test_the_converter_takes_wrapped_or_plain_names_and_drops_only_the_mask(name):
    official = _official(name)
    with torch.device("meta"):
        ours = set(create_tokenizer(name).state_dict())
    assert set(LEFTOVERS) <= set(official)
    wrapped = _meta(official)
    plain = {_unwrap(k): v for k, v in wrapped.items()}
    mixed = {**{k: v for k, v in wrapped.items() if k.startswith("encoder.")},
             **{k: v for k, v in plain.items() if not k.startswith("encoder.")}}
    for state in ({"vae": wrapped}, {"vae": plain}, {"vae": mixed}, wrapped):
        assert set(_convert(name, state)) == ours
    # the leftover rule is exact: another quantizer tensor is not dropped, and the strict load refuses it
    extra = {**wrapped, "quantizer.lfq.codebook": torch.empty(4, device="meta")}
    assert "quantizer.lfq.codebook" in _convert(name, {"vae": extra})


def test_the_converter_names_the_entry_of_a_file_of_another_d():
    d16 = {"vae": _meta(_official("infinity-vae-d16"))}
    with pytest.raises(WeightsMismatch, match="d=16 .*the entry has d=32: use infinity-vae-d16"):
        _convert("infinity-vae-d32", d16)
    no_mask = {"vae": {k: v for k, v in d16["vae"].items() if k not in LEFTOVERS}}
    with pytest.raises(WeightsMismatch, match="encoder.conv_out has 16 output channels.*use infinity-vae-d16"):
        _convert("infinity-vae-d64", no_mask)
    d32 = {"vae": _meta(_official("infinity-vae-d32"))}
    with pytest.raises(WeightsMismatch, match="use infinity-vae-d32 or infinity-vae-d32reg"):
        _convert("infinity-vae-d24", d32)


def test_the_converter_refuses_one_tensor_under_both_names():
    state = _meta(_official("infinity-vae-d16"))
    state["encoder.conv_in.weight"] = state["encoder.conv_in.conv.weight"]
    with pytest.raises(WeightsMismatch, match="encoder.conv_in.conv.weight and encoder.conv_in.weight|"
                                              "encoder.conv_in.weight and encoder.conv_in.conv.weight"):
        _convert("infinity-vae-d16", {"vae": state})


def test_schedules_by_size():
    with torch.device("meta"):
        tok = create_tokenizer("infinity-vae-d32")
    assert [h for h, _ in tok.layout(256).scale_shapes] == [1, 2, 4, 6, 8, 12, 16]
    assert tok.layout(256).seq_len == 521 == tok.info.tokens_per_image
    assert tok.layout(256).components == 32 and tok.layout(256).kind == "binary"
    assert [h for h, _ in tok.layout(512).scale_shapes] == [1, 2, 4, 6, 8, 12, 16, 20, 24, 32]
    assert tok.layout(512).seq_len == 2521
    assert [h for h, _ in tok.layout(1024).scale_shapes][-4:] == [32, 40, 48, 64]
    for bad in (384, 255, (256, 512)):
        with pytest.raises(ValueError, match="256x256, 512x512, 1024x1024"):
            tok.layout(bad)


def test_bits_are_bsq_of_the_residual_with_channel_0_most_significant():
    torch.manual_seed(0)
    tok = _tiny()
    x = _photos(2, 64)
    with torch.inference_mode():
        z = tok.features(x)
        tokens = tok.encode(x)
    assert len(tokens.scales) == 10 and tokens.scales[-1].shape == (2, 32, 32, 8)
    # scale 0: the sign of the whole map's mean; zero counts as negative
    assert torch.equal(tokens.scales[0][:, 0, 0], (z.mean((2, 3)) > 0).long())
    # scale 1 codes what the first code, upsampled to the map, leaves
    first = (tokens.scales[0].float() * 2 - 1) / 8 ** 0.5
    rest = z - first[:, 0, 0, :, None, None]
    assert torch.equal(tokens.scales[1], (F.adaptive_avg_pool2d(rest, 2).movedim(1, -1) > 0).long())
    q = tok.quantizer
    assert torch.equal(q.bsq.quantize(torch.zeros(1, 8))[2], torch.zeros(1, 8, dtype=torch.long))
    assert tokens.joint_ids().max() < 2 ** 8 and tok.info.order == "msb"
    top = torch.zeros(1, 8, dtype=torch.long)
    top[0, 0] = 1
    assert tok.layout().pack(top).item() == 2 ** 7  # the official mask: 2^(d-1) for channel 0


def test_decode_indices_takes_every_form_the_ar_model_emits():
    tok = _tiny()
    with torch.inference_mode():
        tokens = tok.encode(_photos(2, 64))
        y = tok.decode(tokens)
        assert y.abs().max() <= 1  # clamped, as the official decode
        scales = list(tokens.scales)
        forms = {
            "flat (B, L, d)": tokens.flat(),
            "per scale (B, h, w, d)": scales,
            "idx_Bld (B, 1, h, w, d)": [s.unsqueeze(1).int() for s in scales],
            "gt_ms_idx_Bl (B, h*w, d)": [s.flatten(1, 2) for s in scales],
        }
        for what, ids in forms.items():
            assert torch.equal(tok.decode_indices(ids), y), what
        with pytest.raises(ValueError, match="schedules of \\[7, 10, 13\\] scales"):
            tok.decode_indices([s.flatten(1, 2) for s in scales[:5]])
        with pytest.raises(ValueError, match="expects scales"):
            tok.decode_indices(scales[:6] + scales[7:])
        with pytest.raises(TypeError, match="integer"):
            tok.decode_indices([s.float() for s in scales])


def test_teacher_forcing_is_the_generation_time_input_resampled_bilinearly():
    tok = _tiny()
    with torch.inference_mode():
        tokens = tok.encode(_photos(2, 32))  # 32 px: final side 16, 7 scales
        shapes = tokens.scale_shapes
        assert [h for h, _ in shapes] == [1, 2, 4, 6, 8, 12, 16]
        f_hat, steps = None, []
        for k, codes in enumerate(tokens.scales):
            f_hat, nxt = tok.next_scale_input(k, f_hat, codes, shapes)
            steps.append(nxt)
            if k < len(shapes) - 1:  # Infinity resamples the running sum with its up mode, not area
                assert torch.allclose(nxt, F.interpolate(f_hat, size=shapes[k + 1], mode="bilinear"), atol=1e-6)
        inputs = tok.teacher_forcing_inputs(tokens)
        assert inputs.shape == (2, tokens.flat().shape[1] - 1, 8)
        assert torch.equal(torch.cat([s.movedim(1, -1).flatten(1, 2) for s in steps[:-1]], 1), inputs)
        assert torch.equal(steps[-1], f_hat) and torch.equal(f_hat, tok.f_hat(tokens))


def test_pfid_neighbours_are_the_cheapest_bit_flips_per_scale():
    tok = _tiny()
    x = _photos(2, 64)
    with torch.inference_mode():
        tokens, cand = tok.encode_neighbours(x, 3)
        clean = tok.encode(x)
        assert len(cand) == 10
        for c, s in zip(cand, clean.scales):
            assert c.shape == (*s.shape[:-1], 3, 8)
            assert torch.equal(c[..., 0, :], s)
            assert ((c[..., 1, :] != s).sum(-1) == 1).all()  # one flipped bit each
        # the first flip is the channel whose normalised feature is nearest zero (scale 0: the map's mean)
        u0 = F.normalize(tok.features(x).mean((2, 3)), dim=-1)
        flipped = (cand[0][:, 0, 0, 1] != clean.scales[0][:, 0, 0]).float().argmax(-1)
        assert torch.equal(flipped, u0.abs().argmin(-1))
        moved = perturb(tokens, cand, 1.0, torch.Generator().manual_seed(0))
        assert any((a != b).any() for a, b in zip(moved.scales, clean.scales))
        assert torch.isfinite(tok.decode(moved)).all()


@pytest.fixture
def tiny_entry(monkeypatch):
    """`infinity-vae-d32` at tiny size (d = 8) with the converter of its d."""
    monkeypatch.delitem(_REGISTRY, "tiny-infinity", raising=False)
    hub = get_entry("infinity-vae-d32").weights["hub"]
    official = Checkpoint(hub.files, single_file(_converter(8)), license=hub.license)
    register_tokenizer("tiny-infinity", weights={"official": official, "random": RANDOM_INIT})(lambda **kw: _tiny(**kw))
    monkeypatch.setitem(_REGISTRY, "tiny-infinity", _REGISTRY["tiny-infinity"])
    return "tiny-infinity"


def _released_file(tmp_path, tok, wrapped: bool = True, **extra):
    """A tiny model's weights written as the released file is: ``{'vae': ...}``, wrapped names, mask buffers."""
    wrap = {"weight", "bias"}
    state = {}
    for k, v in tok.state_dict().items():
        parent, param = k.rsplit(".", 1)
        leaf = parent.rsplit(".", 1)[-1]
        if wrapped and param in wrap and leaf in ("conv_in", "conv_out", "conv1", "conv2", "nin_shortcut", "conv"):
            k = f"{parent}.conv.{param}"
        elif wrapped and param in wrap and leaf in ("norm1", "norm2", "norm_out"):
            k = f"{parent}.norm.{param}"
        state[k] = v
    d = tok.cfg.bits
    mask = 2 ** torch.arange(d - 1, -1, -1)
    path = tmp_path / f"infinity_vae_d{d}_{'wrapped' if wrapped else 'plain'}.pth"
    torch.save({"vae": {**state, "quantizer.lfq.mask": mask, "quantize.lfq.mask": mask, **extra}}, path)
    return path


@pytest.mark.parametrize("wrapped", [True, False])
def test_a_released_format_file_loads_strictly_and_reproduces_the_model(tmp_path, tiny_entry, wrapped):
    torch.manual_seed(1)
    source = _tiny()
    loaded = load_tokenizer(tiny_entry, weights=_released_file(tmp_path, source, wrapped))
    x = _photos(1, 64)
    with torch.inference_mode():
        assert all(torch.equal(a, b) for a, b in zip(loaded.encode(x).scales, source.encode(x).scales))
    assert loaded.loaded_weights.published is False


def test_unknown_keys_and_other_d_are_clear_errors(tmp_path, tiny_entry):
    tok = _tiny()
    with pytest.raises(WeightsMismatch, match="(?s)do not fit.*unexpected keys: discriminator.w"):
        load_tokenizer(tiny_entry, weights=_released_file(tmp_path, tok, **{"discriminator.w": torch.zeros(1)}))
    other = _tiny(taming=TamingConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                                      mid_attention=False, z_channels=16))
    with pytest.raises(WeightsMismatch, match="a d=16 Infinity VAE; the entry has d=8: use infinity-vae-d16"):
        load_tokenizer(tiny_entry, weights=_released_file(tmp_path, other))


def test_entries_list_files_licence_and_published_figures(monkeypatch, tmp_path, capsys):
    for name, (_d, filename, (rfid, psnr, *_)) in VARIANTS.items():
        checkpoint = get_entry(name).weights["hub"]
        assert checkpoint.files["model"].repo_id == "FoundationVision/Infinity"
        assert checkpoint.files["model"].filename == filename and checkpoint.license == "MIT"
        assert checkpoint.published["rfid"] == rfid and checkpoint.published["psnr"] == psnr
        assert "ImageNet val 512x512" in checkpoint.published["note"]
    assert main(["list", "tokenizers"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "hf://FoundationVision/Infinity/infinity_vae_d32reg.pth (unpinned)" in rows["infinity-vae-d32reg"]
    assert "rFID 0.33, PSNR 24.9" in rows["infinity-vae-d64"]
    monkeypatch.setenv("VTBENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailable) as e:
        load_tokenizer("infinity-vae-d24")
    assert "infinity_vae_d24.pth" in str(e.value) and str(tmp_path) in str(e.value)


def test_save_and_load_pretrained_round_trip(tmp_path):
    assert_pretrained_round_trip(_tiny("infinity-vae-d16"), _photos(1, 64), tmp_path / "tok")

"""TiTok (`titok-*`): names and shapes against the official key lists at full size (meta device), the
converter (both released file forms, every other variant's file named), the raw-reshape encoder head of the
two-stage models, MaskGIT-VQGAN's shortcut, the lookups, [0, 1] inside, posterior means, the official index
forms and pFID, at tiny configs; the published L-32 tokens of the README's image when the weights and the image
are on this machine. Forward equivalence with the official code is shown by ``benchmarks/equivalence/titok.py``.
"""

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from tests.test_contract import TINY, _photos, assert_pretrained_round_trip
from tests.test_taming import OFFICIAL_KEYS, assert_official_shapes, full_size_shapes, read_official_keys
from vtbench.cli import main
from vtbench.tokenizers import Tokens, create_tokenizer, get_entry, load_tokenizer, register_tokenizer
from vtbench.tokenizers.maskgit_vqgan import ResnetBlock
from vtbench.tokenizers.registry import _REGISTRY
from vtbench.tokenizers.titok import VARIANTS, _converter
from vtbench.tokenizers.weights import RANDOM_INIT, WeightsMismatch, WeightsUnavailable, single_file

NAMES = list(VARIANTS)
KEY_FILES = {name: f"titok_{repo[len('tokenizer_titok_'):-len('_imagenet')]}.txt"
             for name, (_c, repo, _b, _r) in VARIANTS.items()}
#: README_TiTok: assets/ILSVRC2012_val_00010240.png encoded by TiTok-L-32
README_IMAGE = "ILSVRC2012_val_00010240.png"
README_L32_TOKENS = [887, 3979, 349, 720, 2809, 2743, 2101, 603, 2205, 1508, 1891, 4015, 1317, 2956, 3774, 2296,
                     484, 2612, 3472, 2330, 3140, 3113, 1056, 3779, 654, 2360, 1901, 2908, 2169, 953, 1326, 2598]


def _official(name: str) -> dict[str, tuple[int, ...]]:
    return read_official_keys(OFFICIAL_KEYS / KEY_FILES[name], ("",))


def _tiny_cfg(name: str):
    return replace(VARIANTS[name][0], **TINY[name])


def _tiny(name: str):
    return create_tokenizer(name, **TINY[name]).eval()


@pytest.mark.parametrize("name", NAMES)
def test_full_size_state_dict_has_the_official_keys_and_shapes(name):
    official = _official(name)
    assert_official_shapes(full_size_shapes(name), official)


def test_every_entry_takes_its_own_file_and_names_the_entry_of_any_other():
    files = {name: {k: torch.empty(s, device="meta") for k, s in _official(name).items()} for name in NAMES}
    for entry in NAMES:
        convert = get_entry(entry).weights["hub"].convert
        for other, state in files.items():
            if other == entry:
                assert convert({"model": state}) is state
            else:
                with pytest.raises(WeightsMismatch, match=f"the entry has .*: use {other}$"):
                    convert({"model": state})


def test_entries_list_hub_files_bin_files_licence_and_published_rfid(monkeypatch, tmp_path):
    for name, (_cfg, repo, bin_file, rfid) in VARIANTS.items():
        entry = get_entry(name)
        hub = entry.weights["hub"]
        assert entry.default_weights == "hub"
        assert hub.files["model"].repo_id == f"yucornetto/{repo}" and hub.files["model"].filename == "model.safetensors"
        assert hub.published["rfid"] == rfid and "README_TiTok" in hub.published["source"]
        assert "research" in hub.license
        assert ("bin" in entry.weights) == (bin_file is not None)
        if bin_file:
            assert entry.weights["bin"].files["model"].repo_id == "fun-research/TiTok"
    assert {n: VARIANTS[n][3] for n in ("titok-l32", "titok-b64", "titok-bl128-vae")} == {
        "titok-l32": 2.21, "titok-b64": 1.70, "titok-bl128-vae": 0.84}
    monkeypatch.setenv("VTBENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailable) as e:
        load_tokenizer("titok-s128:bin")
    assert "tokenizer_titok_s128.bin" in str(e.value) and "fun-research/TiTok" in str(e.value)


def test_only_256_px_with_the_reason():
    with torch.device("meta"):
        tok = create_tokenizer("titok-bl64-vae")
    assert tok.layout(256).scale_shapes == ((64,),) and tok.layout().channels == 16
    with pytest.raises(ValueError, match="256x256 images only .*positional embeddings .*16x16 patch grid"):
        tok.layout(512)
    with pytest.raises(ValueError, match="two-stage .* needs vq tokens"):
        create_tokenizer("titok-l32", quantize_mode="vae")


def test_two_stage_encoder_reads_its_features_with_a_raw_reshape():
    tok = _tiny("titok-l32")
    x = _photos(2, 32)
    seen = {}
    tok.encoder.ln_post.register_forward_hook(lambda _m, _i, out: seen.setdefault("ln_post", out))
    with torch.inference_mode():
        features = tok.features((x + 1) / 2)
        b, n, w = seen["ln_post"].shape
        raw = tok.encoder.conv_out(seen["ln_post"].reshape(b, w, n, 1)).flatten(2)
        transposed = tok.encoder.conv_out(seen["ln_post"].transpose(1, 2)[..., None]).flatten(2)
    assert torch.equal(features, raw) and not torch.allclose(features, transposed, atol=1e-3)
    single = _tiny("titok-bl64-vq8k")  # the single-stage variants fixed it: a per-token 1x1 conv
    with torch.inference_mode():
        a = single.features((x + 1) / 2)
        b = single.features((x.flip(0) + 1) / 2).flip(0)
    assert torch.allclose(a, b, atol=1e-5)


def test_maskgit_resblock_adds_the_shortcut_of_its_own_output():
    torch.manual_seed(0)
    block = ResnetBlock(32, 64).eval()
    x = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        h = block.conv2(F.silu(block.norm2(block.conv1(F.silu(block.norm1(x))))))
        assert torch.allclose(block(x), h + block.nin_shortcut(h), atol=1e-6)
        same = ResnetBlock(32, 32).eval()
        h = same.conv2(F.silu(same.norm2(same.conv1(F.silu(same.norm1(x))))))
        assert torch.allclose(same(x), h + x, atol=1e-6)
    assert all(m.bias is None for m in (block.conv1, block.conv2, block.nin_shortcut))


@pytest.mark.parametrize("name", ["titok-s128", "titok-sl256-vq8k"])
def test_lookup_is_cosine_for_two_stage_and_l2_for_vq8k_on_inputs_in_0_1(name):
    tok = _tiny(name)
    x = _photos(2, 32)
    with torch.inference_mode():
        z = tok.features((x + 1) / 2).transpose(1, 2).reshape(-1, tok.cfg.token_size)
        w = tok.quantize.embedding.weight
        if tok.cfg.use_l2_norm:
            z, w = F.normalize(z, dim=-1), F.normalize(w, dim=-1)
        distances = torch.cdist(z, w)
        expected = distances.argmin(1).view(2, -1)
        tokens = tok.encode(x)
        assert torch.equal(tokens.indices, expected) and tokens.indices.shape == (2, tok.cfg.num_latent_tokens)
        near = tok.encode_neighbours(x, 3)[1][0]  # pFID's candidates, nearest first
        assert torch.equal(near.view(-1, 3), distances.topk(3, largest=False).indices)
        y = tok.decode(tokens)
        assert torch.equal(y, tok.decode_latents(tok.quantize.dequantize(expected)) * 2 - 1)
    assert y.min() >= -1 and y.max() <= 1  # clamped to [0, 1] inside
    assert (name == "titok-s128") == tok.cfg.use_l2_norm


def test_indices_do_not_change_under_bf16_autocast():
    tok = _tiny("titok-b64")
    x = _photos(2, 32)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = tok.features((x + 1) / 2)
            codes = tok.quantize(features).codes
            cand = tok.encode_neighbours(x, 3)[1][0]
        assert features.dtype == torch.bfloat16
        assert torch.equal(codes, tok.quantize(features.float()).codes)
        assert torch.equal(cand[..., 0], tok.encode(x).indices)


def test_official_index_forms_decode_alike():
    tok = _tiny("titok-l32")
    with torch.inference_mode():
        tokens = tok.encode(_photos(2, 32))
        ids = tokens.indices
        y = tok.decode(tokens)
        assert torch.equal(tok.decode_indices(ids), y)
        assert torch.equal(tok.decode_indices(ids[:, None]), y)  # the official (B, 1, N)
    with pytest.raises(ValueError, match="\\(B, 8\\)"):
        tok.decode_indices(ids[:, :4])


def test_vae_encodes_the_posterior_mean_as_a_1d_sequence():
    tok = _tiny("titok-bl128-vae")
    x = _photos(2, 32)
    with torch.inference_mode():
        posterior = tok.encode_posterior(x)
        tokens = tok.encode(x)
        assert posterior.mean.shape == (2, 4, 8) and tokens.scale_shapes == ((8,),)
        assert torch.equal(tokens.latents, posterior.mean)
        moments = tok.features((x + 1) / 2)
        assert torch.equal(posterior.logvar, moments[:, 4:].clamp(-30, 20))
        sample = posterior.sample(torch.Generator().manual_seed(0))
        assert not torch.equal(sample, posterior.mean)
        assert torch.isfinite(tok.decode(Tokens.from_latents(sample))).all()
    with pytest.raises(TypeError, match="continuous"):
        tok.encode_neighbours(x, 3)


@pytest.fixture
def tiny_entries(monkeypatch):
    """One entry of each kind at tiny size, with the converter of that tiny config."""
    names = {}
    for name in ("titok-l32", "titok-bl64-vae"):
        tiny = f"tiny-{name}"
        hub = replace(get_entry(name).weights["hub"], convert=single_file(_converter(_tiny_cfg(name))))
        monkeypatch.delitem(_REGISTRY, tiny, raising=False)
        register_tokenizer(tiny, weights={"official": hub, "random": RANDOM_INIT})(
            lambda _n=name, **kw: create_tokenizer(_n, **{**TINY[_n], **kw}))
        monkeypatch.setitem(_REGISTRY, tiny, _REGISTRY[tiny])
        names[name] = tiny
    return names


def _released(tmp_path: Path, name: str, form: str = "safetensors") -> Path:
    """A tiny model's weights written as the hub's ``model.safetensors`` or as a ``.bin``."""
    torch.manual_seed(1)
    state = {k: v.contiguous() for k, v in _tiny(name).state_dict().items()}
    path = tmp_path / f"{name}.{form}"
    save_file(state, str(path)) if form == "safetensors" else torch.save(state, path)
    return path


def test_both_released_forms_load_strictly_and_the_wrong_kind_is_named(tmp_path, tiny_entries):
    x = _photos(1, 32)
    tiny = tiny_entries["titok-l32"]
    a = load_tokenizer(tiny, weights=_released(tmp_path, "titok-l32"))
    b = load_tokenizer(tiny, weights=_released(tmp_path, "titok-l32", "bin"))
    assert torch.equal(a.reconstruct(x), b.reconstruct(x)) and not a.loaded_weights.published
    with pytest.raises(WeightsMismatch, match="has 8 tokens, VAE of 4 channels.*the entry has 8 tokens, VQ 64 x 4, "
                                              "two-stage \\(no released entry"):
        load_tokenizer(tiny, weights=_released(tmp_path, "titok-bl64-vae"))


def test_run_with_weights_in_the_released_format_and_pfid(tmp_path, tiny_entries):
    out = tmp_path / "runs"
    for name in ("titok-l32", "titok-bl64-vae"):  # discrete neighbours, and Gaussian noise on 1D latents
        tiny = tiny_entries[name]
        args = ["run", "--quiet", "--tokenizer", tiny, "--weights", str(_released(tmp_path, name)),
                "--resolution", "32", "--limit", "2", "--tasks", "pfid", "--alpha", "0,0.5", "--out", str(out)]
        assert main(args) == 0, name
        [path] = (out / "builtin").glob(f"{tiny}_file-*/pfid*.json")
        result = json.loads(path.read_text())
        assert result["tokenizer"]["weights"]["published"] is False
        curve = {c["alpha"]: c["pfid"] for c in result["metrics"]["pfid"]["extra"]["curve"]}
        assert curve[0.5] != curve[0.0], name


def test_save_and_load_pretrained_round_trip(tmp_path):
    assert_pretrained_round_trip(_tiny("titok-b64"), _photos(1, 32), tmp_path / "tok")


def _readme_image() -> Path | None:
    """``$VTBENCH_TITOK_IMAGE``, else the README's image in a ``$VTBENCH_WEIGHTS_DIR`` folder."""
    if os.environ.get("VTBENCH_TITOK_IMAGE"):
        return Path(os.environ["VTBENCH_TITOK_IMAGE"])
    folders = [Path(p) for p in os.environ.get("VTBENCH_WEIGHTS_DIR", "").split(os.pathsep) if p]
    return next((d / README_IMAGE for d in folders if (d / README_IMAGE).is_file()), None)


def test_l32_codes_the_readme_image_into_the_published_tokens():
    from PIL import Image

    entry = get_entry("titok-l32")
    tags = [t for t in entry.weights if entry.available_offline(t)]
    image = _readme_image()
    if not tags or image is None or not image.is_file():
        pytest.skip(f"needs the released TiTok-L-32 weights ({entry.weights['hub'].describe()} or "
                    f"{entry.weights['bin'].describe()}, in $VTBENCH_WEIGHTS_DIR or the hub cache: "
                    f"{'found' if tags else 'missing'}) and assets/{README_IMAGE} of bytedance/1d-tokenizer "
                    f"($VTBENCH_TITOK_IMAGE or $VTBENCH_WEIGHTS_DIR: "
                    f"{'found' if image is not None and image.is_file() else 'missing'})")
    tok = load_tokenizer(f"titok-l32:{tags[0]}")
    pixels = torch.from_numpy(np.array(Image.open(image).convert("RGB"))).permute(2, 0, 1)[None].float()
    x = pixels / 127.5 - 1
    with torch.inference_mode():
        tokens = tok.encode(x)
        y = tok.decode(tokens)
    assert tokens.indices[0].tolist() == README_L32_TOKENS
    assert np.corrcoef(y.flatten().numpy(), x.flatten().numpy())[0, 1] > 0.5  # a likeness, not noise

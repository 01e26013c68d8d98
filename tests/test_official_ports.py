"""Official ports: VAR's VQVAE, VQGAN-LC, FQGAN, MAR's KL-16 and TokenBridge on it (Infinity: its own file).

Names and shapes against the official key lists at full size (built on the meta device), the converters'
rules, and the behaviour of each architecture at a tiny random config (the contract test covers the layout
and the flat round trip of every entry). Forward equivalence with the official code is shown by
``benchmarks/equivalence/*.py``, which need the official repositories.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm as scipy_norm
from scipy.stats import truncnorm as scipy_truncnorm

from tests.test_contract import TINY, _photos
from tests.test_taming import OFFICIAL_KEYS, assert_official_shapes, full_size_shapes, read_official_keys
from vtbench.bench.perturbation import perturb
from vtbench.cli import main
from vtbench.quantizers import vq
from vtbench.tokenizers import create_tokenizer, get_entry, load_tokenizer, register_tokenizer
from vtbench.tokenizers.fqgan import TRAINING_ONLY as FQGAN_TRAINING_ONLY
from vtbench.tokenizers.registry import _REGISTRY
from vtbench.tokenizers.weights import RANDOM_INIT, WeightsMismatch, WeightsUnavailable

KEY_FILES = {
    "var-vqvae": "var_vae_ch160v4096z32.txt",
    "vqgan-lc-f16": "vqganlc_f16_generator_only.txt",
    "vqgan-lc-f8": "vqganlc_f8_generator_only.txt",
    "fqgan-dual-16": "fqgan_dual_vq16.txt",
    "fqgan-triple-16": "fqgan_triple_vq16.txt",
    "fqgan-dual-8": "fqgan_dual_vq8.txt",
    "fqgan-triple-8": "fqgan_triple_vq8.txt",
    "mar-kl16": "mar_kl16.txt",
    "tokenbridge-kl16": "mar_kl16.txt",  # MAR's file: the quantizer holds no weights
}
#: the one documented difference from the official state dicts: FQGAN's training-only feature heads
DROPPED = {name: FQGAN_TRAINING_ONLY for name in KEY_FILES if name.startswith("fqgan")}


def _official(name: str) -> dict[str, tuple[int, ...]]:
    return read_official_keys(OFFICIAL_KEYS / KEY_FILES[name], ("",))


def _tiny(name: str):
    return create_tokenizer(name, **TINY[name]).eval()


@pytest.mark.parametrize("name", sorted(KEY_FILES))
def test_full_size_state_dict_has_the_official_keys_and_shapes(name):
    official = {k: s for k, s in _official(name).items() if not k.startswith(DROPPED.get(name, ("\0",)))}
    assert_official_shapes(full_size_shapes(name), official)


@pytest.mark.parametrize("name", sorted(KEY_FILES))
def test_the_converter_takes_the_released_wrapping_and_drops_only_training_parts(name):
    official = _official(name)
    state = {k: torch.zeros(s) for k, s in official.items()}
    extra = {"perceptual_loss.net.lin0.weight": torch.zeros(1), "discriminator.main.0.weight": torch.zeros(1)}
    wrapped = {"fqgan": {"ema": state, "optimizer": {}}, "vqgan": {"state_dict": {**state, **extra}}, "var": state,
               "mar": {"model": state}, "tokenbridge": {"model": state}}
    checkpoint = get_entry(name).weights[get_entry(name).default_weights]
    converted = checkpoint.state_dict({"model": wrapped[name.split("-")[0]]})
    kept = {k for k in official if not k.startswith(DROPPED.get(name, ("\0",)))}
    assert set(converted) == kept
    if name.startswith("fqgan"):  # the usage buffers are in the files and kept
        assert any(k.endswith("codebook_used") for k in converted)
        assert any(k.startswith(FQGAN_TRAINING_ONLY) for k in official)


def test_var_scales_phis_and_sizes():
    with torch.device("meta"):
        var = create_tokenizer("var-vqvae")
    assert [var.quantize.quant_resi.index(k, 10) for k in range(10)] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert var.layout(256).seq_len == 680 and var.info.tokens_per_image == 680
    assert [h for h, _ in var.layout(512).scale_shapes] == [1, 2, 3, 4, 6, 9, 13, 18, 24, 32]
    with pytest.raises(ValueError, match="256x256, 512x512"):
        var.layout(384)


def test_var_teacher_forcing_is_the_generation_time_input():
    tok = _tiny("var-vqvae")
    with torch.inference_mode():
        tokens = tok.encode(_photos(2, 64))
        shapes = tokens.scale_shapes
        f_hat, steps = None, []
        for k, codes in enumerate(tokens.scales):
            f_hat, nxt = tok.next_scale_input(k, f_hat, codes, shapes)
            steps.append(nxt)
        inputs = tok.teacher_forcing_inputs(tokens)
        assert torch.equal(torch.cat([s.movedim(1, -1).flatten(1, 2) for s in steps[:-1]], 1), inputs)
        assert torch.allclose(f_hat, tok.f_hat(tokens), atol=1e-5)
        # an AR trainer's output: per-scale index lists, or the flat sequence
        y = tok.decode(tokens)
        assert torch.equal(tok.decode_indices([s.flatten(1).view_as(s) for s in tokens.scales]), y)
        assert torch.equal(tok.decode_indices(tokens.flat()), y)
        assert y.abs().max() <= 1  # clamped, as the official fhat_to_img


def test_var_lookup_is_squared_l2_with_the_official_arithmetic():
    torch.manual_seed(0)
    tok = _tiny("var-vqvae")
    z = torch.randn(2, 8, 16, 16)
    codes = tok.quantize(z).codes
    w = tok.quantize.embedding.weight
    first = z.mean((2, 3))  # scale 0 is the area average of the whole map
    assert torch.equal(codes[0].flatten(), torch.cdist(first, w).argmin(1))


def test_vqgan_lc_lookup_is_chunked_and_the_projection_computed_once(monkeypatch):
    torch.manual_seed(0)
    tok = _tiny("vqgan-lc-f16").requires_grad_(False)
    x = _photos(2, 64)
    calls = []
    tok.codebook_projection.register_forward_hook(lambda *a: calls.append(1))
    with torch.inference_mode():
        whole = tok.encode(x).indices
        tok.encode(x)
        assert len(calls) == 1  # computed once for both batches
        # a budget of one row at a time gives the same codes
        monkeypatch.setattr(vq, "LOOKUP_BUDGET_BYTES", 4 * 300 * 3)
        assert torch.equal(tok.encode(x).indices, whole)
    # new weights invalidate the cached codebook
    with torch.no_grad():
        tok.codebook_projection.bias.add_(1.0)
    with torch.inference_mode():
        tok.encode(x)
    assert len(calls) == 2


def test_chunked_lookup_matches_the_whole_matrix():
    torch.manual_seed(0)
    z, codebook = torch.randn(1000, 8), torch.randn(5000, 8)
    full = vq.sq_distances(z, codebook)
    small = 4 * 5000 * 3 * 7  # seven rows per chunk
    assert torch.equal(vq.nearest(z, codebook, max_bytes=small), full.argmin(1))
    near = vq.lookup_neighbours(z.view(10, 100, 8), codebook, 4, max_bytes=small)
    assert torch.equal(near.view(-1, 4), full.topk(4, dim=1, largest=False).indices)


def test_fqgan_codes_are_one_grid_per_sub_codebook_visual_first():
    tok = _tiny("fqgan-triple-16")
    with torch.inference_mode():
        x = _photos(2, 32)
        tokens = tok.encode(x)
        assert tokens.indices.shape == (2, 16, 16, 3) and tokens.vocab_sizes == (64, 64, 64)
        feats = tok._features(x)
        assert torch.equal(tokens.indices[..., 0], tok.quantize_vis(feats[0]).codes)
        assert torch.equal(tokens.indices[..., 2], tok.quantize_sem_high(feats[2]).codes)
        assert torch.equal(tok.decode_indices(tokens.indices), tok.decode(tokens))
    assert tok.info.fixed_resolution and "256" in get_entry("fqgan-dual-16").description


def test_fqgan_refuses_other_sizes_with_the_reason():
    tok = _tiny("fqgan-dual-16")
    with pytest.raises(ValueError, match="encodes 32x32 images only .*positional embeddings"):
        tok.encode(torch.zeros(1, 3, 64, 64))
    with torch.device("meta"):
        full = create_tokenizer("fqgan-dual-16")
    with pytest.raises(ValueError, match="256x256 images only"):
        full.layout(512)


@pytest.mark.parametrize("name", ["var-vqvae", "vqgan-lc-f16", "fqgan-dual-16"])
def test_neighbours_start_with_the_clean_code_and_perturbation_decodes(name):
    tok = _tiny(name)
    x = _photos(2, tok.info.resolution)
    with torch.inference_mode():
        tokens, cand = tok.encode_neighbours(x, 5)
        clean = tok.encode(x)
        assert all(torch.equal(a, b) for a, b in zip(tokens.scales, clean.scales))
        assert all(torch.equal(c[..., 0], s) for c, s in zip(cand, clean.scales))
        moved = perturb(tokens, cand, 1.0, torch.Generator().manual_seed(0))
        assert any((a != b).any() for a, b in zip(moved.scales, clean.scales))
        assert torch.isfinite(tok.decode(moved)).all()


@pytest.fixture
def tiny_entries(monkeypatch):
    """The three families at tiny size, registered with the real entries' weights converters."""
    names = {}
    for name in ("var-vqvae", "vqgan-lc-f16", "fqgan-dual-16", "fqgan-triple-16", "mar-kl16", "tokenbridge-kl16"):
        entry = get_entry(name)
        tiny = f"tiny-{name}"
        monkeypatch.delitem(_REGISTRY, tiny, raising=False)
        checkpoint = entry.weights[entry.default_weights]
        register_tokenizer(tiny, weights={"official": checkpoint, "random": RANDOM_INIT})(
            lambda _n=name, **kw: create_tokenizer(_n, **{**TINY[_n], **kw}))
        monkeypatch.setitem(_REGISTRY, tiny, _REGISTRY[tiny])
        names[name] = tiny
    return names


def _official_file(tmp_path: Path, name: str) -> Path:
    """A tiny model's weights written as the released file of ``name`` is written."""
    state = create_tokenizer(name, **TINY[name]).state_dict()
    if name.startswith("fqgan"):
        state = {"ema": {**state, "feat_pred_head.ln_post.weight": torch.ones(4)}, "args": {}}
    elif name.startswith("vqgan-lc"):
        state = {"state_dict": {**state, "discriminator.main.0.weight": torch.zeros(2)}}
    elif name in ("mar-kl16", "tokenbridge-kl16"):
        state = {"model": state}
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    return path


def test_run_with_weights_in_the_official_format_and_pfid(tmp_path, tiny_entries):
    out = tmp_path / "runs"
    for name, tiny in tiny_entries.items():
        if name == "fqgan-triple-16":
            continue
        res = "32" if name.startswith("fqgan") else "64"
        args = ["run", "--quiet", "--tokenizer", tiny, "--weights", str(_official_file(tmp_path, name)),
                "--resolution", res, "--limit", "2", "--tasks", "pfid", "--alpha", "0,0.5", "--out", str(out)]
        assert main(args) == 0, name
        [path] = (out / "builtin").glob(f"{tiny}_file-*/pfid*.json")
        result = json.loads(path.read_text())
        assert result["tokenizer"]["weights"]["published"] is False
        curve = {c["alpha"]: c["pfid"] for c in result["metrics"]["pfid"]["extra"]["curve"]}
        assert curve[0.5] != curve[0.0]


def test_tokenbridge_levels_are_its_quantizer_on_the_scaled_mean_in_its_channel_order():
    tok = _tiny("tokenbridge-kl16")
    x = _photos(2, 64)
    with torch.no_grad():
        mar = _tiny("mar-kl16")
        mar.load_state_dict(tok.state_dict())  # the same file: TokenBridge has no weights of its own
        scaled = tok.scaled_latents(x)
        assert torch.equal(scaled, mar.encode(x).latents * 0.2325)
        tokens = tok.encode(x)
        # TokenBridge's rule written out: the scaled latent on [-5, 5] -> [-3, 3], nearest truncated-normal bin mean
        mapped = ((scaled + 5) / 10 * 6 - 3).clamp(-3, 3).movedim(1, -1)
        edges = torch.tensor(scipy_norm.ppf(np.linspace(0, 1, 65)), dtype=torch.float64).clamp(-3, 3)
        points = torch.tensor([scipy_truncnorm.mean(a, b) for a, b in zip(edges[:-1], edges[1:])])
        natural = (mapped.double()[..., None] - points).abs().argmin(-1)
        order = list(TINY["tokenbridge-kl16"]["channel_order"])
        assert tokens.indices.shape == (2, 16, 16, 8) and tok.layout(64).vocab_sizes == (64,) * 8
        assert torch.equal(tokens.indices, natural[..., order])
        # decoding starts from the levels' values, back in the latent's own channel order (float64 bin means here)
        values = ((points[natural] + 3) / 6 * 10 - 5).float().movedim(-1, 1)
        assert torch.allclose(tok.quantize.dequantize(tokens.indices), values, atol=1e-5)
        assert torch.equal(tok.decode_indices(tokens.flat()), tok.decode(tokens))
    assert tok.encode_neighbours(x, 5)[1][0][..., 0, :].equal(tokens.indices)  # the clean code comes first
    with pytest.raises(ValueError, match="channel_order must order the 8 channels"):
        create_tokenizer("tokenbridge-kl16", **{**TINY["tokenbridge-kl16"], "channel_order": (0,) * 8})


def test_mar_encodes_the_posterior_mean_and_scales_for_the_generator():
    tok = _tiny("mar-kl16")
    x = _photos(2, 64)
    with torch.no_grad():
        posterior = tok.encode_posterior(x)
        assert torch.equal(tok.encode(x).latents, posterior.mean)
        sample = posterior.sample(torch.Generator().manual_seed(0))
    assert not torch.equal(sample, posterior.mean)
    assert torch.allclose(tok.to_generator_space(posterior.mean), posterior.mean * 0.2325)


def test_wrong_variant_and_damaged_files_are_clear_errors(tmp_path, tiny_entries, capsys):
    dual = _official_file(tmp_path, "fqgan-dual-16")
    with pytest.raises(WeightsMismatch, match="dual FQGAN checkpoint.*triple"):
        load_tokenizer(tiny_entries["fqgan-triple-16"], weights=dual)
    with pytest.raises(WeightsMismatch, match="projects its codebook to dim 4.*use vqgan-lc-f8"):
        load_tokenizer(tiny_entries["vqgan-lc-f16"], weights=_official_file(tmp_path, "vqgan-lc-f8"))
    with pytest.raises(WeightsMismatch, match="do not fit"):
        load_tokenizer(tiny_entries["var-vqvae"], weights=_official_file(tmp_path, "vqgan-lc-f16"))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(_official_file(tmp_path, "var-vqvae").read_bytes()[:5000])
    with pytest.raises(WeightsUnavailable, match="cannot read weights"):
        load_tokenizer(tiny_entries["var-vqvae"], weights=truncated)
    # the CLI reports a mismatch in one line, without a traceback
    assert main(["run", "--tokenizer", tiny_entries["fqgan-triple-16"], "--weights", str(dual),
                 "--limit", "1", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "dual FQGAN checkpoint" in err and "Traceback" not in err


def test_released_files_fail_offline_naming_file_and_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("VTBENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for name, expected in (("var-vqvae", "vae_ch160v4096z32.pth"), ("fqgan-triple-8", "fqgan_triple_ds8.pt"),
                           ("vqgan-lc-f8", "vqgan-lc-100K-f8-dim4.pth")):
        with pytest.raises(WeightsUnavailable) as e:
            load_tokenizer(name)
        assert expected in str(e.value) and str(tmp_path) in str(e.value)
    assert "drive.google.com" in str(e.value)  # VQGAN-LC is released on Google Drive, fetched by hand


def test_list_shows_files_pins_and_published_numbers(capsys):
    assert main(["list", "tokenizers"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "hf://FoundationVision/var/vae_ch160v4096z32.pth" in rows["var-vqvae"]
    assert "unpinned" not in rows["var-vqvae"]
    assert "hf://ZechenBai/FQGAN/fqgan_dual_ds16.pt (unpinned)" in rows["fqgan-dual-16"]
    assert "rFID 0.94" in rows["fqgan-dual-16"] and "rFID 2.62" in rows["vqgan-lc-f16"]
    assert "rFID 0.24" in rows["fqgan-triple-8"]

"""FlexTok (`flextok-*`): built from the config in the safetensors header and loaded strictly; configs the
port does not implement are refused; the causal register mask, prefixes and nested dropout; seeded decoding
and APG; pFID's neighbours; the released sizes; ``vtbench run --num-tokens``. At the tiny config of
`vtbench.tokenizers.flextok` (the header format); forward equivalence with the official code is shown by
``benchmarks/equivalence/flextok.py``.
"""

import copy
import json

import pytest
import torch
from safetensors.torch import save_file

from tests.test_contract import _photos
from vtbench.bench.perturbation import perturb
from vtbench.bench.runner import Prefix
from vtbench.cli import main
from vtbench.tokenizers import create_tokenizer, load_tokenizer
from vtbench.tokenizers.flextok import TINY_CONFIG, TINY_VAE, VARIANTS, _apg
from vtbench.tokenizers.weights import WeightsMismatch

HEADER = {k: str(v) for k, v in TINY_CONFIG.items()}  # as the official save_safetensors writes it


def _tiny(config=TINY_CONFIG, **kw):
    torch.manual_seed(0)
    return create_tokenizer("flextok-d12-d12", config=config, vae_arch=TINY_VAE, **kw).eval()


@pytest.fixture(scope="module")
def tok():
    return _tiny()


@pytest.fixture(scope="module")
def x():
    return _photos(2, 32)


def test_the_module_is_built_from_the_header_and_loaded_strictly(tmp_path):
    torch.manual_seed(0)
    ref = create_tokenizer("flextok-d18-d28", config=TINY_CONFIG).eval()  # the official f8 VAE: 128 px
    x = _photos(1, 128)
    save_file(ref.state_dict(), str(tmp_path / "model.safetensors"), metadata=HEADER)
    # the entry's own architecture is the full d18-d28: only the header can make this file fit
    tok = load_tokenizer("flextok-d18-d28", weights=tmp_path / "model.safetensors")
    assert tok.config == TINY_CONFIG and tok.loaded_weights.published is False
    assert tok.num_parameters == ref.num_parameters
    with torch.inference_mode():
        assert torch.equal(tok.encode(x).scales[0], ref.encode(x).scales[0])
    state = {k: v for k, v in ref.state_dict().items() if "dec_nested_dropout" not in k}
    save_file(state, str(tmp_path / "short.safetensors"), metadata=HEADER)
    with pytest.raises(WeightsMismatch, match="missing keys: decoder.module_dict.dec_nested_dropout"):
        load_tokenizer("flextok-d18-d28", weights=tmp_path / "short.safetensors")
    save_file(ref.state_dict(), str(tmp_path / "bare.safetensors"))
    with pytest.raises(WeightsMismatch, match="no FlexTok config"):
        load_tokenizer("flextok-d18-d28", weights=tmp_path / "bare.safetensors")


def _edited(edit) -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    edit(config)
    return config


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["encoder"]["module_dict"]["enc_transformer"].update(rope_forward_read_key="rope"),
     r"FlexTransformer: keys \['rope_forward_read_key'\] are not implemented"),
    (lambda c: c["encoder"]["module_dict"]["enc_register_module"].update(ordering_mode="avg_pool"),
     "ordering_mode avg_pool"),
    (lambda c: c["decoder"]["module_dict"].update(extra={"_target_": "flextok.model.x.MaskTokenModule"}),
     r"modules \['MaskTokenModule'\]"),
    (lambda c: c["vae"].update(scaling_factor=None, hf_hub_path="EPFL-VILAB/flextok_vae_c16"), "scaling factor"),
    (lambda c: c["decoder"]["module_dict"]["dec_to_patches"].update(use_mup_readout=True), "muP readout"),
])
def test_configs_the_port_does_not_implement_are_refused(edit, message):
    with pytest.raises(WeightsMismatch, match=message):
        _tiny(_edited(edit))


def test_register_i_sees_the_patches_and_registers_up_to_i_only(tok, x):
    with torch.inference_mode():
        z = tok.latents(x)
        other = copy.deepcopy(tok)
        other.encoder.module_dict["enc_register_module"].registers[5:] += 1.0
        z_other = other.latents(x)
    assert torch.equal(z_other[..., :5], z[..., :5])  # registers 0..4 (and the patches) never see 5..7
    assert not torch.allclose(z_other[..., 5:], z[..., 5:])


def test_positions_past_the_kept_length_do_not_reach_the_decoder(tok):
    quants = torch.rand(2, 8, 6) * 2 - 1
    changed = quants.clone()
    changed[:, 3:] = -changed[:, 3:]
    noise = torch.randn(2, 4, 16, 16)
    keep = torch.tensor([3, 3])
    with torch.inference_mode():
        assert torch.equal(tok.velocity(noise, 0.5, quants, keep), tok.velocity(noise, 0.5, changed, keep))
        full = torch.tensor([8, 8])
        assert not torch.allclose(tok.velocity(noise, 0.5, quants, full), tok.velocity(noise, 0.5, changed, full))
        # the unconditional pass sees no tokens at all
        assert torch.equal(tok.velocity(noise, 0.5, quants, full, uncond=True),
                           tok.velocity(noise, 0.5, changed, keep, uncond=True))


def test_any_prefix_decodes_and_lengths_are_per_image(tok, x):
    with torch.inference_mode():
        tokens = tok.encode(x)
        assert torch.equal(tok.encode(x, num_tokens=3).scales[0], tokens.scales[0][:, :3])
        for k in (1, 3, 8):
            assert tok.decode(tok.encode(x, num_tokens=k)).shape == x.shape
        mixed = tok.decode(tokens.with_lengths([3, 8]))
        alone = torch.cat([tok.decode(tokens[:1].map(lambda s: s[:, :3])), tok.decode(tokens[1:])])
        # tokens past an image's length are ignored: its own prefix gives the same image
        assert torch.allclose(mixed, alone, atol=1e-5)
    with pytest.raises(ValueError, match="1..8"):
        tok.encode(x, num_tokens=9)


def test_decoding_is_seeded(tok, x):
    with torch.inference_mode():
        tokens = tok.encode(x)

        def decode(seed=None, t=tokens, **kw):
            return tok.decode(t, generator=None if seed is None else torch.Generator().manual_seed(seed), **kw)

        assert torch.equal(decode(1), decode(1)) and not torch.allclose(decode(1), decode(2))
        # without a generator each image's noise is seeded by its tokens: repeatable, batch-independent
        together = decode()
        assert torch.equal(together, decode())
        assert torch.allclose(together, torch.cat([decode(t=tokens[:1]), decode(t=tokens[1:])]), atol=1e-5)
        assert not torch.allclose(together, decode(1))
        assert not torch.allclose(decode(1, steps=3, guidance=1.0), decode(1))
    with pytest.raises(TypeError, match="no decoding option eta"):
        tok.decode(tokens, eta=0.5)
    with pytest.raises(ValueError, match="steps is at least 1"):
        tok.decode(tokens, steps=0)


def test_apg_keeps_the_part_orthogonal_to_the_prediction_with_its_norm_capped():
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    uncond[1] = cond[1] + 1e-3 * uncond[1]  # a small difference is not scaled up
    guided, running = _apg(cond, uncond, 7.5, None)
    update = (guided - cond) / 6.5
    assert torch.allclose((update * cond).sum((1, 2, 3)), torch.zeros(2), atol=1e-4)
    norms, diff_norms = update.flatten(1).norm(dim=1), (cond - uncond).flatten(1).norm(dim=1)
    assert diff_norms[0] > 10 and norms[0] <= 2.5 + 1e-4  # capped at the threshold
    assert 0.5 * diff_norms[1] < norms[1] <= diff_norms[1]  # below it: projected only
    assert torch.equal(running, cond - uncond)
    _, second = _apg(cond, uncond, 7.5, running)
    assert torch.allclose(second, 0.5 * (cond - uncond))  # momentum -0.5


def test_pfid_neighbours_are_the_tokens_and_single_level_moves(tok, x):
    with torch.inference_mode():
        tokens, (cand,) = tok.encode_neighbours(x, 5)
        assert torch.equal(tokens.scales[0], tok.encode(x).scales[0])
        assert cand.shape == (2, 8, 5, 6) and torch.equal(cand[:, :, 0], tokens.scales[0])
        assert ((cand[:, :, 1:] - cand[:, :, :1]).abs().sum(-1) <= 1).all()
        perturbed = perturb(tokens, [cand], 0.5, torch.Generator().manual_seed(0))
        assert not torch.equal(perturbed.scales[0], tokens.scales[0])
        assert tok.decode(perturbed).shape == x.shape


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_random_weights_have_the_released_layout(name):
    _, enc, dec = VARIANTS[name]
    with torch.device("meta"):
        tok = create_tokenizer(name)
    i = tok.info
    assert (i.resolution, i.tokens_per_image, i.downsample, i.vocab_sizes) == (256, 256, 16, (8, 8, 8, 5, 5, 5))
    for part, depth in (("encoder", enc), ("decoder", dec)):
        blocks = tok.get_submodule(f"{part}.module_dict.{part[:3]}_transformer").blocks
        width = 64 * depth
        assert len(blocks) == depth and blocks[0].attn.wq.weight.shape == (width, width)
        assert blocks[0].attn.heads == depth and blocks[0].mlp.fc3.weight.shape == (int(2 * 4 * width / 3), width)
    assert blocks[0].adaLN_modulation[1].weight.shape == (2 * 6 * 64 * dec, 64 * dec)  # patches and registers
    assert tok.vae.vae.encoder.conv_out.weight.shape[0] == 2 * 16


def test_run_scores_each_prefix_as_its_own_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("VTBENCH_NO_FETCH", "1")
    out = tmp_path / "runs"
    rc = main(["run", "--quiet", "--tokenizer", "mini-flextok", "--num-tokens", "8,32", "--limit", "2",
               "--tasks", "reconstruction", "--out", str(out)])
    assert rc == 0
    for k in (8, 32):
        res = json.loads((out / "builtin" / f"mini-flextok-k{k}" / "reconstruction.first2.json").read_text())
        t = res["tokenizer"]
        assert (t["name"], t["registry_name"], t["tokens_per_image"]) == (f"mini-flextok-k{k}", "mini-flextok", k)
        assert res["metrics"]["bits_per_pixel"]["value"] == pytest.approx(k * 12 / 256 ** 2)
    # the same row as the mini-zoo's registered prefix
    registered = load_tokenizer("mini-flextok-k32")
    prefix = Prefix(load_tokenizer("mini-flextok"), 32)
    y = _photos(1, 256)
    with torch.inference_mode():
        assert torch.equal(prefix.encode(y).scales[0], registered.encode(y).scales[0])
        assert torch.equal(prefix.decode(prefix.encode(y)), registered.decode(registered.encode(y)))
    assert main(["run", "--quiet", "--tokenizer", "mini-vq", "--num-tokens", "8", "--limit", "1",
                 "--tasks", "reconstruction", "--out", str(out)]) == 1
    assert "not an ordered tokenizer" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_the_transformers_in_bf16(tok, x):
    gpu = copy.deepcopy(tok).cuda()
    seen = []
    gpu.decoder.module_dict["dec_transformer"].blocks[0].mlp.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype))
    with torch.inference_mode():
        tokens = gpu.encode(x.cuda())
        y = gpu.decode(tokens)
    assert seen and set(seen) == {torch.bfloat16}
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    agree = (tokens.scales[0].cpu() == tok.encode(x).scales[0]).float().mean()
    assert agree > 0.9


def test_decoding_options_are_checked_recorded_and_a_change_recomputes(tmp_path, monkeypatch, x):
    from vtbench.bench.datasets import get_dataset
    from vtbench.bench.runner import RunConfig, evaluate
    from vtbench.bench.tasks import get_task
    from vtbench.cli import _sampling

    monkeypatch.setenv("VTBENCH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("VTBENCH_NO_FETCH", "1")
    assert _sampling("steps=2,guidance=1.5,apg=false") == {"steps": 2, "guidance": 1.5, "apg": False}
    from vtbench.tokenizers.registry import LoadedWeights

    tok = _tiny()
    tok.label, tok.loaded_weights = "tiny-flextok", LoadedWeights("random", "seed 0")
    with pytest.raises(TypeError, match="takes a int"):
        tok.set_sampling(steps=2.5)
    with pytest.raises(TypeError, match="takes a bool"):
        tok.set_sampling(apg=1)
    with pytest.raises(TypeError, match="no decoding option temperature"):
        tok.set_sampling(temperature=1.0)
    tok.set_sampling(steps=2, guidance=3)
    assert tok.sampling == {"steps": 2, "guidance": 3.0, "apg": True}
    with torch.inference_mode():
        tokens = tok.encode(x)
        assert torch.equal(tok.decode(tokens), tok.decode(tokens, steps=2, guidance=3.0))
    dataset, task, cfg = get_dataset("builtin"), get_task("reconstruction"), RunConfig(limit=1, batch_size=1)
    result, path = evaluate(tok, dataset, task, tmp_path / "runs", cfg, progress=False)
    assert result["tokenizer"]["sampling"] == {"steps": 2, "guidance": 3.0, "apg": True}
    assert evaluate(tok, dataset, task, tmp_path / "runs", cfg, progress=False)[0]["created"] == result["created"]
    tok.set_sampling(steps=1)
    with pytest.warns(UserWarning, match="decoding options"):
        again, _ = evaluate(tok, dataset, task, tmp_path / "runs", cfg, progress=False)
    assert again["tokenizer"]["sampling"]["steps"] == 1

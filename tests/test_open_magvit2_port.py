"""Open-MAGVIT2's LFQ tokenizer (`open-magvit2-256`, `open-magvit2-128`): names and shapes against the official
key lists at full size (meta device), the converter's rules (EMA shadows under dot-stripped names or the raw
weights, the training-only entries it drops, a file of the other variant), the LFQ bits (least significant
first), the decoder's own pieces, the index forms the official AR model emits and pFID's bit flips, at a tiny
random config.

``tests/official_keys/open_magvit2_{256,128}.txt`` were dumped from TencentARC/SEED-Voken at commit
b9a17eac8e2c0779c12a5429b0bfd6c502788484 (``VQModel(**init_args)`` of
``configs/Open-MAGVIT2/gpu/imagenet_lfqgan_{256,128}_L.yaml``, ``encoder.*`` and ``decoder.*`` of its state dict)
by ``benchmarks/equivalence/open_magvit2.py --dump-keys``; that script also shows forward equivalence.
"""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from tests.test_contract import TINY, _photos, assert_pretrained_round_trip
from tests.test_taming import OFFICIAL_KEYS, assert_official_shapes, full_size_shapes, read_official_keys
from vtbench.bench.perturbation import perturb
from vtbench.cli import main
from vtbench.tokenizers import create_tokenizer, get_entry, load_tokenizer, register_tokenizer
from vtbench.tokenizers.open_magvit2 import (
    VARIANTS,
    AdaptiveGroupNorm,
    OpenMAGVIT2,
    _converter,
    _stripped_names,
    depth_to_space,
)
from vtbench.tokenizers.registry import _REGISTRY
from vtbench.tokenizers.weights import (
    Checkpoint,
    WeightsMismatch,
    WeightsUnavailable,
    load_strict,
    read_state_dict,
    single_file,
)

NAMES = sorted(VARIANTS)
KEY_FILES = {"open-magvit2-256": "open_magvit2_256.txt", "open-magvit2-128": "open_magvit2_128.txt"}
#: what the released checkpoint carries besides the generator (names as the official VQLPIPSWithDiscriminator's)
LOSS = {"loss.discriminator.main.0.weight": (64, 3, 4, 4), "loss.discriminator.main.3.num_batches_tracked": (),
        "loss.perceptual_loss.lin0.model.1.weight": (1, 64, 1, 1),
        "loss.perceptual_loss.scaling_layer.shift": (1, 3, 1, 1)}


def _meta(shapes: dict) -> dict:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def _official(name: str) -> dict[str, tuple[int, ...]]:
    return read_official_keys(OFFICIAL_KEYS / KEY_FILES[name], ("",))


def _lightning(raw: dict, ema: dict | None) -> dict:
    """A checkpoint laid out as the release: the generator, the losses, LitEma's shadows (the generator's and the
    discriminator's, under names without dots) and its counters, under ``state_dict`` beside Lightning's fields."""
    state = {**raw, **{k: torch.zeros(s) for k, s in LOSS.items()}}
    if ema is not None:
        state.update({f"model_ema.{k.replace('.', '')}": v for k, v in ema.items()})
        state.update({"model_ema.lossdiscriminatormain0weight": torch.zeros(LOSS["loss.discriminator.main.0.weight"]),
                      "model_ema.decay": torch.tensor(0.999), "model_ema.num_updates": torch.tensor(-1)})
    return {"state_dict": state, "epoch": 269, "global_step": 1_350_000, "pytorch-lightning_version": "2.2.1",
            "hyper_parameters": {"n_embed": 262144, "embed_dim": 18, "use_ema": ema is not None}}


def _convert(name: str, state: dict, tag: str = "hub") -> dict:
    return get_entry(name).weights[tag].state_dict({"model": state})


def _tiny(name: str = "open-magvit2-256", **kw) -> OpenMAGVIT2:
    return create_tokenizer(name, **{**TINY[name], **kw}).eval()


@pytest.mark.parametrize("name", NAMES)
def test_full_size_state_dict_has_the_official_keys_and_shapes(name):
    official = _official(name)
    assert_official_shapes(full_size_shapes(name), official)


@pytest.mark.parametrize("name", NAMES)
def test_the_converter_takes_the_ema_shadows_or_the_raw_weights_and_drops_training_entries(name):
    raw, ema = _meta(_official(name)), _meta(_official(name))
    assert len(_stripped_names(raw)) == len(raw)  # no two parameters lose their dots to the same name
    for file in (_lightning(raw, ema), _lightning(raw, ema)["state_dict"]):  # a bare state dict too
        out = _convert(name, file)
        assert set(out) == set(raw) and all(out[k] is ema[k] for k in raw)
        out = _convert(name, file, "hub-raw")
        assert set(out) == set(raw) and all(out[k] is raw[k] for k in raw)
    # the shadows alone suffice; a file without shadows (use_ema: False) loads as it is
    shadows = {k: v for k, v in _lightning({}, ema)["state_dict"].items() if not k.startswith("loss.")}
    assert all(_convert(name, shadows)[k] is ema[k] for k in raw)
    assert all(_convert(name, _lightning(raw, None))[k] is raw[k] for k in raw)


def test_dot_stripped_names_map_back_by_the_model_keys():
    names = _stripped_names(_official("open-magvit2-256"))
    assert names["decoderup1block0nin_shortcutweight"] == "decoder.up.1.block.0.nin_shortcut.weight"
    assert names["decoderadaptive4gammaweight"] == "decoder.adaptive.4.gamma.weight"
    assert names["encodermid_block3conv2weight"] == "encoder.mid_block.3.conv2.weight"
    with pytest.raises(WeightsMismatch, match="up.11.weight and up1.1.weight are both up11weight"):
        _stripped_names(["up.11.weight", "up1.1.weight"])


def test_ema_entries_must_cover_the_model_and_name_its_parameters():
    raw, ema = _meta(_official("open-magvit2-256")), _meta(_official("open-magvit2-256"))
    file = _lightning(raw, ema)
    del file["state_dict"]["model_ema.decoderconv_outbias"]
    with pytest.raises(WeightsMismatch, match="EMA copies lack 1 of the tokenizer's parameters: decoder.conv_out.bias"):
        _convert("open-magvit2-256", file)
    file = _lightning(raw, ema)
    file["state_dict"]["model_ema.quantizecodebook"] = torch.zeros(4)
    with pytest.raises(WeightsMismatch, match="model_ema.quantizecodebook is no parameter"):
        _convert("open-magvit2-256", file)
    # an unknown raw entry is left for the strict load to report
    file = _lightning(raw, ema)
    file["state_dict"]["quantize.mask"] = torch.zeros(18)
    assert "quantize.mask" in _convert("open-magvit2-256", file)


@pytest.mark.parametrize("ema", [True, False])
def test_a_file_of_the_other_variant_names_the_entry(ema):
    def file(name):
        official = _meta(_official(name))
        return _lightning({} if ema else official, official if ema else None)

    with pytest.raises(WeightsMismatch, match="4 encoder levels \\(8x downsampling\\); the entry has 5: use "
                                              "open-magvit2-128"):
        _convert("open-magvit2-256", file("open-magvit2-128"))
    with pytest.raises(WeightsMismatch, match="5 encoder levels \\(16x downsampling\\); the entry has 4: use "
                                              "open-magvit2-256"):
        _convert("open-magvit2-128", file("open-magvit2-256"), "hub-raw")
    narrow = file("open-magvit2-256")
    narrow["state_dict"]["model_ema.encoderconv_outweight" if ema else "encoder.conv_out.weight"] = torch.empty(
        14, 512, 1, 1, device="meta")
    with pytest.raises(WeightsMismatch, match="codes 14 bits per position"):
        _convert("open-magvit2-256", narrow)


def test_bits_are_signs_with_channel_0_least_significant():
    tok = _tiny()
    x = _photos(2, 32)
    with torch.inference_mode():
        z = tok.features(x)
        tokens = tok.encode(x)
    assert tokens.indices.shape == (2, 8, 8, 18) and tok.info.order == "lsb"
    assert torch.equal(tokens.indices, (z > 0).long().movedim(1, -1))
    assert torch.equal(tokens.joint_ids().view(2, 8, 8), (tokens.indices << torch.arange(18)).sum(-1))
    assert torch.equal(tok.quantize.dequantize(tokens.indices), torch.where(z > 0, 1.0, -1.0))  # codes +-1
    assert tok.quantize(torch.zeros(1, 18, 1, 1)).codes.sum() == 0  # zero is negative, as the official x > 0
    low = torch.zeros(1, 18, dtype=torch.long)
    low[0, 0] = 1
    assert tok.layout().pack(low).item() == 1


def test_depth_to_space_is_depth_column_row_not_pixel_shuffle():
    x = torch.randn(2, 12, 3, 5)
    y = depth_to_space(x)
    assert y.shape == (2, 3, 6, 10)
    for i in range(2):
        for j in range(2):  # output pixel (2y + i, 2x + j) of channel c is input channel (2i + j) * 3 + c
            assert torch.equal(y[:, :, i::2, j::2], x[:, (2 * i + j) * 3:(2 * i + j + 1) * 3])
    assert not torch.equal(y, F.pixel_shuffle(x, 2))


def test_adaptive_group_norm_uses_the_unbiased_spread_of_the_codes():
    torch.manual_seed(0)
    agn = AdaptiveGroupNorm(4, 32)
    x, q = torch.randn(2, 32, 5, 5), torch.randn(2, 4, 3, 3)
    flat, normed = q.flatten(2), F.group_norm(x, 32, eps=1e-6)
    shift = agn.beta(flat.mean(-1))[..., None, None]

    def scaled(correction):
        return agn.gamma((flat.var(-1, correction=correction) + 1e-6).sqrt())[..., None, None] * normed + shift

    assert torch.allclose(agn(x, q), scaled(1), atol=1e-6)
    assert not torch.allclose(agn(x, q), scaled(0), atol=1e-3)  # the population variance would differ


def test_decode_indices_takes_every_form_of_the_official_indices():
    tok = _tiny()
    with torch.inference_mode():
        tokens = tok.encode(_photos(2, 32))
        y = tok.decode(tokens)
        assert y.abs().max() <= 1  # clamped, as the official evaluation
        bits, joint = tokens.indices, tokens.joint_ids()
        pre = (bits[..., :6] << torch.arange(6)).sum(-1)
        post = (bits[..., 6:] << torch.arange(12)).sum(-1)
        forms = {
            "flat bits (B, L, 18)": tokens.flat(),
            "bits (B, h, w, 18)": bits,
            "joint index map (B, h, w)": joint.view(2, 8, 8).int(),
            "joint index sequence (B, L)": joint,
            "AR sub-tokens (B, L) x 2": (pre.flatten(1), post.flatten(1)),
            "AR sub-tokens (B, h, w) x 2": [pre, post],
        }
        for what, ids in forms.items():
            assert torch.equal(tok.decode_indices(ids), y), what
        assert (post < 2 ** 12).all() and (pre < 2 ** 6).all() and torch.equal(joint.view(2, 8, 8), pre + 64 * post)
        with pytest.raises(ValueError, match="2 sub-tokens of \\(6, 12\\) bits"):
            tok.decode_indices((pre, post, post))
        with pytest.raises(ValueError, match="2 sub-tokens"):
            tok.decode_indices((pre.flatten(1), post))
        with pytest.raises(ValueError, match="outside"):
            tok.decode_indices(joint.clone().fill_(2 ** 18))
        with pytest.raises(ValueError, match="outside"):
            tok.decode_indices((pre, post + 2 ** 12))
        with pytest.raises(TypeError, match="integer"):
            tok.decode_indices(joint.float())
        with pytest.raises(TypeError, match="integer"):
            tok.decode_indices((pre.float(), post))


def test_pfid_neighbours_are_the_cheapest_single_bit_flips():
    tok = _tiny()
    x = _photos(2, 32)
    with torch.inference_mode():
        tokens, [cand] = tok.encode_neighbours(x, 3)
        clean = tok.encode(x)
        assert cand.shape == (2, 8, 8, 3, 18) and torch.equal(cand[..., 0, :], clean.indices)
        flips = (cand[..., 1:, :] != clean.indices[..., None, :])
        assert (flips.sum(-1) == 1).all()
        z = tok.features(x).movedim(1, -1).abs()
        assert torch.equal(flips[..., 0, :].float().argmax(-1), z.argmin(-1))  # nearest the sign boundary first
        moved = perturb(tokens, [cand], 1.0, torch.Generator().manual_seed(0))
        assert (moved.indices != clean.indices).any() and torch.isfinite(tok.decode(moved)).all()


@pytest.fixture
def tiny_entry(monkeypatch):
    """`open-magvit2-256` at tiny size with its two converters."""
    monkeypatch.delitem(_REGISTRY, "tiny-open-magvit2", raising=False)
    cfg = replace(VARIANTS["open-magvit2-256"][0], **TINY["open-magvit2-256"])
    hub = get_entry("open-magvit2-256").weights["hub"]
    register_tokenizer("tiny-open-magvit2", weights={
        "hub": Checkpoint(hub.files, single_file(_converter(cfg, ema=True))),
        "hub-raw": Checkpoint(hub.files, single_file(_converter(cfg, ema=False)))})(lambda: OpenMAGVIT2(cfg))
    monkeypatch.setitem(_REGISTRY, "tiny-open-magvit2", _REGISTRY["tiny-open-magvit2"])
    return "tiny-open-magvit2"


def _released_file(tmp_path, raw: OpenMAGVIT2, ema: OpenMAGVIT2 | None, drop: str = "", **extra):
    file = _lightning(raw.state_dict(), None if ema is None else ema.state_dict())
    file["state_dict"].update(extra)
    file["state_dict"].pop(drop, None)
    path = tmp_path / "imagenet_256_L.ckpt"
    torch.save(file, path)
    return path


def test_a_lightning_checkpoint_loads_its_ema_weights_by_default_and_raw_on_request(tmp_path, tiny_entry):
    torch.manual_seed(1)
    raw, ema = _tiny(), _tiny()
    path = _released_file(tmp_path, raw, ema)
    loaded = load_tokenizer(tiny_entry, weights=path)  # through read_state_dict: weights_only=True
    assert loaded.loaded_weights.published is False
    assert all(torch.equal(v, ema.state_dict()[k]) for k, v in loaded.state_dict().items())
    as_raw = OpenMAGVIT2(loaded.cfg)
    load_strict(as_raw, get_entry(tiny_entry).weights["hub-raw"].state_dict({"model": read_state_dict(path)}), "raw")
    assert all(torch.equal(v, raw.state_dict()[k]) for k, v in as_raw.state_dict().items())
    x = _photos(1, 32)
    with torch.inference_mode():
        assert torch.equal(loaded.encode(x).indices, ema.encode(x).indices)
        assert not torch.equal(loaded.reconstruct(x), as_raw.eval().reconstruct(x))


def test_strict_load_errors(tmp_path, tiny_entry):
    tok = _tiny()
    with pytest.raises(WeightsMismatch, match="(?s)do not fit.*unexpected keys: quantize.mask"):
        load_tokenizer(tiny_entry, weights=_released_file(tmp_path, tok, tok, **{"quantize.mask": torch.ones(18)}))
    with pytest.raises(WeightsMismatch, match="(?s)do not fit.*missing keys: encoder.conv_in.weight"):
        load_tokenizer(tiny_entry, weights=_released_file(tmp_path, tok, None, drop="encoder.conv_in.weight"))
    with pytest.raises(WeightsMismatch, match="EMA copies lack 1 .*: encoder.conv_in.weight"):
        load_tokenizer(tiny_entry, weights=_released_file(tmp_path, tok, tok, drop="model_ema.encoderconv_inweight"))
    other = _tiny("open-magvit2-128")
    with pytest.raises(WeightsMismatch, match="2 encoder levels .* the entry has 3 \\(no released entry"):
        load_tokenizer(tiny_entry, weights=_released_file(tmp_path, other, other))


def test_entries_list_files_licence_and_published_figures(monkeypatch, tmp_path, capsys):
    for name, repo, filename, rfid, psnr in (
            ("open-magvit2-256", "TencentARC/Open-MAGVIT2-Tokenizer-256-resolution", "imagenet_256_L.ckpt", 1.17,
             21.90),
            ("open-magvit2-128", "TencentARC/Open-MAGVIT2-Tokenizer-128-resolution", "imagenet_128_L.ckpt", 1.18,
             25.08)):
        entry = get_entry(name)
        assert list(entry.weights) == ["hub", "hub-raw"]
        hub = entry.weights["hub"]
        assert hub.files["model"].repo_id == repo and hub.files["model"].filename == filename
        assert hub.files == entry.weights["hub-raw"].files and hub.license == "Apache-2.0"
        assert hub.published["rfid"] == rfid and hub.published["psnr"] == psnr and "EMA" in hub.published["note"]
    with torch.device("meta"):
        assert create_tokenizer("open-magvit2-128").layout(256).scale_shapes == ((32, 32),)
    assert main(["list", "tokenizers"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "imagenet_256_L.ckpt (unpinned)" in rows["open-magvit2-256"]
    assert "rFID 1.17, PSNR 21.9 (ImageNet val, 256x256)" in rows["open-magvit2-256"]
    assert "rFID 1.18, PSNR 25.08 (ImageNet val, 128x128)" in rows["open-magvit2-128"]
    monkeypatch.setenv("VTBENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailable) as e:
        load_tokenizer("open-magvit2-128:hub-raw")
    assert "imagenet_128_L.ckpt" in str(e.value) and str(tmp_path) in str(e.value)


def test_save_and_load_pretrained_round_trip(tmp_path):
    assert_pretrained_round_trip(_tiny("open-magvit2-128"), _photos(1, 32), tmp_path / "tok")

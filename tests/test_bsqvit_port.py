"""BSQ-ViT (`bsq-vit-b18`, `bsq-vit-b36`): names and shapes against the official key lists at full size (meta
device), the converter's forms of the released training checkpoint (EMA first) and its wrong-variant errors, the
reading of that checkpoint's pickled OmegaConf config without OmegaConf (and the refusal of any other global),
bits and MSB-first int64 ids, the forms of ids an AR model emits, and pFID's bit flips, at a tiny random config.
Forward equivalence with the official code is shown by ``benchmarks/equivalence/bsqvit.py``.
"""

import argparse
import collections
import fractions
import os
import sys
import types
import typing

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.test_contract import TINY, _photos, assert_pretrained_round_trip
from tests.test_taming import OFFICIAL_KEYS, assert_official_shapes, read_official_keys
from vtbench.bench.perturbation import perturb
from vtbench.cli import main
from vtbench.tokenizers import create_tokenizer, get_entry, load_tokenizer, register_tokenizer
from vtbench.tokenizers.bsqvit import VARIANTS, _converter
from vtbench.tokenizers.registry import _REGISTRY
from vtbench.tokenizers.weights import (
    RANDOM_INIT,
    Checkpoint,
    ManualFile,
    WeightsMismatch,
    WeightsUnavailable,
    _Opaque,
    read_state_dict,
    single_file,
)

KEY_FILES = {"bsq-vit-b18": "bsqvit_b18_f8_256.txt", "bsq-vit-b36": "bsqvit_b36_f8_256.txt"}


def _official(name: str) -> dict[str, torch.Tensor]:
    """The official model's state dict for this entry, as meta tensors."""
    shapes = read_official_keys(OFFICIAL_KEYS / KEY_FILES[name], ("",))
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def _tiny(name: str = "bsq-vit-b18", **kw):
    return create_tokenizer(name, **{**TINY[name], **kw}).eval()


def _convert(name: str, state: dict) -> dict:
    entry = get_entry(name)
    return entry.weights[entry.default_weights].state_dict({"model": state})


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_full_size_state_dict_has_the_official_keys_and_shapes(name):
    official = {k: tuple(v.shape) for k, v in _official(name).items()}
    assert len(official) == 309
    with torch.device("meta"):
        tok = create_tokenizer(name)
    assert_official_shapes({k: tuple(t.shape) for k, t in tok.state_dict().items()}, official)
    assert tok.quantize.basis.dtype == torch.int64 and tok.cfg.bits == VARIANTS[name][0]


def test_the_converter_takes_the_ema_weights_first_then_the_raw_ones_or_a_bare_state_dict():
    bare = _official("bsq-vit-b18")
    ema = {f"module.module.{k}": v for k, v in bare.items()}
    raw = {f"module.{k}": v for k, v in bare.items()}
    for state in ({"state_dict": raw, "ema_state_dict": ema}, {"state_dict": raw, "ema_state_dict": None},
                  {"ema_state_dict": ema}, bare):
        assert set(_convert("bsq-vit-b18", state)) == set(bare)
    picked = _convert("bsq-vit-b18", {"state_dict": raw, "ema_state_dict": ema})
    assert all(picked[k] is ema[f"module.module.{k}"] for k in bare)
    # nothing is dropped: a leftover key reaches the strict load, which refuses it
    extra = {"ema_state_dict": {**ema, "module.module.loss.discriminator.w": torch.empty(1, device="meta")}}
    assert "loss.discriminator.w" in _convert("bsq-vit-b18", extra)


def test_the_converter_names_the_entry_of_a_file_of_another_width():
    with pytest.raises(WeightsMismatch, match="codes 36 bits per position .*the entry has 18: use bsq-vit-b36"):
        _convert("bsq-vit-b18", {"ema_state_dict": {f"module.module.{k}": v
                                                    for k, v in _official("bsq-vit-b36").items()}})
    with pytest.raises(WeightsMismatch, match="codes 18 bits .*the entry has 36: use bsq-vit-b18"):
        _convert("bsq-vit-b36", {"state_dict": {f"module.{k}": v for k, v in _official("bsq-vit-b18").items()}})
    grouped = {**_official("bsq-vit-b18"), "quantize.group_basis": torch.empty(9, device="meta")}
    with pytest.raises(WeightsMismatch, match="groups of 9 bits"):
        _convert("bsq-vit-b18", grouped)


def test_layout_is_32x32_positions_of_d_bits_at_256_px_only():
    with torch.device("meta"):
        tok = create_tokenizer("bsq-vit-b36")
    layout = tok.layout()
    assert layout.scale_shapes == ((32, 32),) and layout.seq_len == 1024 == tok.info.tokens_per_image
    assert layout.kind == "binary" and layout.components == 36 and layout.bits_per_image == 36 * 1024
    for bad in (128, 512, (256, 128)):
        with pytest.raises(ValueError, match="256x256 images only"):
            tok.layout(bad)


def test_bits_are_the_signs_of_the_normalised_embedding_and_ids_put_channel_0_first():
    torch.manual_seed(0)
    tok = _tiny()
    x = _photos(2, 32)
    with torch.inference_mode():
        z = tok.features(x)
        tokens = tok.encode(x)
    assert z.shape == (2, 6, 4, 4) and tokens.scales[0].shape == (2, 4, 4, 6)
    assert torch.equal(tokens.scales[0], (F.normalize(z, dim=1) > 0).long().movedim(1, -1))
    assert torch.equal(tok.quantize.quantize(torch.zeros(1, 6))[2], torch.zeros(1, 6, dtype=torch.long))
    assert tokens.joint_ids().shape == (2, 16) and tok.info.order == "msb"
    ids = (tokens.scales[0] * 2 ** torch.arange(5, -1, -1)).sum(-1)  # the official basis 2^(d-1) .. 2^0
    assert torch.equal(tokens.joint_ids(), ids.flatten(1))
    # codes as the official get_codebook_entry makes them: (2 bit - 1) times 1/sqrt(d), in float32
    codes = tok.quantize.codes(tokens.scales[0])
    assert torch.equal(codes, torch.where(tokens.scales[0] > 0, 1.0, -1.0) * (1 / 6 ** 0.5))


def test_36_bit_ids_are_exact_int64():
    with torch.device("meta"):
        layout = create_tokenizer("bsq-vit-b36").layout()
    bits = torch.randint(0, 2, (1000, 36), generator=torch.Generator().manual_seed(0))
    bits[0] = 1
    ids = layout.pack(bits)
    assert ids.dtype == torch.int64 and ids[0] == 2 ** 36 - 1
    assert ids.tolist() == [int("".join(map(str, row)), 2) for row in bits.tolist()]
    assert torch.equal(layout.unpack(ids), bits)


def test_decode_indices_takes_every_form_the_ar_model_emits():
    tok = _tiny()
    with torch.inference_mode():
        tokens = tok.encode(_photos(2, 32))
        y = tok.decode(tokens)
        assert y.abs().max() <= 1  # clamped, as the official forward
        ids = tokens.joint_ids()
        forms = {
            "joint id map (B, h, w)": ids.reshape(2, 4, 4),
            "joint ids (B, L)": ids,
            "int32 joint ids": ids.int(),
            "bits (B, h, w, d)": tokens.scales[0],
            "flat bits (B, L, d)": tokens.flat(),
        }
        for what, form in forms.items():
            assert torch.equal(tok.decode_indices(form), y), what
        with pytest.raises(ValueError, match="outside"):
            tok.decode_indices(ids.reshape(2, 4, 4).clone().fill_(2 ** 6))
        with pytest.raises(TypeError, match="integer"):
            tok.decode_indices(ids.reshape(2, 4, 4).float())
        with pytest.raises(ValueError, match="no square input size gives 15"):
            tok.decode_indices(ids[:, :15])


def test_pfid_neighbours_are_the_cheapest_single_bit_flips():
    tok = _tiny()
    x = _photos(2, 32)
    with torch.inference_mode():
        tokens, [cand] = tok.encode_neighbours(x, 3)
        clean = tokens.scales[0]
        assert cand.shape == (2, 4, 4, 3, 6)
        assert torch.equal(cand[..., 0, :], clean)
        assert ((cand[..., 1, :] != clean).sum(-1) == 1).all()
        u = F.normalize(tok.features(x), dim=1).movedim(1, -1)
        assert torch.equal((cand[..., 1, :] != clean).float().argmax(-1), u.abs().argmin(-1))
        moved = perturb(tokens, [cand], 1.0, torch.Generator().manual_seed(0))
        assert (moved.scales[0] != clean).any() and torch.isfinite(tok.decode(moved)).all()


# --- the released checkpoint: a training record with an OmegaConf config ----------------------------
def _fake_omegaconf(monkeypatch) -> dict[str, type]:
    """Classes named as OmegaConf's and pickled as they are (new object, then its ``__dict__``), in stand-in
    modules that exist only while the file is written."""
    where = {"DictConfig": "omegaconf.dictconfig", "ListConfig": "omegaconf.listconfig",
             "ContainerMetadata": "omegaconf.base", "AnyNode": "omegaconf.nodes"}
    for module in {"omegaconf", *where.values()}:
        monkeypatch.setitem(sys.modules, module, types.ModuleType(module))
    classes = {name: type(name, (), {"__module__": module}) for name, module in where.items()}
    for name, module in where.items():
        setattr(sys.modules[module], name, classes[name])
    return classes


def _config(classes: dict[str, type]):
    def node(name, content, object_type, key_type=typing.Any):
        meta = classes["ContainerMetadata"]()
        meta.__dict__.update(ref_type=typing.Any, object_type=object_type, optional=True, key=None, flags={},
                             resolver_cache=collections.defaultdict(dict), key_type=key_type, element_type=typing.Any)
        obj = classes[name]()
        obj.__dict__.update(_metadata=meta, _parent=None, _content=content)
        return obj

    def leaf(value):
        obj = classes["AnyNode"]()
        obj.__dict__.update(_val=value, _parent=None)
        return obj

    params = node("DictConfig", {"embed_dim": leaf(6), "clamp_range": node("ListConfig", [leaf(-1), leaf(1)], list,
                                                                           int)}, dict)
    return node("DictConfig", {"model": node("DictConfig", {"params": params}, dict)}, dict)


def _released_file(tmp_path, monkeypatch, state: dict, **extra):
    """``state`` saved as the official training checkpoint is (``main_image_tokenizer.py``)."""
    with monkeypatch.context() as m:
        record = {
            "iter": 1000, "best_fid": np.float64(1.5), "config": _config(_fake_omegaconf(m)),
            "args": argparse.Namespace(use_ema=True, ema_decay=0.999),
            "state_dict": {f"module.{k}": v.neg() if v.is_floating_point() else v for k, v in state.items()},
            "ema_state_dict": {f"module.module.{k}": v for k, v in state.items()},
            "optimizer_generator": {"state": {}, "param_groups": [{"lr": 4e-7, "betas": (0.9, 0.99), "params": [0]}]},
            **extra,
        }
        path = tmp_path / "checkpoint.pt"
        torch.save(record, path)
    assert "omegaconf.dictconfig" not in sys.modules
    return path


def test_the_released_checkpoint_reads_without_omegaconf(tmp_path, monkeypatch):
    path = _released_file(tmp_path, monkeypatch, {"w": torch.ones(2)})
    record = read_state_dict(path)
    assert "omegaconf.dictconfig" not in sys.modules and "omegaconf" not in sys.modules
    config = record["config"]
    assert isinstance(config, _Opaque) and isinstance(config.state["_metadata"], _Opaque)
    params = config.state["_content"]["model"].state["_content"]["params"].state["_content"]
    assert params["embed_dim"].state["_val"] == 6
    assert isinstance(record["best_fid"], _Opaque) and record["args"].ema_decay == 0.999
    assert torch.equal(record["ema_state_dict"]["module.module.w"], torch.ones(2))


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def test_a_checkpoint_with_any_other_global_is_refused_unrun(tmp_path):
    canary = tmp_path / "ran"
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "hook": _Payload(canary)}, path)
    with pytest.raises(WeightsUnavailable, match="cannot read weights .*bad.pt: it pickles an object vtbench does "
                                                 "not load .*posix.system.*never as code"):
        read_state_dict(path)
    assert not canary.exists()
    torch.save({"state_dict": {"w": torch.ones(1)}, "note": fractions.Fraction(1, 3)}, path)  # inert, not listed
    with pytest.raises(WeightsUnavailable, match="does not load .*fractions.Fraction"):
        read_state_dict(path)


@pytest.fixture
def tiny_entry(monkeypatch):
    """`bsq-vit-b18` at tiny size (6 bits) with the converter of its width."""
    monkeypatch.delitem(_REGISTRY, "tiny-bsq-vit", raising=False)
    release = get_entry("bsq-vit-b18").weights["release"]
    official = Checkpoint(release.files, single_file(_converter(6)), license=release.license)
    register_tokenizer("tiny-bsq-vit", weights={"official": official, "random": RANDOM_INIT})(lambda **kw: _tiny(**kw))
    monkeypatch.setitem(_REGISTRY, "tiny-bsq-vit", _REGISTRY["tiny-bsq-vit"])
    return "tiny-bsq-vit"


def test_a_released_checkpoint_loads_strictly_and_reproduces_the_model(tmp_path, monkeypatch, tiny_entry):
    torch.manual_seed(1)
    source = _tiny()
    loaded = load_tokenizer(tiny_entry, weights=_released_file(tmp_path, monkeypatch, source.state_dict()))
    x = _photos(2, 32)
    with torch.inference_mode():
        assert torch.equal(loaded.encode(x).scales[0], source.encode(x).scales[0])
        assert torch.equal(loaded.reconstruct(x), source.reconstruct(x))
    assert loaded.loaded_weights.published is False


def test_missing_keys_and_other_widths_are_clear_errors(tmp_path, monkeypatch, tiny_entry):
    state = _tiny().state_dict()
    del state["decoder.conv_out.bias"]
    with pytest.raises(WeightsMismatch, match="(?s)do not fit.*missing keys: decoder.conv_out.bias"):
        load_tokenizer(tiny_entry, weights=_released_file(tmp_path, monkeypatch, state))
    other = _tiny(bits=12).state_dict()
    with pytest.raises(WeightsMismatch, match="codes 12 bits per position .*the entry has 6 .no entry has that"):
        load_tokenizer(tiny_entry, weights=_released_file(tmp_path, monkeypatch, other))


def test_entries_list_files_licence_and_published_figures(monkeypatch, tmp_path, capsys):
    for name, (bits, filename, url, (rfid, psnr), (rfid_raw, _)) in VARIANTS.items():
        checkpoint = get_entry(name).weights["release"]
        assert checkpoint.files["model"] == ManualFile(filename, url) and url.startswith("https://utexas.box.com/")
        assert checkpoint.license == "MIT" and f"b{bits}" in filename
        assert checkpoint.published["rfid"] == rfid and checkpoint.published["psnr"] == psnr
        assert f"rFID {rfid_raw}" in checkpoint.published["note"]
    assert (VARIANTS["bsq-vit-b18"][3], VARIANTS["bsq-vit-b36"][4]) == ((1.30, 25.80), (0.41, 27.88))
    assert main(["list", "tokenizers"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "rFID 0.45, PSNR 28.14" in rows["bsq-vit-b36"]
    monkeypatch.setenv("VTBENCH_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as e:
        load_tokenizer("bsq-vit-b18")
    assert "bsqvit_b18g18_f8_256.pt" in str(e.value) and "utexas.box.com" in str(e.value)


def test_save_and_load_pretrained_round_trip(tmp_path):
    assert_pretrained_round_trip(_tiny("bsq-vit-b36"), _photos(1, 32), tmp_path / "tok")

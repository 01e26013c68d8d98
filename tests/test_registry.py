import pytest
import torch
from safetensors.torch import save_file

from vtbench.tokenizers import WeightsUnavailable, get_entry, list_tokenizers, load_tokenizer, registry
from vtbench.tokenizers import weights as W
from vtbench.tokenizers.llamagen import TINY_VQ, LlamaGenVQ


@pytest.fixture
def offline(monkeypatch):
    """No network: the hub probe fails, as it does on this machine."""
    monkeypatch.setattr(W, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.delenv(W.WEIGHTS_DIR_ENV, raising=False)


@pytest.fixture
def temp_entry():
    """Register a throwaway entry and remove it afterwards."""
    names = []

    def add(name, **kw):
        registry.register_tokenizer(name, **kw)(lambda: LlamaGenVQ(TINY_VQ))
        names.append(name)

    yield add
    for n in names:
        registry._REGISTRY.pop(n, None)


def test_list_contains_real_entries_and_filters():
    names = list_tokenizers()
    assert {"sd-vae-ft-mse", "llamagen-vq16", "bicubic-f8"} <= set(names)
    assert "kl-vae-tiny" not in list_tokenizers(include_test=False)
    assert list_tokenizers("llamagen-*") == sorted(n for n in names if n.startswith("llamagen-"))


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="did you mean 'llamagen-vq16'"):
        load_tokenizer("llamagen-vq61")
    with pytest.raises(KeyError, match="has no weights 'imagenet'"):
        load_tokenizer("llamagen-vq16:imagenet")


def test_missing_hub_weights_offline_fail_at_once_with_instructions(offline):
    with pytest.raises(WeightsUnavailable) as e:
        load_tokenizer("llamagen-vq16")
    msg = str(e.value)
    assert "vq_ds16_c2i.pt" in msg and "FoundationVision/LlamaGen" in msg
    assert "VTBENCH_WEIGHTS_DIR" in msg and "109aa8af" in msg
    assert not get_entry("llamagen-vq16").available_offline()


def test_weights_dir_is_used_and_loading_is_strict(offline, tmp_path, monkeypatch, temp_entry):
    ref = LlamaGenVQ(TINY_VQ)
    path = tmp_path / "org" / "repo" / "tiny.safetensors"
    path.parent.mkdir(parents=True)
    save_file(ref.state_dict(), str(path))
    sha = W.sha256_file(path)
    temp_entry("tmp-tiny", weights={"hub": W.HubFile("org/repo", "tiny.safetensors", sha256=sha)})
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))

    tok = load_tokenizer("tmp-tiny")
    assert tok.loaded_weights.sha256 == sha and not tok.training
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(tok.reconstruct(x), ref.eval().reconstruct(x))

    # a file with an extra key is refused, never partly loaded
    state = dict(ref.state_dict(), stray=torch.zeros(1))
    save_file(state, str(path))
    temp_entry("tmp-tiny-extra", weights={"hub": W.HubFile("org/repo", "tiny.safetensors")})
    with pytest.raises(RuntimeError, match="unexpected keys: stray"):
        load_tokenizer("tmp-tiny-extra")
    # and the pinned hash no longer matches
    with pytest.raises(WeightsUnavailable, match="sha256 mismatch"):
        load_tokenizer("tmp-tiny")


def test_missing_keys_are_listed(tmp_path, temp_entry):
    state = LlamaGenVQ(TINY_VQ).state_dict()
    del state["quantize.codebook_used"]
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    temp_entry("tmp-missing", weights={"local": W.LocalFile(str(path))})
    with pytest.raises(RuntimeError, match="missing keys: quantize.codebook_used"):
        load_tokenizer("tmp-missing")


def test_pickled_checkpoint_with_args_loads_with_weights_only(tmp_path, temp_entry):
    import argparse

    ref = LlamaGenVQ(TINY_VQ)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": ref.state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    temp_entry("tmp-pickle", weights={"local": W.LocalFile(str(path))}, convert=lambda s: s["model"])
    tok = load_tokenizer("tmp-pickle")
    assert torch.equal(tok.quantize.embedding.weight, ref.quantize.embedding.weight)


def test_random_weights_only_when_asked():
    tok = load_tokenizer("llamagen-vq-tiny")
    assert tok.loaded_weights.tag == "random"
    assert get_entry("llamagen-vq-tiny").test_only
    assert load_tokenizer("bicubic-f8").loaded_weights.tag == "none"

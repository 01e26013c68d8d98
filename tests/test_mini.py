"""The mini-zoo: every family through the tokenizer interface, and a short resumable training run."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vtbench.errors import VtbenchError
from vtbench.tokenizers.mini import FAMILIES, MiniConfig, MiniTokenizer, build
from vtbench.tokenizers.weights import load_strict
from vtbench.train import TrainConfig, train

#: bits per f8 position where the family allows choosing it
TWELVE_BITS = {"vq", "fqgan", "lfq", "bsq", "fsq", "tokenbridge"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_fits_the_interface(family):
    torch.manual_seed(0)
    tok = build(FAMILIES[family]).eval()
    x = torch.rand(2, 3, 256, 256) * 2 - 1  # the mini-zoo's evaluation resolution
    with torch.inference_mode():
        tokens = tok.encode(x)
        y = tok.decode(tokens)
        assert y.shape == x.shape
        assert tokens.kind == tok.info.kind and tokens.vocab_sizes == tok.info.vocab_sizes
        if tokens.is_discrete:
            tokens.validate()
            assert torch.allclose(tok.decode_indices(tokens.indices), y, atol=1e-5)
    if family in TWELVE_BITS:
        assert tokens.bits_per_pixel(256, 256) == pytest.approx(12 / 64)
    if family in ("titok", "flextok"):  # 128 tokens of 12 bits: TiTok-S-128's rate
        assert tokens.spatial_dims == 1 and tokens.bits_per_image == 128 * 12
    if family in ("var", "infinity"):
        assert tokens.multiscale and tokens.bits_per_pixel(256, 256) > 12 / 64
    assert tok.info.tokens_per_image == tokens.positions_per_image


def test_training_runs_resumes_and_saves_a_strictly_loadable_model(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(p)
        import hashlib
        files.append({"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "package": "test"})
    manifest = tmp_path / "tiny-train.json"
    manifest.write_text(json.dumps({"name": "tiny-train", "kind": "training", "files": files}))
    out = tmp_path / "mini-vq"
    cfg = dict(batch_size=2, crop=32, warmup=2, checkpoint_every=3, manifest=str(manifest), synthetic=2)
    train("vq", out, TrainConfig(steps=3, **cfg), progress=False)
    first = json.loads((out / "config.json").read_text())
    assert first["train"]["steps"] == 3 and (out / "checkpoint.pt").is_file() and first["machine"]["device"] == "cpu"
    train("vq", out, TrainConfig(steps=6, precision="bf16", **cfg), progress=False)  # resumes at step 3
    saved = json.loads((out / "config.json").read_text())
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and [r["step"] for r in ckpt["history"]] == [1, 2, 3, 4, 5, 6]
    assert [(r["from_step"], r["to_step"], r["recipe"]["precision"], r["device"]) for r in saved["runs"]] == [
        (0, 3, "fp32", "cpu"), (3, 6, "bf16", "cpu")]
    assert all(np.isfinite(r["loss"]) for r in ckpt["history"])
    assert saved["data"]["photographs"] == 3 and set(saved["final_losses_last_100_steps"]) >= {"l1", "lpips"}
    model = MiniTokenizer(MiniConfig(**saved["model"]))
    state = load_file(str(out / "model.safetensors"))
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    load_strict(model, state, "trained")


def test_training_data_rejects_a_changed_file(tmp_path):
    from vtbench.training_data import TrainingImages

    p = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(p)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"name": "m", "files": [{"path": str(p), "sha256": "0" * 64}]}))
    with pytest.raises(VtbenchError, match="differs from the manifest"):
        TrainingImages(str(manifest), synthetic=1)


def test_shipped_mini_zoo_loads_strictly_under_one_recipe():
    from vtbench.tokenizers import load_tokenizer
    from vtbench.tokenizers.mini import CAVEATS, weights_dir

    recipes, budgets = set(), {True: set(), False: set()}
    for family in FAMILIES:
        saved = json.loads((weights_dir(family) / "config.json").read_text())
        runs = saved.get("runs") or [{"from_step": 0, "recipe": saved["train"]}]
        first = {k: v for k, v in runs[0]["recipe"].items() if k != "precision"}  # precision: fp32 then
        one_d = family in ("titok", "flextok")
        crop = first.pop("crop")  # conv families: 64 px crops; fixed-size 1D ViTs: their 256 px
        assert crop == (256 if one_d else 64)
        budgets[one_d].add(first.pop("steps"))
        recipes.add(json.dumps(first, sort_keys=True))
        assert saved["data"]["manifest"] == "mini-train"
        tok = load_tokenizer(f"mini-{family}")  # strict: every key and shape must match
        assert tok.loaded_weights.sha256 and tok.info.family == family
        # a family trained past its first run says so on the leaderboard
        assert (len(runs) > 1) <= bool(tok.info.caveat) and (family in CAVEATS) == bool(
            tok.info.caveat)
    assert len(recipes) == 1  # the same batch, learning rate, schedule, seed, data and losses for every family
    # one step budget for the conv families and one first run for the 1D ViTs, which then trained on (†)
    assert len(budgets[False]) == 1 and len(budgets[True]) == 1


def test_pfid_of_a_trained_tokenizer_rises_with_alpha(tmp_path):
    from vtbench.bench.datasets import BuiltinDataset
    from vtbench.bench.runner import RunConfig, evaluate
    from vtbench.bench.tasks import get_task
    from vtbench.tokenizers import load_tokenizer

    tok = load_tokenizer("mini-vq")
    result, _ = evaluate(tok, BuiltinDataset(), get_task("pfid"), tmp_path, RunConfig(alpha=(0.0, 1.0)),
                         progress=False)
    curve = [c["pfid"] for c in result["metrics"]["pfid"]["extra"]["curve"]]
    assert curve[0] < curve[1]  # deterministic (seeded); every token moved to a near neighbour costs FID

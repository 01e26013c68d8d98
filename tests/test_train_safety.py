"""`vtbench train` resumes only from checkpoints holding tensors and plain data: a crafted one runs nothing."""

import numpy as np
import pytest
import torch

from vtbench.cli import main
from vtbench.tokenizers.mini import FAMILIES, build
from vtbench.train import CheckpointError, load_checkpoint, save_checkpoint


class _Payload:
    """Pickles as a call that writes ``marker`` when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_crafted_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    probe = tmp_path / "probe.pt"
    torch.save({"model": _Payload(marker)}, probe)
    torch.load(probe, weights_only=False)  # the payload is real: the unsafe loader runs it
    assert marker.is_file()
    marker.unlink()

    out = tmp_path / "train"
    out.mkdir()
    torch.save({"model": _Payload(marker), "optimizer": {}, "step": 5, "history": [], "torch_rng": None,
                "data_rng": {}}, out / "checkpoint.pt")
    assert main(["train", "--tokenizer", "mini-vq", "--out", str(out), "--quiet", "--device", "cpu"]) == 2
    assert not marker.exists()
    err = capsys.readouterr().err
    assert err.startswith(f"vtbench: error: {out / 'checkpoint.pt'} asks to call exec when loaded")
    assert "it was not loaded: delete it" in err and err.count("\n") == 1


def test_what_the_trainer_saves_loads_back_with_the_safe_loader(tmp_path):
    model = build(FAMILIES["vq"])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.99))
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.full_like(p, 1e-3)
    opt.step()  # Adam's per-parameter state (step, exp_avg, exp_avg_sq) now exists

    class Data:
        rng = np.random.default_rng(7)

    Data.rng.random(3)  # a PCG64 state with 128-bit integers
    history = [{"step": 1, "loss": 0.5, "restarted_codes": 3}]
    runs = [{"from_step": 0, "recipe": {"crop": 64, "lr": 1e-3, "manifest": "mini-train", "precision": "fp32"},
             "device": "cpu", "threads": 2, "to_step": 1, "wall_s": 0.1}]
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, opt, 1, history, runs, Data)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left

    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 1 and ckpt["history"] == history and ckpt["runs"] == runs
    assert ckpt["data_rng"] == Data.rng.bit_generator.state
    state = model.state_dict()
    assert all(torch.equal(ckpt["model"][k], state[k]) for k in state)
    fresh = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    fresh.load_state_dict(ckpt["optimizer"])
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


@pytest.mark.parametrize("content, match", [
    (b"not a checkpoint", "cannot be read"),
    ({"model": {}}, r"is not a training checkpoint \(no optimizer, step, history, torch_rng, data_rng\)"),
])
def test_unreadable_checkpoints_are_clear_errors(tmp_path, content, match):
    path = tmp_path / "checkpoint.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)

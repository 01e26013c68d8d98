"""pFID: the perturbation of every layout (quantizer neighbours + the bench's draws), and the metric end to end."""

import json

import pytest
import torch

from vtbench.bench.perturbation import perturb, perturb_continuous
from vtbench.cli import main
from vtbench.quantizers import (
    BSQ,
    FSQ,
    LFQ,
    DiagonalGaussian,
    DimensionWiseQuantizer,
    FactorizedQuantizer,
    MultiScaleBSQ,
    MultiScaleResidualVQ,
    VectorQuantizer,
)
from vtbench.quantizers.vq import sq_distances
from vtbench.tokenizers import Tokens

C = 8


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


QUANTIZERS = {
    "vq": lambda: VectorQuantizer(C, 64, "cosine"),
    "fqgan": lambda: FactorizedQuantizer(C, 2, 16, 4),
    "var": lambda: MultiScaleResidualVQ(C, 64),
    "lfq": lambda: LFQ(C),
    "bsq": lambda: BSQ(C),
    "infinity": lambda: MultiScaleBSQ(C),
    "fsq": lambda: FSQ((8, 5, 5, 4, 3, 3, 3, 2)),
    "tokenbridge": lambda: DimensionWiseQuantizer(C, 3),
}


def _codes_list(codes):
    return codes if isinstance(codes, list) else [codes]


def _perturbed(q, z, alpha, delta, generator, scales=None):
    """Scale tensors of ``q``'s codes of ``z`` with a fraction ``alpha`` drawn from their ``delta`` nearest codes."""
    clean = Tokens(tuple(_codes_list(q(z).codes)), q.kind, tuple(q.vocab_sizes), z.ndim - 2, q.multiscale)
    return list(perturb(clean, _codes_list(q.neighbours(z, delta)), alpha, generator, scales).scales)


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_alpha_zero_is_the_clean_encoding_and_a_seed_fixes_the_draw(name):
    torch.manual_seed(0)
    q = QUANTIZERS[name]().eval()
    z = torch.randn(2, C, 8, 8)
    clean = _codes_list(q(z).codes)
    assert all(torch.equal(a, b) for a, b in zip(_perturbed(q, z, 0.0, 100, _gen()), clean))
    assert all(torch.equal(a, b) for a, b in zip(_perturbed(q, z, 1.0, 1, _gen()), clean))
    one = _perturbed(q, z, 0.5, 100, _gen(7))
    two = _perturbed(q, z, 0.5, 100, _gen(7))
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    # a token: an index (each sub-index for factorized codes) or a position's bits / levels
    per_position = q.kind in ("binary", "levels")
    diffs = [(a != b).any(-1) if per_position else (a != b) for a, b in zip(one, clean)]
    fraction = sum(int(d.sum()) for d in diffs) / sum(d.numel() for d in diffs)
    assert 0.15 < fraction < 0.6  # about alpha, less the draws that picked the code itself


def test_vq_replacements_come_from_the_delta_nearest_codes():
    torch.manual_seed(0)
    q = VectorQuantizer(C, 64, "l2").eval()
    z = torch.randn(4, C, 6, 6)
    codes = _perturbed(q, z, 1.0, 5, _gen())[0].flatten()
    d = sq_distances(z.movedim(1, -1).reshape(-1, C), q.codebook())
    top5 = d.topk(5, largest=False).indices
    assert (top5 == codes[:, None]).any(1).all()
    assert (codes != d.argmin(1)).float().mean() > 0.6


def test_binary_and_level_neighbours_differ_by_one_step():
    torch.manual_seed(0)
    z = torch.randn(4, C, 6, 6)
    for q in (LFQ(C), BSQ(C)):
        clean, pert = q(z).codes, _perturbed(q, z, 1.0, 100, _gen())[0]
        assert (clean != pert).sum(-1).max() == 1
    fsq = FSQ((8, 5, 5, 4, 3, 3, 3, 2))
    clean, pert = fsq(z).codes, _perturbed(fsq, z, 1.0, 100, _gen())[0]
    diff = (clean - pert).abs()
    assert diff.max() == 1 and diff.sum(-1).max() == 1 and (pert < torch.tensor(fsq.vocab_sizes)).all()


def test_multiscale_perturbs_only_the_requested_scale():
    torch.manual_seed(0)
    for q in (MultiScaleResidualVQ(C, 64).eval(), MultiScaleBSQ(C).eval()):
        z = torch.randn(2, C, 8, 8)
        clean = q(z).codes
        only = _perturbed(q, z, 1.0, 100, _gen(), scales={2})
        assert [torch.equal(a, b) for a, b in zip(only, clean)] == [k != 2 for k in range(len(clean))]


def test_continuous_noise_hits_about_alpha_of_positions():
    q = DiagonalGaussian()
    z = torch.randn(4, 2 * C, 16, 16)
    clean = Tokens.from_latents(q.eval()(z).codes.movedim(-1, 1))
    moved = (perturb_continuous(clean, 0.25, _gen()).latents != clean.latents).any(1).float().mean()
    assert 0.15 < moved < 0.35


def _metrics(out, tokenizer, task):
    """The metrics of the one result file of ``task`` (its name carries the sample set)."""
    [path] = (out / "builtin" / tokenizer).glob(f"{task}*.json")
    return json.loads(path.read_text())["metrics"]


def test_pfid_at_alpha_zero_equals_rfid_and_a_seed_reproduces_it(tmp_path):
    out = tmp_path / "runs"
    args = ["run", "--quiet", "--tokenizer", "llamagen-vq-tiny,kl-vae-tiny,bicubic-f8", "--resolution", "64",
            "--limit", "2", "--tasks", "reconstruction,pfid", "--alpha", "0,0.2,0.5", "--out", str(out)]
    assert main(args) == 0
    first = {}
    for t in ("llamagen-vq-tiny", "kl-vae-tiny", "bicubic-f8"):
        rfid = _metrics(out, t, "reconstruction")["rfid"]["value"]
        pfid = _metrics(out, t, "pfid")["pfid"]
        curve = {c["alpha"]: c["pfid"] for c in pfid["extra"]["curve"]}
        assert curve[0.0] == rfid  # the pfid task's clean pass is the reconstruction task's rFID
        assert curve[0.5] != curve[0.0]  # the perturbation reached the decoder
        assert pfid["extra"]["alpha"] == 0.5  # 0.1 not swept: the headline is the largest alpha
        assert pfid["min_count"] == 2048 and 0 <= pfid["ci_low"] <= pfid["ci_high"]  # rFID's interval and minimum
        first[t] = curve
    assert main([a if a != "reconstruction,pfid" else "pfid" for a in args] + ["--overwrite"]) == 0
    for t, curve in first.items():
        again = _metrics(out, t, "pfid")["pfid"]["extra"]["curve"]
        assert {c["alpha"]: c["pfid"] for c in again} == curve


@pytest.mark.parametrize("name", ["vq", "fsq", "bsq"])
def test_one_dimensional_token_sequences_are_perturbed_as_well(name):
    torch.manual_seed(0)
    q = QUANTIZERS[name]().eval()
    z = torch.randn(2, C, 32)  # a 1D sequence of 32 tokens (TiTok / FlexTok layout)
    clean = q(z).codes
    pert = _perturbed(q, z, 0.5, 100, _gen())[0]
    assert pert.shape == clean.shape and pert.shape[:2] == (2, 32)
    assert (pert != clean).any()

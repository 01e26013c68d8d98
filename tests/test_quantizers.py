"""Every quantizer: shapes, code ranges, codes -> dequantize equals the straight path, gradients flow."""

import pytest
import torch

from vtbench.quantizers import (
    BSQ,
    FSQ,
    LFQ,
    DiagonalGaussian,
    DimensionWiseQuantizer,
    FactorizedQuantizer,
    FrozenCodebookVQ,
    MultiScaleBSQ,
    MultiScaleResidualVQ,
    VectorQuantizer,
    scale_sides,
)
from vtbench.tokenizers import Tokens

C = 8


def _make(name):
    torch.manual_seed(0)
    return {
        "vq-l2": lambda: VectorQuantizer(C, 32, "l2"),
        "vq-cosine": lambda: VectorQuantizer(C, 32, "cosine"),
        "vqgan-lc": lambda: FrozenCodebookVQ(torch.randn(500, 24), C),
        "fqgan": lambda: FactorizedQuantizer(C, 3, 16, 4),
        "var": lambda: MultiScaleResidualVQ(C, 32, phis=4),
        "lfq": lambda: LFQ(C),
        "bsq": lambda: BSQ(C),
        "infinity": lambda: MultiScaleBSQ(C),
        "fsq": lambda: FSQ((8, 5, 5, 5, 3, 3, 2, 2)),
        "tokenbridge": lambda: DimensionWiseQuantizer(C, 3),
        "kl": lambda: DiagonalGaussian(),
    }[name]()


NAMES = ["vq-l2", "vq-cosine", "vqgan-lc", "fqgan", "var", "lfq", "bsq", "infinity", "fsq", "tokenbridge", "kl"]


def _input(name, b=2, side=8):
    return torch.randn(b, 2 * C if name == "kl" else C, side, side, requires_grad=True)


@pytest.mark.parametrize("name", NAMES)
def test_codes_fit_the_tokens_layout_and_round_trip(name):
    q = _make(name).eval()
    z = _input(name)
    out = q(z)
    assert out.z_q.shape == (2, C, 8, 8) and out.loss.ndim == 0
    codes = out.codes if isinstance(out.codes, list) else [out.codes]
    tokens = Tokens(tuple(codes), q.kind, q.vocab_sizes, multiscale=q.multiscale)
    if tokens.is_discrete:
        tokens.validate()
    assert tokens.positions_per_image >= 64
    # decoding from codes alone gives exactly what the straight path fed the decoder
    assert torch.allclose(q.dequantize(out.codes), out.z_q, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "tokenbridge"])
def test_gradients_reach_the_encoder_through_the_quantizer(name):
    q = _make(name).train()
    z = _input(name)
    out = q(z)
    (out.z_q.square().mean() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["vq-l2", "vq-cosine", "fqgan", "var"])
def test_codebook_receives_gradients(name):
    q = _make(name).train()
    out = q(_input(name))
    (out.z_q.square().mean() + out.loss).backward()
    grads = [p.grad for n, p in q.named_parameters() if "embedding" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_vqgan_lc_trains_only_the_projector_and_uses_many_codes():
    q = _make("vqgan-lc").train()
    assert [n for n, _ in q.named_parameters()] == ["projector.weight", "projector.bias"]
    out = q(_input("vqgan-lc", b=8, side=16))
    assert len(out.codes.unique()) > 50


def test_nearest_code_is_chosen():
    q = VectorQuantizer(C, 32, "l2").eval()
    z = torch.randn(1, C, 4, 4)
    idx = q(z).codes.flatten()
    d = torch.cdist(z.movedim(1, -1).reshape(-1, C), q.embedding.weight)
    assert torch.equal(idx, d.argmin(1))


def test_dead_codes_are_restarted_on_encoder_outputs():
    q = VectorQuantizer(C, 64, "l2").train()
    q(torch.randn(1, C, 2, 2))  # 4 positions: at most 4 codes hit
    assert q.restart_dead_codes() >= 60
    assert q.hits.sum() == 0


def test_fsq_levels_and_binary_values():
    fsq = FSQ((8, 5))
    out = fsq(torch.randn(4, 2, 6, 6) * 3)
    assert out.codes[..., 0].max() <= 7 and out.codes[..., 1].max() <= 4 and out.codes.min() >= 0
    assert len(out.codes[..., 1].unique()) == 5
    bsq = BSQ(C).eval()(torch.randn(2, C, 4, 4))
    assert torch.allclose(bsq.z_q.norm(dim=1), torch.ones(2, 4, 4))
    lfq = LFQ(C).eval()(torch.randn(2, C, 4, 4))
    assert set(lfq.z_q.unique().tolist()) <= {-1.0, 1.0}


def test_factorized_disentanglement_regulariser_is_in_the_loss():
    q = _make("fqgan").train()
    z = _input("fqgan")
    with_reg = q(z).loss
    q.disentangle_weight = 0.0
    assert with_reg > q(z).loss


def test_multiscale_schedules():
    assert scale_sides(16, MultiScaleResidualVQ(C, 8).schedule) == [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]
    assert scale_sides(64, MultiScaleBSQ(C).schedule) == [1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64]
    out = MultiScaleResidualVQ(C, 32).eval()(torch.randn(1, C, 8, 8))
    sides = scale_sides(8, MultiScaleResidualVQ(C, 8).schedule)
    assert [c.shape[-1] for c in out.codes] == out.stats["scale_sides"] == sides
    with pytest.raises(ValueError, match="square"):
        MultiScaleResidualVQ(C, 32)(torch.randn(1, C, 8, 4))


def test_more_scales_reduce_the_residual():
    torch.manual_seed(0)
    z = torch.randn(4, C, 16, 16)
    coarse = MultiScaleBSQ(C, schedule=(1 / 16,)).eval()(z)
    fine = MultiScaleBSQ(C).eval()(z)
    assert (fine.z_q - z).pow(2).mean() < (coarse.z_q - z).pow(2).mean()


def test_tokenbridge_levels_are_gaussian_bin_means():
    q = DimensionWiseQuantizer(4, 2)  # 4 levels
    pts = q.points
    assert torch.allclose(pts, -pts.flip(0), atol=1e-6) and torch.all(pts[1:] > pts[:-1])
    # equal-probability bins of N(0,1), outer ones cut at +-3, each represented by its truncated-normal mean
    stats = pytest.importorskip("scipy.stats")
    edges = [-3.0, *stats.norm.ppf([0.25, 0.5, 0.75]), 3.0]
    expected = [stats.truncnorm.mean(a, b) for a, b in zip(edges, edges[1:])]
    assert pts.tolist() == pytest.approx(expected, abs=1e-5)
    latents = torch.randn(2, 4, 8, 8) * 2.5
    q.fit(latents)
    assert q.value_range.item() == pytest.approx(5 * latents.std().item())
    err_2bit = (q(latents).z_q - latents).pow(2).mean()
    q6 = DimensionWiseQuantizer(4, 6)
    q6.fit(latents)
    assert (q6(latents).z_q - latents).pow(2).mean() < err_2bit


def test_kl_bottleneck_samples_in_training_and_uses_the_mean_in_eval():
    q = DiagonalGaussian(kl_weight=1.0)
    z = torch.randn(2, 2 * C, 4, 4)
    assert torch.equal(q.eval()(z).z_q, z[:, :C])
    assert not torch.equal(q.train()(z).z_q, z[:, :C])
    assert q(z).loss > 0


@pytest.mark.parametrize("name", ["vq-l2", "vq-cosine", "vqgan-lc", "var"])
def test_quantizers_run_in_float32_inside_bf16_autocast(name):
    q = _make(name).eval()
    z = torch.randn(4, C, 16, 16).to(torch.bfloat16)  # exactly representable in both precisions
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = q(z)
    exact = q(z.float())
    assert cast.z_q.dtype == torch.float32
    codes = [cast.codes, exact.codes] if name != "var" else [torch.cat([c.flatten() for c in o.codes])
                                                             for o in (cast, exact)]
    assert torch.equal(*codes)

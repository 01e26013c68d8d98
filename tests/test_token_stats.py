"""Token statistics on hand-made tokens whose answers are worked out by hand in each test."""

import math
from collections import Counter

import pytest
import torch

from vtbench.bench import metrics
from vtbench.bench.metrics import EvalBatch, IdCounts, TokenStats
from vtbench.tokenizers import Tokens


def _stats(*token_batches: Tokens, size: int = 8) -> dict:
    stats = TokenStats(token_batches[0].vocab_sizes if token_batches[0].is_discrete else ())
    for t in token_batches:
        images = torch.zeros(t.batch_size, 3, size, size, dtype=torch.uint8)
        stats.update(EvalBatch([""] * t.batch_size, images, images, t, [], 0.0, 0.0))
    return stats.compute()


def _values(out: dict) -> dict:
    return {k: v.value for k, v in out.items()}


def test_single_codebook_usage_entropy_perplexity_and_bpp():
    idx = torch.tensor([[[0, 1], [2, 3]], [[0, 0], [0, 0]]])  # 8 tokens of vocab 8; code 0 five times, 1-3 once
    out = _stats(Tokens.from_indices(idx, "index", (8,)), size=32)
    h = -(5 / 8 * math.log2(5 / 8) + 3 * (1 / 8) * math.log2(1 / 8))
    assert out["codebook_usage"].value == pytest.approx(4 / 8)
    assert out["token_entropy"].value == pytest.approx(h)
    assert out["token_perplexity"].value == pytest.approx(2 ** h)
    assert out["codebook_usage"].count == 8
    assert out["bits_per_pixel"].value == pytest.approx(4 * 3 / (32 * 32))  # 4 positions x 3 bits per image
    assert out["tokens_per_image"].value == 4
    # one component: its marginal figures are the joint ones
    assert out["marginal_codebook_usage"].value == pytest.approx(4 / 8)
    assert out["marginal_entropy"].value == pytest.approx(h)


def test_joint_usage_and_entropy_differ_from_the_marginal_ones():
    # 2 components of vocab 4; positions (0,0) (0,1) (1,0) (1,1): each component uses 2 of 4 codes equally
    # (usage 1/2, entropy 1 bit), the pairs are 4 distinct ids of 16, equally likely (usage 1/4, entropy 2)
    codes = torch.tensor([[[[0, 0], [0, 1]], [[1, 0], [1, 1]]]])  # (B=1, 2, 2, K=2)
    out = _values(_stats(Tokens((codes,), "factorized", (4, 4))))
    assert out["codebook_usage"] == pytest.approx(4 / 16)
    assert out["token_entropy"] == pytest.approx(2.0)
    assert out["token_perplexity"] == pytest.approx(4.0)
    assert out["marginal_codebook_usage"] == pytest.approx(2 / 4)
    assert out["marginal_entropy"] == pytest.approx(1.0)


def test_components_of_different_sizes_are_averaged_per_component():
    codes = torch.tensor([[[[0, 0], [1, 0]]]])  # (B=1, h=1, w=2, K=2), vocab (2, 4)
    out = _values(_stats(Tokens((codes,), "factorized", (2, 4))))
    assert out["marginal_codebook_usage"] == pytest.approx((2 / 2 + 1 / 4) / 2)
    assert out["marginal_entropy"] == pytest.approx((1.0 + 0.0) / 2)
    assert out["codebook_usage"] == pytest.approx(2 / 8)  # ids (0,0) and (1,0) of 2 x 4
    assert out["token_entropy"] == pytest.approx(1.0)


def test_a_2_to_the_36_vocabulary_is_counted_without_a_dense_histogram():
    zeros, ones = torch.zeros(36, dtype=torch.long), torch.ones(36, dtype=torch.long)
    codes = torch.stack([zeros, zeros, ones]).view(1, 1, 3, 36)  # 3 positions, 2 distinct 36-bit codes
    out = _values(_stats(Tokens((codes,), "binary", (2,) * 36)))
    assert out["codebook_usage"] == pytest.approx(2 / 2 ** 36)
    h = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert out["token_entropy"] == pytest.approx(h)
    assert out["marginal_codebook_usage"] == 1.0  # every bit takes both values
    assert out["marginal_entropy"] == pytest.approx(h)


def test_joint_figures_are_unavailable_when_the_joint_vocabulary_does_not_fit_int64():
    codes = torch.tensor([[0] * 64, [1] * 64]).view(1, 1, 2, 64)
    out = _stats(Tokens((codes,), "binary", (2,) * 64))
    for k in ("codebook_usage", "token_entropy", "token_perplexity"):
        assert out[k].available is False and out[k].value is None
        assert "2^64" in out[k].reason and "int64" in out[k].reason
    assert out["marginal_codebook_usage"].value == 1.0
    assert out["marginal_entropy"].value == pytest.approx(1.0)


def test_padding_past_the_lengths_is_not_counted():
    ids = torch.tensor([[1, 2, 7, 7], [1, 1, 3, 7]])  # 1D, vocab 8; the 7s are padding
    out = _values(_stats(Tokens.from_indices(ids, "index", (8,), spatial_dims=1, lengths=torch.tensor([2, 3]))))
    # counted: 1 2 | 1 1 3 -> code 1 three times, 2 and 3 once each, over 5 positions
    assert out["codebook_usage"] == pytest.approx(3 / 8)
    assert out["token_entropy"] == pytest.approx(-(0.6 * math.log2(0.6) + 2 * 0.2 * math.log2(0.2)))
    assert out["tokens_per_image"] == pytest.approx(2.5)
    assert out["bits_per_pixel"] == pytest.approx(5 * 3 / (2 * 8 * 8))


def test_multiscale_tokens_are_counted_over_all_scales():
    scales = [torch.tensor([[[0]]]), torch.tensor([[[0, 1], [2, 3]]])]  # 1x1 then 2x2, vocab 4
    out = _values(_stats(Tokens.from_indices(scales, "index", (4,))))
    assert out["codebook_usage"] == 1.0
    assert out["token_entropy"] == pytest.approx(-(0.4 * math.log2(0.4) + 3 * 0.2 * math.log2(0.2)))
    assert out["tokens_per_image"] == 5


def test_continuous_tokens_report_bits_and_tokens_per_image_only():
    out = _stats(Tokens.from_latents(torch.zeros(2, 4, 2, 2)), size=16)
    assert set(out) == {"bits_per_pixel", "tokens_per_image"}
    assert out["bits_per_pixel"].value == pytest.approx(4 * 4 * 32 / (16 * 16))  # 4 positions x 4 channels x 32 bits
    assert out["tokens_per_image"].value == 4


def test_counts_accumulate_over_batches_and_refuse_another_vocabulary():
    first = Tokens.from_indices(torch.tensor([[[0, 0]]]), "index", (4,))
    second = Tokens.from_indices(torch.tensor([[[1, 2]]]), "index", (4,))
    out = _values(_stats(first, second))
    assert out["codebook_usage"] == pytest.approx(3 / 4)
    assert out["token_entropy"] == pytest.approx(1.5)  # p = 1/2, 1/4, 1/4
    with pytest.raises(ValueError, match=r"vocabulary \(8,\) in a run declared for \(4,\)"):
        _stats(first, Tokens.from_indices(torch.tensor([[[1, 2]]]), "index", (8,)))


def test_sparse_counts_merge_batches_and_pairs_like_a_counter(monkeypatch):
    monkeypatch.setattr(metrics, "DENSE_MAX_IDS", 4)  # merges every few batches instead of at 2^20 ids
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 40, (30,), generator=gen) * 2 ** 30 for _ in range(7)]
    counter, reference = IdCounts(2 ** 36), Counter()
    for b in batches:
        counter.update(b)
        reference.update(b.tolist())
    assert not counter.dense and len(counter.ids) < len(batches)  # merged along the way
    ids, counts = counter.compute()
    assert dict(zip(ids.tolist(), counts.tolist())) == dict(reference)
    assert ids.tolist() == sorted(reference)


def _sync_worker(rank: int, init_file: str, result_file: str, dense_max: int) -> None:
    import json

    metrics.DENSE_MAX_IDS = dense_max
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        stats = TokenStats((4, 4))
        codes = torch.tensor([[[[0, 0], [0, 1]]], [[[1, 0], [1, 1]]]])[rank : rank + 1]  # half of the positions each
        images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
        stats.update(EvalBatch(["x"], images, images, Tokens((codes,), "factorized", (4, 4)), [], 0.0, 0.0))
        out = stats.compute()  # synchronises: every process calls it
        if rank == 0:
            with open(result_file, "w") as f:
                json.dump({k: [v.value, v.count] for k, v in out.items()}, f)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("dense_max", [2 ** 20, 4], ids=["histogram", "sparse-pairs"])
def test_counts_of_two_processes_merge_on_sync(tmp_path, dense_max):
    import json

    torch.multiprocessing.spawn(_sync_worker, args=(str(tmp_path / "init"), str(tmp_path / "out.json"), dense_max),
                                nprocs=2)
    out = json.loads((tmp_path / "out.json").read_text())
    # the positions of test_joint_usage_and_entropy_differ_from_the_marginal_ones, split over two processes
    assert out["codebook_usage"] == [pytest.approx(4 / 16), 4]
    assert out["token_entropy"] == [pytest.approx(2.0), 4]
    assert out["marginal_codebook_usage"] == [pytest.approx(2 / 4), 4]
    assert out["marginal_entropy"] == [pytest.approx(1.0), 4]
    assert out["tokens_per_image"] == [pytest.approx(2.0), 2]

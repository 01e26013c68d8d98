"""The one interface holds every token layout: toy tokenizers of each layout, built only from the base class."""

import math

import pytest
import torch
import torch.nn.functional as F

from vtbench.tokenizers import Tokenizer, TokenizerInfo, Tokens


class ToyTokenizer(Tokenizer):
    """Average-pools 8x8 patches and quantizes them in a layout-specific way; decodes by nearest upsampling."""

    def __init__(self, layout: str):
        super().__init__()
        self.toy = layout
        kind, vocab, dims = {
            "grid": ("index", (64,), 2),
            "multiscale": ("index", (64,), 2),
            "factorized": ("factorized", (16, 8, 4), 2),
            "binary": ("binary", (2,) * 6, 2),
            "multiscale_binary": ("binary", (2,) * 3, 2),
            "levels": ("levels", (5,) * 3, 2),
            "sequence": ("index", (64,), 1),
            "continuous": ("continuous", (), 2),
        }[layout]
        self.info = TokenizerInfo(family=f"toy-{layout}", kind=kind, resolution=32, downsample=8, vocab_sizes=vocab,
                                  tokens_per_image=16, spatial_dims=dims, input_range="zero_one",
                                  multiscale=layout.startswith("multiscale"), ordered=layout == "sequence",
                                  latent_channels=3 if layout == "continuous" else 0)

    def scale_shapes(self, height, width):
        side = height // 8
        if self.toy == "multiscale":
            return ((side // 2, side // 2), (side, side))
        if self.toy == "multiscale_binary":
            return tuple((side // s, side // s) for s in (4, 2, 1))
        return super().scale_shapes(height, width)

    def _encode(self, x, length: int | None = None):
        p = F.avg_pool2d(x, 8)  # (B, 3, 4, 4) in [0, 1]
        if self.toy == "continuous":
            return Tokens.from_latents(p)
        levels = (p * 3.999).long()  # 4 levels per channel -> 64 colours
        colour = levels[:, 0] * 16 + levels[:, 1] * 4 + levels[:, 2]  # (B, 4, 4)
        if self.toy == "grid":
            return Tokens.from_indices(colour, "index", (64,))
        if self.toy == "multiscale":
            coarse = colour[:, ::2, ::2]
            return Tokens.from_indices([coarse, colour], "index", (64,))
        if self.toy == "factorized":
            codes = torch.stack([colour % 16, colour // 8, colour // 16], dim=-1)
            return Tokens((codes,), "factorized", (16, 8, 4))
        if self.toy == "binary":
            bits = torch.stack([(colour >> k) & 1 for k in range(6)], dim=-1)
            return Tokens((bits,), "binary", (2,) * 6)
        if self.toy == "multiscale_binary":
            scales = tuple(torch.stack([(colour[:, ::s, ::s] >> k) & 1 for k in range(3)], dim=-1) for s in (4, 2, 1))
            return Tokens(scales, "binary", (2,) * 3, multiscale=True)
        if self.toy == "levels":
            return Tokens(((p * 4.999).long().movedim(1, -1),), "levels", (5,) * 3)
        if self.toy == "sequence":
            seq = colour.flatten(1)[:, : length or 16]
            return Tokens.from_indices(seq, "index", (64,), spatial_dims=1)
        raise AssertionError(self.toy)

    def _decode(self, tokens):
        if self.toy == "continuous":
            p = tokens.latents
        elif self.toy == "levels":
            p = tokens.scales[0].movedim(-1, 1).float() / 4.999
        else:
            if self.toy == "factorized":
                colour = tokens.scales[0][..., 2] * 16 + tokens.scales[0][..., 0] % 16
            elif self.toy == "binary":
                colour = sum(tokens.scales[0][..., k] << k for k in range(6))
            elif self.toy == "multiscale_binary":
                colour = sum(tokens.scales[-1][..., k] << k for k in range(3))  # the toy reads the finest scale
            elif self.toy == "sequence":
                seq = F.pad(tokens.indices, (0, 16 - tokens.indices.shape[1]))
                colour = seq.view(-1, 4, 4)
            else:
                colour = tokens.scales[-1]
            p = torch.stack([colour // 16, (colour // 4) % 4, colour % 4], dim=1).float() / 3.999
        return F.interpolate(p, scale_factor=8, mode="nearest")


LAYOUTS = ["grid", "multiscale", "factorized", "binary", "multiscale_binary", "levels", "sequence", "continuous"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_round_trips_through_indices(layout):
    tok = ToyTokenizer(layout)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    tokens = tok.encode(x)
    assert tokens.batch_size == 3
    y = tok.decode(tokens)
    assert y.shape == x.shape
    if tokens.is_discrete:
        tokens.validate()
        idx = tokens.indices
        assert all(t.dtype == torch.long for t in (idx if isinstance(idx, list) else [idx]))
        # an AR model hands back plain index tensors: decoding them gives the same images
        assert torch.equal(tok.decode_indices(idx), y)
    else:
        with pytest.raises(TypeError):
            _ = tokens.indices
        assert tokens.latents.shape == (3, 3, 4, 4)


EXPECTED_BITS = {
    "grid": 16 * 6, "multiscale": (4 + 16) * 6, "factorized": 16 * (4 + 3 + 2), "binary": 16 * 6,
    "multiscale_binary": (1 + 4 + 16) * 3, "levels": 16 * 3 * math.log2(5), "sequence": 16 * 6,
    "continuous": 16 * 3 * 32,
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bits_per_image_and_flat_length(layout):
    tokens = ToyTokenizer(layout).encode(torch.zeros(2, 3, 32, 32))
    assert tokens.bits_per_image == pytest.approx(EXPECTED_BITS[layout])
    assert tokens.bits_per_pixel(32, 32) == pytest.approx(EXPECTED_BITS[layout] / 1024)
    flat = tokens.flat()
    assert flat.shape[:2] == (2, tokens.positions_per_image)


def test_sequence_length_can_vary_per_call():
    tok = ToyTokenizer("sequence")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for n in (1, 4, 16):
        t = tok._encode(tok._to_native(x), length=n)
        assert t.indices.shape == (2, n)
        assert t.bits_per_image == n * 6
        assert tok.decode(t).shape == x.shape


def test_tokens_reject_inconsistent_construction():
    with pytest.raises(ValueError, match="multiscale"):
        Tokens((torch.zeros(1, 2, 2, dtype=torch.long),) * 2, "index", (4,))
    with pytest.raises(ValueError, match="integer"):
        Tokens((torch.zeros(1, 2, 2),), "index", (4,))
    with pytest.raises(ValueError, match="vocabulary 2"):
        Tokens((torch.zeros(1, 2, 2, 3, dtype=torch.long),), "binary", (2, 2, 4))
    with pytest.raises(ValueError, match="last axis"):
        Tokens((torch.zeros(1, 2, 2, 3, dtype=torch.long),), "factorized", (4, 4))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Tokens((torch.full((1, 2, 2), 9),), "index", (4,)).validate()


def test_batch_slicing_and_device_moves_keep_layout():
    tokens = ToyTokenizer("multiscale").encode(torch.rand(4, 3, 32, 32))
    half = tokens[:2].to("cpu")
    assert half.batch_size == 2 and half.multiscale and len(half.scales) == 2


def test_images_must_be_float_bchw():
    tok = ToyTokenizer("grid")
    with pytest.raises(TypeError, match="uint8|dtype"):
        tok.encode(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tok.encode(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match=r"values in \[0, 255\]"):
        tok.encode(torch.full((1, 3, 32, 32), 255.0).index_fill(2, torch.tensor([0]), 0.0))

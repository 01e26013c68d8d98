"""FlexTok (Bachmann et al. 2025): an image resampled into an ordered 1D sequence of 1 to 256 FSQ tokens.

The model of apple/ml-flextok: a frozen SD-style KL VAE (16 latent channels, f8; diffusers names, the
`kl_vae` port) -> 2x2 latent patches -> a ViT with 256 learned registers under a causal register mask
(patches see patches; register i sees every patch and registers 0..i) -> FSQ levels (8, 8, 8, 5, 5, 5),
64,000 codes. The decoder is a rectified-flow transformer: noised latent patches and the projected tokens
go through one sequence with adaLN-zero timestep conditioning (patches and registers modulated
separately); positions at or past the kept length k hold a learned mask token, so any prefix decodes.
Decoding integrates from t = 1 to 0 in Euler steps (20 by default) with guidance 7.5 by APG (Sadat et al.
2024), the README's settings; the unconditional pass zeroes the tokens. Transformer details follow the
official code: LayerNorms without affine parameters, computed in float32; QK-norm; SwiGLU MLPs of hidden
width ``int(2 * int(mlp_ratio * dim) / 3)``; no biases in attention and MLP; attention scale 8 / head_dim.
Attention is PyTorch's SDPA with a dense mask (the official code runs FlexAttention on packed sequences).

Built from the checkpoint's own config. Every released ``model.safetensors`` carries its Hydra config in
the safetensors header (``__metadata__``: one Python-literal string per top-level key, as the official
``flextok.utils.checkpoint`` writes and reads it); the registry hands that config to the factory before
the strict load, so module names, widths, depths and keys come from the file. A config is read module by
module (``module_dict`` entries in their order, dispatched on the class of ``_target_``); a key this port
does not implement is an error rather than silently ignored. ``default_config`` writes the same format
for random weights, with what the code, README and project page state (256 registers, 2x2 patches, the
16-channel VAE, FSQ levels, adaLN separate for patches and registers) at width 64 per layer (d12: 768,
d18: 1152, d28: 1792) and head dim 64. The released files' own configs are not available offline: module
names, keys and options not stated there (positional tables, null condition, timestep range, the VAE's
scaling factor) are this port's reading and affect ``:random`` models only.

Numerics. Encoding is deterministic: the VAE posterior mean (the official tokenizer samples the
posterior when its config says ``sample_posterior``). Decoding is seeded: ``decode(tokens,
generator=g)`` draws each image's starting noise from ``g`` in batch order, as the official pipeline does;
without a generator each image's noise comes from a generator seeded by the CRC-32 of its kept token ids, so a
decode is a function of the tokens (repeatable, independent of batching). On CUDA the transformers run under bf16
autocast (LayerNorms and FSQ in float32, the VAE and the Euler update in float32). On a CPU decoding is slow:
d12-d12 takes about 190 s of CPU time per image (40 decoder passes of about 5 s, the VAE decoder 14 s; about
4 minutes on 2 shared cores), encoding about 10 s.
"""

from __future__ import annotations

import ast
import contextlib
import math
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import quantizers as Q
from ..quantizers.scalar import GaussianPosterior
from .base import Tokenizer, TokenizerInfo
from .kl_vae import AutoencoderKL, KLVAEConfig
from .registry import register_tokenizer
from .tokens import Tokens
from .weights import Checkpoint, HubFile, WeightsMismatch, read_safetensors_metadata

PAPER = "https://arxiv.org/abs/2502.13967"
CODE = "https://github.com/apple/ml-flextok"
LICENSE = ("code: Apple Sample Code License (non-commercial); weights: Apple Machine Learning Research Model "
           "License (research only)")
UNCOND_FLAG = "eval_dropout_mask"  # the key the official pipeline sets for the unconditional pass
_REQUIRED = object()


# --- reading a config --------------------------------------------------------------------------------
def _cls(cfg) -> str:
    """The class (or function) name a config entry's ``_target_`` names."""
    target = cfg.get("_target_", "") if isinstance(cfg, dict) else str(cfg)
    return target.rsplit(".", 1)[-1]


def _options(cfg: dict, defaults: dict, inert: tuple[str, ...] = ()) -> dict:
    """``cfg`` over ``defaults`` (`_REQUIRED` marks keys without a default). Keys in ``inert`` only matter in
    training and are dropped; any other key the port does not know is an error."""
    unknown = sorted(set(cfg) - set(defaults) - set(inert) - {"_target_", "_partial_"})
    missing = sorted(k for k, v in defaults.items() if v is _REQUIRED and k not in cfg)
    if unknown or missing:
        raise WeightsMismatch(f"FlexTok config of {_cls(cfg)}: " + "; ".join(
            part for part in (f"keys {unknown} are not implemented by vtbench's port" if unknown else "",
                              f"keys {missing} are missing" if missing else "") if part))
    return {k: cfg.get(k, v) for k, v in defaults.items()}


def _require(cfg: dict, ok: bool, what: str) -> None:
    if not ok:
        raise WeightsMismatch(f"FlexTok config of {_cls(cfg)}: {what} is not implemented by vtbench's port")


def config_from_metadata(metadata: dict[str, str]) -> dict:
    """The model config a FlexTok safetensors header holds: each value a Python literal (strings that are not
    literals stay strings, as the official reader keeps them)."""
    config = {}
    for key, text in metadata.items():
        try:
            config[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            config[key] = text
    missing = sorted({"vae", "encoder", "decoder", "regularizer", "pipeline"} - set(config))
    if missing:
        raise WeightsMismatch(f"the safetensors header holds no FlexTok config (missing {', '.join(missing)})")
    return config


def _file_config(paths: dict[str, Path]) -> dict:
    return {"config": config_from_metadata(read_safetensors_metadata(paths["model"]))}


# --- the official modules, on batched tensors ----------------------------------------------------------
class _Norm(nn.Module):
    """LayerNorm without affine parameters, computed in float32 (the official ``Fp32LayerNorm``)."""

    def forward(self, x):
        return F.layer_norm(x.float(), x.shape[-1:]).type_as(x)


_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16}


def _dtype_override(cfg: dict, dtype: str | None) -> str | None:
    _require(cfg, dtype is None or dtype in _DTYPES, f"dtype_override {dtype}")
    return dtype


def _autocast_override(x: torch.Tensor, dtype: str | None):
    """The official ``dtype_override``: None keeps the autocast state, fp32 turns autocast off."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, dtype=_DTYPES[dtype], enabled=_DTYPES[dtype] != torch.float32)


class _ChannelsMove(nn.Module):
    """``PerSampleOp`` with ``channels_first_to_last`` or ``channels_last_to_first``."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"read_key": _REQUIRED, "write_key": _REQUIRED, "per_sample_op": _REQUIRED})
        op = _cls(a["per_sample_op"])
        _require(cfg, op in ("channels_first_to_last", "channels_last_to_first"), f"per_sample_op {op}")
        self.read, self.write = a["read_key"], a["write_key"]
        self.move = (1, -1) if op == "channels_first_to_last" else (-1, 1)

    def forward(self, d):
        d[self.write] = d[self.read].movedim(*self.move)


class _PatchEmbed(nn.Module):
    """``PatchEmbedder``: channels-last grids cut into patches (features ordered row, column, channel) and
    projected."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"input_tensor_list_read_key": _REQUIRED, "patches_list_write_key": _REQUIRED,
                           "patch_sizes": _REQUIRED, "channels_in": _REQUIRED, "dim": None, "flatten_patches": True},
                     inert=("n_patches_write_key", "weight_init_style"))
        _require(cfg, len(a["patch_sizes"]) == 2, "a patch that is not 2D")
        self.read, self.write, self.flatten = a["input_tensor_list_read_key"], a["patches_list_write_key"], \
            a["flatten_patches"]
        self.patch = tuple(a["patch_sizes"])
        n_in = a["channels_in"] * math.prod(self.patch)
        self.patch_proj = nn.Linear(n_in, a["dim"]) if a["dim"] is not None else nn.Identity()

    def forward(self, d):
        x = d[self.read]
        (b, h, w, c), (p, q) = x.shape, self.patch
        x = x.reshape(b, h // p, p, w // q, q, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h // p, w // q, p * q * c)
        x = self.patch_proj(x)
        d[self.write] = x.flatten(1, 2) if self.flatten else x


def sincos_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """``(1, dim, h, w)`` sine-cosine table of the official ``build_2d_sincos_posemb``: position k = r*w + c
    of the grid gets the coordinates (k // h, k % h)."""
    k = torch.arange(h * w).reshape(h, w)
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    a, b = (k // h).float()[..., None] * omega, (k % h).float()[..., None] * omega
    return torch.cat([a.sin(), a.cos(), b.sin(), b.cos()], -1).permute(2, 0, 1)[None].contiguous()


class _PosEmb(nn.Module):
    """``PositionalEmbeddingAdder``: a fixed sine-cosine 2D table or a learned one (sum or product of per-axis
    tables), cropped or interpolated to the input's positions."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"read_key": _REQUIRED, "write_key": _REQUIRED, "dim": _REQUIRED, "max_sizes": _REQUIRED,
                           "posemb_type": "sincos", "posemb_scaling": "absolute", "posemb_write_key": None})
        self.read, self.write, self.extra = a["read_key"], a["write_key"], a["posemb_write_key"]
        self.kind, self.scaling, sizes = a["posemb_type"], a["posemb_scaling"], list(a["max_sizes"])
        _require(cfg, self.scaling == "absolute" or (self.scaling == "interpolate" and len(sizes) == 2),
                 f"posemb_scaling {self.scaling} over {sizes}")
        if self.kind == "sincos":
            _require(cfg, len(sizes) == 2, "a sincos table that is not 2D")
            self.posembs = nn.Parameter(sincos_2d(*sizes, a["dim"]), requires_grad=False)
        else:
            _require(cfg, self.kind in ("learnable_sum", "learnable_prod") and len(set(sizes)) == 1
                     and len(sizes) in (1, 2), f"posemb_type {self.kind} over {sizes}")
            self.posembs = nn.Parameter(nn.init.trunc_normal_(torch.empty(len(sizes), 1, a["dim"], sizes[0]), std=0.02))

    def table(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``(1, *shape, dim)``."""
        pe = self.posembs
        if self.kind != "sincos":
            pe = pe[0] if len(pe) == 1 else (pe[0][..., :, None] * pe[1][..., None, :] if self.kind == "learnable_prod"
                                              else pe[0][..., :, None] + pe[1][..., None, :])
        if self.scaling == "absolute":
            pe = pe[(slice(None), slice(None), *(slice(0, n) for n in shape))]
        else:
            pe = F.interpolate(pe, list(shape), mode="bilinear", align_corners=True)
        return pe.movedim(1, -1)

    def forward(self, d):
        x = d[self.read]
        pe = self.table(tuple(x.shape[1:-1]))
        d[self.write] = x + pe
        if self.extra is not None:
            d[self.extra] = pe


class _Registers(nn.Module):
    """``Registers1D`` in evaluation: all ``n_max`` learned registers (nested ordering)."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"input_tensor_list_read_key": _REQUIRED, "registers_write_key": _REQUIRED,
                           "dim": _REQUIRED, "n_max": _REQUIRED, "n_eval": None, "ordering_mode": "nested",
                           "extra_registers_write_key": None, "extra_registers_dim": None},
                     inert=("register_sizes_read_write_key", "n_min", "size_sampling_mode"))
        _require(cfg, a["ordering_mode"] == "nested", f"ordering_mode {a['ordering_mode']}")
        _require(cfg, a["n_eval"] in (None, a["n_max"]), "n_eval below n_max")
        self.read, self.write, self.extra_write = (a["input_tensor_list_read_key"], a["registers_write_key"],
                                                   a["extra_registers_write_key"])
        self.n = a["n_max"]
        self.registers = nn.Parameter(nn.init.trunc_normal_(torch.empty(a["n_max"], a["dim"]), std=0.02))
        if self.extra_write is not None:
            self.extra_registers = nn.Parameter(torch.randn(a["n_max"], a["extra_registers_dim"]))

    def forward(self, d):
        b = d[self.read].shape[0]
        d[self.write] = self.registers[:self.n].expand(b, -1, -1)
        if self.extra_write is not None:
            d[self.extra_write] = self.extra_registers[:self.n].expand(b, -1, -1)


class _Packer(nn.Module):
    """``BlockWiseSequencePacker``: the inputs' positions concatenated into one sequence per image, with its
    attention mask (``full``; ``causal``; ``causal_last``: the inputs before the last attend to each other,
    the last to all of them and causally to itself). Padding to a multiple of 128 is FlexAttention's need only:
    padded positions never reach real ones, so none is added here."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"input_list_read_keys": _REQUIRED, "packed_seq_write_key": _REQUIRED,
                           "block_mask_write_key": _REQUIRED, "inner_packed_shapes_write_key": _REQUIRED,
                           "mask_mode": "full", "emb_packing_fn_write_key": None, "per_subseq_embs": False},
                     inert=("outer_packed_shapes_write_key", "max_seq_len", "pad_to_multiple", "compile_block_mask",
                            "return_materialized_mask"))
        _require(cfg, a["mask_mode"] in ("full", "causal", "causal_last"), f"mask_mode {a['mask_mode']}")
        self.reads, self.write, self.mask_write = list(a["input_list_read_keys"]), a["packed_seq_write_key"], \
            a["block_mask_write_key"]
        self.shapes_write, self.mode = a["inner_packed_shapes_write_key"], a["mask_mode"]
        self.emb_write, self.per_subseq = a["emb_packing_fn_write_key"], a["per_subseq_embs"]

    def mask(self, lengths: list[int], device) -> torch.Tensor | None:
        """Boolean ``(N, N)``, True where a query (row) may attend to a key (column); None for ``full``."""
        if self.mode == "full":
            return None
        pos = torch.arange(sum(lengths), device=device)
        allowed = pos[None, :] <= pos[:, None]
        if self.mode == "causal_last":
            allowed |= pos[None, :] < sum(lengths[:-1])
        return allowed

    def forward(self, d):
        parts = [d[k] for k in self.reads]
        flat = [p.flatten(1, -2) for p in parts]
        lengths = [f.shape[1] for f in flat]
        d[self.write] = torch.cat(flat, 1)
        d[self.mask_write] = self.mask(lengths, flat[0].device)
        d[self.shapes_write] = [tuple(p.shape[1:-1]) for p in parts]
        if self.emb_write is not None:
            d[self.emb_write] = (lengths, self.per_subseq)


class _Attention(nn.Module):
    def __init__(self, dim: int, head_dim: int, qkv_bias: bool, proj_bias: bool, qk_norm: bool):
        super().__init__()
        self.heads = dim // head_dim
        self.wq, self.wk, self.wv = (nn.Linear(dim, dim, bias=qkv_bias) for _ in range(3))
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.q_norm = self.k_norm = _Norm() if qk_norm else nn.Identity()
        self.scale = 8.0 / (dim // self.heads)  # the official muP-style scale (1/sqrt(64) at head dim 64)

    def forward(self, x, mask):
        b, n, _ = x.shape
        q, k, v = (w(x).view(b, n, self.heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        out = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v, attn_mask=mask, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class _Mlp(nn.Module):
    """SwiGLU (``fc2(silu(fc1 x) * fc3 x)``, hidden width 2/3 of ``mlp_ratio * dim``) or a plain SiLU MLP."""

    def __init__(self, dim: int, mlp_ratio: float, bias: bool, gated: bool):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        hidden = int(2 * hidden / 3) if gated else hidden
        self.fc1, self.fc2 = nn.Linear(dim, hidden, bias=bias), nn.Linear(hidden, dim, bias=bias)
        if gated:
            self.fc3 = nn.Linear(dim, hidden, bias=bias)

    def forward(self, x):
        h = F.silu(self.fc1(x))
        return self.fc2(h * self.fc3(x) if hasattr(self, "fc3") else h)


class _Block(nn.Module):
    def __init__(self, a: dict):
        super().__init__()
        dim = a["dim"]
        self.norm1, self.norm2 = _Norm(), _Norm()
        self.attn = _Attention(dim, a["head_dim"], a["qkv_bias"], a["proj_bias"], a["qk_norm"])
        self.mlp = _Mlp(dim, a["mlp_ratio"], a["mlp_bias"], a["gated_mlp"])
        if a["adaLN_emb_read_key"] is not None:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, a["adaLN_expansion"] * 6 * dim))

    def forward(self, x, mask, emb, packing):
        if emb is None:
            x = x + self.attn(self.norm1(x), mask)
            return x + self.mlp(self.norm2(x))
        gate_msa, gate_mlp, shift_msa, scale_msa, shift_mlp, scale_mlp = _expand(
            self.adaLN_modulation(emb), packing).chunk(6, -1)
        x = x + gate_msa * self.attn(self.norm1(x) * (1 + scale_msa) + shift_msa, mask)
        return x + gate_mlp * self.mlp(self.norm2(x) * (1 + scale_mlp) + shift_mlp)


def _expand(mod: torch.Tensor, packing: tuple[list[int], bool]) -> torch.Tensor:
    """Per-image modulation ``(B, E * M)`` -> per position: ``(B, N, M)`` with chunk i for the i-th packed
    input when ``per_subseq``, else ``(B, 1, M)`` for every position."""
    lengths, per_subseq = packing
    if not per_subseq:
        return mod[:, None]
    chunks = mod.view(mod.shape[0], len(lengths), -1)
    return chunks.repeat_interleave(torch.tensor(lengths, device=mod.device), dim=1)


class _Transformer(nn.Module):
    """``FlexTransformer``: pre-norm blocks, optionally adaLN-zero modulated by an embedding."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"input_seq_read_key": _REQUIRED, "output_seq_write_key": _REQUIRED, "dim": 768, "depth": 12,
                           "head_dim": 64, "mlp_ratio": 4.0, "qkv_bias": False, "proj_bias": False, "mlp_bias": False,
                           "gated_mlp": True, "qk_norm": True, "block_mask_read_key": None,
                           "adaLN_emb_read_key": None, "adaLN_packing_fn_read_key": None, "adaLN_expansion": 1},
                     inert=("drop", "drop_path_rate", "use_act_checkpoint", "weight_init_style", "zero_init_query_proj",
                            "intermediate_layer_write_key", "intermediate_layers"))
        _require(cfg, a["adaLN_emb_read_key"] is None or a["adaLN_packing_fn_read_key"] is not None,
                 "adaLN without a packing function")
        self.read, self.write, self.mask_read = a["input_seq_read_key"], a["output_seq_write_key"], \
            a["block_mask_read_key"]
        self.emb_read, self.packing_read = a["adaLN_emb_read_key"], a["adaLN_packing_fn_read_key"]
        self.blocks = nn.ModuleList(_Block(a) for _ in range(a["depth"]))

    def forward(self, d):
        x = d[self.read]
        mask = d[self.mask_read] if self.mask_read else None
        emb = d[self.emb_read] if self.emb_read else None
        packing = d[self.packing_read] if self.packing_read else None
        for block in self.blocks:
            x = block(x, mask, emb, packing)
        d[self.write] = x


class _Unpacker(nn.Module):
    """``SequenceUnpacker``: the packed sequence split back into the packer's inputs, in their shapes."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"packed_seq_read_key": _REQUIRED, "inner_seq_write_keys": _REQUIRED,
                           "inner_packed_shapes_read_key": _REQUIRED}, inert=("outer_packed_shapes_read_key",))
        self.read, self.writes, self.shapes_read = a["packed_seq_read_key"], list(a["inner_seq_write_keys"]), \
            a["inner_packed_shapes_read_key"]

    def forward(self, d):
        x, shapes = d[self.read], d[self.shapes_read]
        parts = x.split([math.prod(s) for s in shapes], dim=1)
        for key, part, shape in zip(self.writes, parts, shapes):
            d[key] = part.reshape(x.shape[0], *shape, x.shape[-1])


class _Head(nn.Module):
    """``LinearHead`` / ``ToPatchesLinearHead``: norm, optional adaLN shift and scale, projection, and for
    the latter patches folded back into a channels-last grid."""

    def __init__(self, cfg, to_patches: bool):
        super().__init__()
        out = {"channels_out": _REQUIRED, "patch_sizes": _REQUIRED} if to_patches else {"dim_out": _REQUIRED}
        a = _options(cfg, {"read_key": _REQUIRED, "write_key": _REQUIRED, "dim": _REQUIRED, **out,
                           "use_mup_readout": _REQUIRED, "dtype_override": None, "adaLN_emb_read_key": None,
                           "adaLN_packing_fn_read_key": None, "adaLN_bias": True, "proj_bias": True},
                     inert=("weight_init_style",))
        _require(cfg, not a["use_mup_readout"], "a muP readout")
        _require(cfg, a["adaLN_packing_fn_read_key"] is None, "a packed adaLN head")
        self.read, self.write, self.emb_read = a["read_key"], a["write_key"], a["adaLN_emb_read_key"]
        self.dtype = _dtype_override(cfg, a["dtype_override"])
        self.patch = tuple(a["patch_sizes"]) if to_patches else None
        dim_out = a["channels_out"] * math.prod(self.patch) if to_patches else a["dim_out"]
        self.norm = _Norm()
        if self.emb_read is not None:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(a["dim"], 2 * a["dim"], bias=a["adaLN_bias"]))
        self.proj = nn.Linear(a["dim"], dim_out, bias=a["proj_bias"])

    def forward(self, d):
        x = d[self.read]
        with _autocast_override(x, self.dtype):
            x = self.norm(x)
            if self.emb_read is not None:
                mod = self.adaLN_modulation(d[self.emb_read])
                shift, scale = mod.view(mod.shape[0], *[1] * (x.ndim - 2), -1).chunk(2, -1)
                x = x * (1 + scale) + shift
            x = self.proj(x)
        if self.patch is not None:
            (b, h, w, _), (p, q) = x.shape, self.patch
            x = x.reshape(b, h, w, p, q, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h * p, w * q, -1)
        d[self.write] = x


class _Linear(nn.Module):
    """``LinearLayer``."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"read_key": _REQUIRED, "write_key": _REQUIRED, "dim_in": _REQUIRED, "dim": _REQUIRED,
                           "dtype_override": None, "proj_bias": True}, inert=("weight_init_style",))
        self.read, self.write, self.dtype = a["read_key"], a["write_key"], _dtype_override(cfg, a["dtype_override"])
        self.proj = nn.Linear(a["dim_in"], a["dim"], bias=a["proj_bias"])

    def forward(self, d):
        with _autocast_override(d[self.read], self.dtype):
            d[self.write] = self.proj(d[self.read])


class _NestedDropout(nn.Module):
    """``MaskedNestedDropout`` in evaluation: positions at or past each image's kept length hold the mask
    token."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"read_write_key": _REQUIRED, "dim": _REQUIRED, "eval_keep_k_read_key": "eval_keep_k"},
                     inert=("train_keep_k_write_key", "size_sampling_mode"))
        self.key, self.keep_read = a["read_write_key"], a["eval_keep_k_read_key"]
        self.dropout_mask_token = nn.Parameter(nn.init.trunc_normal_(torch.empty(a["dim"]), std=0.02))

    def forward(self, d):
        if self.keep_read is None or self.keep_read not in d:
            return
        x, keep = d[self.key], d[self.keep_read]
        dropped = torch.arange(x.shape[1], device=x.device)[None, :] >= keep.to(x.device)[:, None]
        d[self.key] = torch.where(dropped[..., None], self.dropout_mask_token.to(x.dtype), x)


class _NullCond(nn.Module):
    """``ZeroNullCond`` / ``LearnedNullCond`` in evaluation: flagged images' tokens become the null condition."""

    def __init__(self, cfg, learned: bool):
        super().__init__()
        a = _options(cfg, {"read_write_key": _REQUIRED, "eval_drop_flag_read_key": UNCOND_FLAG,
                           **({"dim": _REQUIRED, "replace_with_single_token": False} if learned else {})},
                     inert=("dropout_prob",))
        self.key, self.flag_read = a["read_write_key"], a["eval_drop_flag_read_key"]
        self.single = a.get("replace_with_single_token", False)
        if learned:
            self.nullcond = nn.Parameter(nn.init.trunc_normal_(torch.empty(a["dim"]), std=0.02))

    def forward(self, d):
        if self.flag_read is None or self.flag_read not in d:
            return
        x, flags = d[self.key], d[self.flag_read].to(d[self.key].device)
        null = self.nullcond.to(x.dtype) if hasattr(self, "nullcond") else x.new_zeros(())
        if self.single:
            if not bool(flags.all()):
                raise ValueError("a single-token null condition needs every image of the batch flagged")
            d[self.key] = null.expand(x.shape[0], 1, x.shape[-1])
        else:
            d[self.key] = torch.where(flags.view(-1, *[1] * (x.ndim - 1)), null, x)


class _TimeEmbed(nn.Module):
    """``TimestepEmbedder``: cosine and sine features of t (max period 256, frequencies scaled by
    1000 / max_timestep), then an MLP."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"timesteps_read_key": _REQUIRED, "time_embedding_write_key": _REQUIRED, "dim": _REQUIRED,
                           "frequency_embedding_size": 256, "max_timestep": 1000.0, "temb_as_tokens": False},
                     inert=("weight_init_style",))
        _require(cfg, not a["temb_as_tokens"], "timestep embeddings as tokens")
        self.read, self.write, self.size, self.max_t = (a["timesteps_read_key"], a["time_embedding_write_key"],
                                                        a["frequency_embedding_size"], a["max_timestep"])
        self.mlp = nn.Sequential(nn.Linear(self.size, a["dim"]), nn.SiLU(), nn.Linear(a["dim"], a["dim"]))

    def forward(self, d):
        t = d[self.read]
        half = self.size // 2
        freqs = (1000.0 / self.max_t) * torch.exp(-math.log(256) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs.to(t.device)[None]
        feats = torch.cat([args.cos(), args.sin()], -1)
        if self.size % 2:
            feats = F.pad(feats, (0, 1))
        d[self.write] = self.mlp(feats)


_STEPS = {
    "PerSampleOp": _ChannelsMove, "PatchEmbedder": _PatchEmbed, "PositionalEmbeddingAdder": _PosEmb,
    "Registers1D": _Registers, "BlockWiseSequencePacker": _Packer, "FlexTransformer": _Transformer,
    "SequenceUnpacker": _Unpacker, "LinearHead": lambda c: _Head(c, False),
    "ToPatchesLinearHead": lambda c: _Head(c, True), "LinearLayer": _Linear, "MaskedNestedDropout": _NestedDropout,
    "ZeroNullCond": lambda c: _NullCond(c, False), "LearnedNullCond": lambda c: _NullCond(c, True),
    "TimestepEmbedder": _TimeEmbed,
}


class _Pipeline(nn.Module):
    """A ``SequentialModuleDictWrapper``: its modules in config order, under their config names."""

    def __init__(self, cfg):
        super().__init__()
        a = _options(cfg, {"module_dict": _REQUIRED})
        unknown = sorted({_cls(c) for c in a["module_dict"].values()} - set(_STEPS))
        if unknown:
            raise WeightsMismatch(f"FlexTok config: modules {unknown} are not implemented by vtbench's port")
        self.module_dict = nn.ModuleDict({name: _STEPS[_cls(c)](c) for name, c in a["module_dict"].items()})

    def forward(self, d: dict) -> dict:
        for step in self.module_dict.values():
            step(d)
        return d

    def find(self, kind: type) -> nn.Module:
        steps = [m for m in self.module_dict.values() if isinstance(m, kind)]
        if len(steps) != 1:
            raise WeightsMismatch(f"FlexTok config: expected one {kind.__name__[1:]} module, found {len(steps)}")
        return steps[0]


class _VAE(nn.Module):
    """``StableDiffusionVAE``: diffusers' ``AutoencoderKL`` (the official base config unless ``arch`` is given)
    under ``vae``, latents times the scaling factor."""

    def __init__(self, cfg, arch: KLVAEConfig | None):
        super().__init__()
        a = _options(cfg, {"vae_latents_write_key": _REQUIRED, "latent_channels": 16, "scaling_factor": None,
                           "dtype_override": "fp32", "hf_hub_path": None, "sample_posterior": True,
                           "learnable_logvar": False},
                     inert=("images_read_key", "vae_latents_read_key", "images_reconst_write_key",
                            "vae_kl_loss_write_key", "logvar_init", "compile_encode_fn", "force_vae_encode", "frozen"))
        _require(cfg, a["scaling_factor"] is not None, "a VAE without a scaling factor in the config (one read "
                 f"from {a['hf_hub_path']}'s own config)")
        arch = replace(arch or KLVAEConfig(block_out_channels=(128, 256, 512, 512), layers_per_block=2),
                       latent_channels=a["latent_channels"], scaling_factor=a["scaling_factor"])
        self.vae = AutoencoderKL(arch)
        if a["learnable_logvar"]:
            self.logvar = nn.Parameter(torch.zeros(()))
        self.write, self.scale = a["vae_latents_write_key"], a["scaling_factor"]
        self.dtype = _dtype_override(cfg, a["dtype_override"])
        self.samples = a["sample_posterior"]  # the official tokenizer's choice; vtbench encodes the mean
        self.factor = 2 ** (len(arch.block_out_channels) - 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        with _autocast_override(x, self.dtype):
            return GaussianPosterior.from_moments(self.vae.quant_conv(self.vae.encoder(x))).mean * self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        with _autocast_override(z, self.dtype):
            return self.vae.decoder(self.vae.post_quant_conv(z / self.scale))


# --- the tokenizer ------------------------------------------------------------------------------------
class FlexTok(Tokenizer):
    """FlexTok from its config (the checkpoint header's format). ``steps``, ``guidance`` and ``apg`` are the
    decoding defaults; `decode` takes them per call too."""

    sampling_options = ("steps", "guidance", "apg")

    def __init__(self, config: dict, vae_arch: KLVAEConfig | None = None, steps: int = 20, guidance: float = 7.5,
                 apg: bool = True):
        super().__init__()
        top = _options(config, {"vae": _REQUIRED, "encoder": _REQUIRED, "decoder": _REQUIRED,
                                "regularizer": _REQUIRED, "pipeline": _REQUIRED},
                       inert=("flow_matching_noise_module",))
        fsq = _options(top["regularizer"], {"latents_read_key": _REQUIRED, "quants_write_key": _REQUIRED,
                                            "levels": _REQUIRED},
                       inert=("tokens_write_key", "drop_quant_p", "corrupt_tokens_p", "min_corrupt_tokens_p",
                              "apply_corrupt_tokens_p", "packed_call"))
        pipe = _options(top["pipeline"], {"timesteps_read_key": _REQUIRED, "noised_images_read_key": _REQUIRED,
                                          "reconst_write_key": _REQUIRED, "out_channels": _REQUIRED},
                        inert=("noise_read_key", "target_sizes_read_key", "latents_read_key"))
        self.config, self.steps, self.guidance, self.apg = config, steps, guidance, apg
        self.vae = _VAE(top["vae"], vae_arch)
        self.encoder = _Pipeline(top["encoder"])
        self.decoder = _Pipeline(top["decoder"])
        self.regularizer = Q.FSQ(tuple(fsq["levels"]))
        self.keys = {"latents": fsq["latents_read_key"], "quants": fsq["quants_write_key"],
                     "t": pipe["timesteps_read_key"], "noised": pipe["noised_images_read_key"],
                     "out": pipe["reconst_write_key"], "keep": self.decoder.find(_NestedDropout).keep_read}
        self.registers = self.encoder.find(_Registers).n
        embed = self.encoder.find(_PatchEmbed)
        grid = [m for m in self.encoder.module_dict.values() if isinstance(m, _PosEmb) and m.read == embed.write]
        _require(top["encoder"], len(grid) == 1, "an encoder without one positional table on its patches")
        patch = embed.patch[0]
        self.latent_side = patch * grid[0].posembs.shape[-1]
        self.noise_channels = pipe["out_channels"]
        resolution = self.vae.factor * self.latent_side
        sampled = "; the official tokenizer samples the VAE posterior, vtbench encodes its mean" if self.vae.samples \
            else ""
        self.info = TokenizerInfo(
            family="flextok", kind="levels", resolution=resolution, downsample=self.vae.factor * patch,
            vocab_sizes=self.regularizer.vocab_sizes, tokens_per_image=self.registers, spatial_dims=1, order="lsb",
            fixed_resolution=True, ordered=True, paper=PAPER, code=CODE, license=LICENSE,
            input_range="minus_one_one",
            notes=(f"1D, ordered: any prefix of the {self.registers} tokens decodes; rectified-flow decoder "
                   f"(its Euler steps and guidance: the result's tokenizer.sampling), noise seeded by the "
                   f"tokens{sampled}"),
        )

    # --- encoder ------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, num_tokens: int | None = None) -> Tokens:
        """The tokens of ``images``; ``num_tokens`` keeps the first k of them (any prefix decodes)."""
        tokens = super().encode(images)
        if num_tokens is None:
            return tokens
        if not 1 <= num_tokens <= self.registers:
            raise ValueError(f"num_tokens is 1..{self.registers}, got {num_tokens}")
        return tokens.map(lambda s: s[:, :num_tokens])

    def _autocast(self, device: torch.device):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-quantization register features ``(B, levels, registers)`` of images in [-1, 1]."""
        z = self.vae.encode(x)
        with self._autocast(x.device):
            d = self.encoder({self.vae.write: z})
        return d[self.keys["latents"]].float().transpose(1, 2)

    def _tokens(self, codes: torch.Tensor) -> Tokens:
        return Tokens((codes,), "levels", self.regularizer.vocab_sizes, spatial_dims=1, order="lsb")

    def _encode(self, x):
        return self._tokens(self.regularizer(self.latents(x)).codes)

    def _neighbours(self, x, k):
        z = self.latents(x)
        return self._tokens(self.regularizer(z).codes), [self.regularizer.neighbours(z, k)]

    # --- decoder ------------------------------------------------------------------------------------
    def velocity(self, noised: torch.Tensor, t: float, quants: torch.Tensor, keep: torch.Tensor,
                 uncond: bool = False) -> torch.Tensor:
        """The decoder's flow prediction for latents ``noised`` at time ``t`` given the dequantized tokens
        ``quants`` ``(B, registers, levels)`` of which each image keeps the first ``keep[b]``."""
        b = noised.shape[0]
        d = {self.keys["quants"]: quants, self.keys["keep"]: keep, self.keys["noised"]: noised,
             self.keys["t"]: t * torch.ones(b, device=noised.device)}
        if uncond:
            d[UNCOND_FLAG] = torch.ones(b, dtype=torch.bool, device=noised.device)
        with self._autocast(noised.device):
            return self.decoder(d)[self.keys["out"]].float()

    def noise(self, codes: torch.Tensor, keep: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Starting latents: drawn from ``generator`` image by image, or, without one, each from a generator
        seeded by that image's kept tokens."""
        shape = (1, self.noise_channels, self.latent_side, self.latent_side)
        if generator is not None:
            return torch.cat([torch.randn(shape, generator=generator, device=generator.device)
                              for _ in range(codes.shape[0])]).to(self.device)
        ids = codes.cpu().numpy().astype(np.int64)
        seeds = [zlib.crc32(ids[i, :int(keep[i])].tobytes()) for i in range(codes.shape[0])]
        noise = [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds]
        return torch.cat(noise).to(self.device)

    def _decode(self, tokens, generator=None, steps=None, guidance=None, apg=None):
        steps = self.steps if steps is None else int(steps)
        guidance = self.guidance if guidance is None else float(guidance)
        apg = self.apg if apg is None else bool(apg)
        if steps < 1:
            raise ValueError(f"steps is at least 1, got {steps}")
        codes = tokens.scales[0].to(self.device)
        b, n, _ = codes.shape
        keep = tokens.lengths.to(self.device) if tokens.lengths is not None else torch.full((b,), n, device=self.device)
        padded = codes.new_zeros(b, self.registers, codes.shape[-1])
        padded[:, :n] = codes
        quants = self.regularizer.dequantize(padded).movedim(1, -1)
        x = self.noise(codes, keep, generator)
        momentum = None
        for i in range(steps, 0, -1):
            v = self.velocity(x, i / steps, quants, keep)
            if guidance != 1.0:
                v_uncond = self.velocity(x, i / steps, quants, keep, uncond=True)
                if apg:
                    v, momentum = _apg(v, v_uncond, guidance, momentum)
                else:
                    v = v_uncond + guidance * (v - v_uncond)
            x = x - (1.0 / steps) * v
        return self.vae.decode(x)


def _apg(cond: torch.Tensor, uncond: torch.Tensor, scale: float, running: torch.Tensor | None,
         momentum: float = -0.5, threshold: float = 2.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive projected guidance (Sadat et al. 2024) per image, as the official pipeline runs it: the
    difference with momentum, its norm capped at ``threshold``, its part orthogonal to the conditional
    prediction (eta 0). Returns the guided prediction and the new running difference."""
    diff = cond - uncond
    running = diff if running is None else diff + momentum * running
    dims = (1, 2, 3)
    capped = running * torch.clamp(threshold / running.norm(p=2, dim=dims, keepdim=True), max=1.0)
    unit = F.normalize(cond.double(), dim=dims)
    capped = capped.double()
    orthogonal = (capped - (capped * unit).sum(dims, keepdim=True) * unit).to(cond.dtype)
    return cond + (scale - 1) * orthogonal, running


# --- configs ------------------------------------------------------------------------------------------
def _t(path: str) -> str:
    return f"flextok.{path}"


def default_config(encoder_depth: int = 12, decoder_depth: int = 12, *, width_per_layer: int = 64, head_dim: int = 64,
                   registers: int = 256, levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5), latent_channels: int = 16,
                   latent_side: int = 32, patch: int = 2, scaling_factor: float = 1.0) -> dict:
    """A FlexTok config in the checkpoint header's format (Hydra ``_target_`` dicts): the released layout
    at width ``width_per_layer * depth``. The VAE scaling factor of the released models is not known here;
    1.0 stands in for random weights."""
    enc, dec, grid = width_per_layer * encoder_depth, width_per_layer * decoder_depth, latent_side // patch
    m = "model."

    def posemb(key: str, dim: int, sizes: list[int], kind: str) -> dict:
        return {"_target_": _t(m + "utils.posembs.PositionalEmbeddingAdder"), "read_key": key, "write_key": key,
                "dim": dim, "max_sizes": sizes, "posemb_type": kind, "posemb_scaling": "absolute"}

    def channels(read: str, write: str, op: str) -> dict:
        return {"_target_": _t(m + "utils.dict_ops.PerSampleOp"), "read_key": read, "write_key": write,
                "per_sample_op": {"_target_": _t(m + f"utils.dict_ops.{op}"), "_partial_": True}}

    def patches(read: str, write: str, dim: int) -> dict:
        return {"_target_": _t(m + "preprocessors.patching.PatchEmbedder"), "input_tensor_list_read_key": read,
                "patches_list_write_key": write, "n_patches_write_key": write + "_n", "channels_in": latent_channels,
                "dim": dim, "patch_sizes": [patch, patch], "flatten_patches": False}

    def packer(reads: list[str], prefix: str, mode: str, **extra) -> dict:
        return {"_target_": _t(m + "preprocessors.flex_seq_packing.BlockWiseSequencePacker"),
                "input_list_read_keys": reads, "packed_seq_write_key": f"{prefix}_packed_seq",
                "block_mask_write_key": f"{prefix}_block_mask", "inner_packed_shapes_write_key": f"{prefix}_ps_inner",
                "outer_packed_shapes_write_key": f"{prefix}_ps_outer", "mask_mode": mode, "pad_to_multiple": 128,
                **extra}

    def trunk(prefix: str, dim: int, depth: int, **extra) -> dict:
        return {"_target_": _t(m + "trunks.transformers.FlexTransformer"), "input_seq_read_key": f"{prefix}_packed_seq",
                "output_seq_write_key": f"{prefix}_packed_seq", "dim": dim, "depth": depth, "head_dim": head_dim,
                "block_mask_read_key": f"{prefix}_block_mask", **extra}

    def unpacker(writes: list[str], prefix: str) -> dict:
        return {"_target_": _t(m + "postprocessors.seq_unpacking.SequenceUnpacker"),
                "packed_seq_read_key": f"{prefix}_packed_seq", "inner_seq_write_keys": writes,
                "inner_packed_shapes_read_key": f"{prefix}_ps_inner",
                "outer_packed_shapes_read_key": f"{prefix}_ps_outer"}

    encoder = {
        "enc_channels_to_last": channels("vae_latents", "vae_latents_bhwc", "channels_first_to_last"),
        "enc_patch_emb": patches("vae_latents_bhwc", "enc_patches", enc),
        "enc_posemb_module": posemb("enc_patches", enc, [grid, grid], "sincos"),
        "enc_register_module": {"_target_": _t(m + "preprocessors.registers.Registers1D"),
                                "input_tensor_list_read_key": "enc_patches", "register_sizes_read_write_key":
                                "register_sizes", "registers_write_key": "enc_registers", "dim": enc,
                                "n_min": 1, "n_max": registers, "size_sampling_mode": "uniform",
                                "ordering_mode": "nested"},
        "enc_seq_packer": packer(["enc_patches", "enc_registers"], "enc", "causal_last"),
        "enc_transformer": trunk("enc", enc, encoder_depth),
        "enc_unpacker": unpacker(["enc_patches", "enc_registers"], "enc"),
        "enc_to_latents": {"_target_": _t(m + "postprocessors.heads.LinearHead"), "read_key": "enc_registers",
                           "write_key": "enc_registers", "dim": enc, "dim_out": len(levels), "use_mup_readout": False},
    }
    decoder = {
        "dec_from_latents": {"_target_": _t(m + "preprocessors.linear.LinearLayer"), "read_key": "fsq_quants",
                             "write_key": "dec_quants", "dim_in": len(levels), "dim": dec},
        "dec_registers_posemb_module": posemb("dec_quants", dec, [registers], "learnable_sum"),
        "dec_nested_dropout": {"_target_": _t(m + "preprocessors.token_dropout.MaskedNestedDropout"),
                               "read_write_key": "dec_quants", "dim": dec, "eval_keep_k_read_key": "eval_keep_k",
                               "train_keep_k_write_key": "train_keep_k", "size_sampling_mode": "pow2"},
        "dec_latent_dropout": {"_target_": _t(m + "preprocessors.nullcond.ZeroNullCond"),
                               "read_write_key": "dec_quants", "eval_drop_flag_read_key": UNCOND_FLAG,
                               "dropout_prob": 0.2},
        "dec_noise_channels_to_last": channels("vae_latents_noised", "vae_latents_noised_bhwc",
                                               "channels_first_to_last"),
        "dec_noise_patch_emb": patches("vae_latents_noised_bhwc", "dec_patches", dec),
        "dec_patches_posemb_module": posemb("dec_patches", dec, [grid, grid], "sincos"),
        "dec_seq_packer": packer(["dec_patches", "dec_quants"], "dec", "full",
                                 emb_packing_fn_write_key="dec_emb_packing_fn", per_subseq_embs=True),
        "dec_time_embedder": {"_target_": _t(m + "preprocessors.time_embedding.TimestepEmbedder"),
                              "timesteps_read_key": "timesteps", "time_embedding_write_key": "dec_temb", "dim": dec,
                              "max_timestep": 1.0},
        "dec_transformer": trunk("dec", dec, decoder_depth, adaLN_emb_read_key="dec_temb",
                                 adaLN_packing_fn_read_key="dec_emb_packing_fn", adaLN_expansion=2),
        "dec_unpacker": unpacker(["dec_patches", "dec_quants"], "dec"),
        "dec_to_patches": {"_target_": _t(m + "postprocessors.heads.ToPatchesLinearHead"), "read_key": "dec_patches",
                           "write_key": "vae_latents_reconst", "dim": dec, "channels_out": latent_channels,
                           "patch_sizes": [patch, patch], "use_mup_readout": False, "adaLN_emb_read_key": "dec_temb"},
        "dec_channels_to_first": channels("vae_latents_reconst", "vae_latents_reconst", "channels_last_to_first"),
    }
    wrapper = _t(m + "utils.wrappers.SequentialModuleDictWrapper")
    return {
        "_target_": _t("flextok_wrapper.FlexTok"),
        "vae": {"_target_": _t("vae_wrapper.StableDiffusionVAE"), "images_read_key": "rgb",
                "vae_latents_read_key": "vae_latents_reconst", "vae_latents_write_key": "vae_latents",
                "images_reconst_write_key": "rgb_reconst", "latent_channels": latent_channels,
                "scaling_factor": scaling_factor, "sample_posterior": False, "frozen": True},
        "encoder": {"_target_": wrapper, "module_dict": encoder},
        "decoder": {"_target_": wrapper, "module_dict": decoder},
        "regularizer": {"_target_": _t("regularizers.quantize_fsq.FSQ"), "latents_read_key": "enc_registers",
                        "quants_write_key": "fsq_quants", "tokens_write_key": "tokens", "levels": list(levels)},
        "flow_matching_noise_module": {"_target_": _t("flow_matching.noise_modules.MinRFNoiseModule"),
                                       "clean_images_read_key": "vae_latents",
                                       "noised_images_write_key": "vae_latents_noised",
                                       "timesteps_write_key": "timesteps", "sigmas_write_key": "sigmas"},
        "pipeline": {"_target_": _t("flow_matching.pipelines.MinRFPipeline"), "_partial_": True,
                     "target_sizes_read_key": "vae_image_sizes", "latents_read_key": "fsq_quants",
                     "timesteps_read_key": "timesteps", "noised_images_read_key": "vae_latents_noised",
                     "reconst_write_key": "vae_latents_reconst", "out_channels": latent_channels},
    }


#: the test fixtures' size: 32 px images through an f2 VAE, 8x8 patches, 8 registers, width 32
TINY_VAE = KLVAEConfig(block_out_channels=(32, 64), layers_per_block=1, latent_channels=4, norm_num_groups=8,
                       sample_size=32)
TINY_CONFIG = default_config(2, 2, width_per_layer=16, head_dim=16, registers=8, latent_channels=4, latent_side=16,
                             scaling_factor=0.5)

#: entry -> (Hub repository, encoder depth, decoder depth)
VARIANTS = {
    "flextok-d12-d12": ("EPFL-VILAB/flextok_d12_d12_in1k", 12, 12),
    "flextok-d18-d18": ("EPFL-VILAB/flextok_d18_d18_in1k", 18, 18),
    "flextok-d18-d28": ("EPFL-VILAB/flextok_d18_d28_in1k", 18, 28),
}


def _builder(encoder_depth: int, decoder_depth: int):
    def build(config: dict | None = None, **kw) -> FlexTok:
        return FlexTok(config if config is not None else default_config(encoder_depth, decoder_depth), **kw)

    return build


for _name, (_repo, _enc, _dec) in VARIANTS.items():
    register_tokenizer(
        _name,
        weights={"hub": Checkpoint({"model": HubFile(_repo, "model.safetensors")}, license=LICENSE,
                                   published={"note": "the paper's rFID per token count (ImageNet-1k val, 256 px) "
                                                      "is not transcribed here", "source": PAPER})},
        file_config=_file_config,
        description=f"FlexTok d{_enc}-d{_dec} (ImageNet-1k): 1 to 256 ordered FSQ tokens (64,000 codes), "
                    "rectified-flow decoder (20 steps, APG 7.5)",
    )(_builder(_enc, _dec))

"""``save_pretrained`` / ``from_pretrained``: a tokenizer as a folder of ``config.json`` + ``model.safetensors``.

``config.json`` names the ``architecture`` (a name registered with `register_architecture`) and holds the
config dataclass under ``"model"``; anything else in it (a training record, the data it saw) is kept for
readers and ignored by loading. Loading is strict, as every load in vtbench.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Callable

import torch

from ..common import sha256_file, write_atomic
from .base import Tokenizer
from .weights import WeightsUnavailable, load_strict, read_state_dict

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"

#: architecture name -> (config dataclass, builder from a config)
ARCHITECTURES: dict[str, tuple[type, Callable[[object], Tokenizer]]] = {}


def register_architecture(name: str, config_cls: type):
    """Decorator for a builder ``config -> Tokenizer`` that `from_pretrained` can find by ``name``."""
    def deco(builder: Callable[[object], Tokenizer]):
        ARCHITECTURES[name] = (config_cls, builder)
        return builder

    return deco


def architecture_of(tok: Tokenizer) -> str:
    for name, (cls, _) in ARCHITECTURES.items():
        if isinstance(getattr(tok, "cfg", None), cls):
            return name
    raise TypeError(f"{type(tok).__name__} has no registered architecture; save_pretrained needs one")


def config_from_dict(cls: type, data: dict):
    """A config dataclass from JSON values (lists become tuples where the field is a tuple)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {', '.join(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) and "tuple" in str(hints.get(k, "")) else v for k, v in data.items()}
    return cls(**values)


def save_pretrained(tok: Tokenizer, folder: str | Path, record: dict | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``folder/model.safetensors`` (floats cast to ``dtype`` when given) and ``folder/config.json``."""
    from safetensors.torch import save

    folder = Path(folder)
    state = {k: v.detach().to("cpu", dtype if dtype is not None and v.is_floating_point() else v.dtype).contiguous()
             for k, v in tok.state_dict().items()}
    write_atomic(folder / WEIGHTS_FILE, save(state))
    config = {"architecture": architecture_of(tok), "model": dataclasses.asdict(tok.cfg), **(record or {})}
    write_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return folder


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsUnavailable(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or data.get("architecture") not in ARCHITECTURES or "model" not in data:
        known = ", ".join(sorted(ARCHITECTURES))
        raise WeightsUnavailable(f"{path} names no known architecture (expected one of: {known}) with a 'model' config")
    return data


def config_of(data: dict):
    """The config dataclass a `read_config` result describes."""
    return config_from_dict(ARCHITECTURES[data["architecture"]][0], data["model"])


def build_from_config(data: dict) -> Tokenizer:
    return ARCHITECTURES[data["architecture"]][1](config_of(data))


def from_pretrained(folder: str | Path, device: str | torch.device = "cpu") -> Tokenizer:
    """The tokenizer saved in ``folder``, loaded strictly and frozen (eval mode, no gradients)."""
    from .registry import LoadedWeights  # the registry imports this module

    folder = Path(folder)
    tok = build_from_config(read_config(folder))
    path = folder / WEIGHTS_FILE
    load_strict(tok, read_state_dict(path), str(path))
    sha = sha256_file(path)
    tok.loaded_weights = LoadedWeights(f"file-{sha[:12]}", str(folder), sha, str(path), published=False)
    tok.registry_name = tok.label = f"{folder.name}:file-{sha[:12]}"
    return tok.requires_grad_(False).eval().to(device)

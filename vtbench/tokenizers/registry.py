"""timm-style registry: `register_tokenizer`, `load_tokenizer("name[:weights]")`, `list_tokenizers()`."""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Callable

import torch

from .base import Tokenizer
from .weights import (NO_WEIGHTS, RANDOM_INIT, StateDictConverter, WeightSource, available_offline, load_strict,
                      read_state_dict, resolve)


@dataclass(frozen=True)
class TokenizerEntry:
    name: str
    build: Callable[[], Tokenizer]
    weights: dict[str, WeightSource]  # tag -> source; the first tag is the default
    convert: StateDictConverter | None = None  # maps the file's state dict to the module's key names
    description: str = ""

    @property
    def default_weights(self) -> str:
        return next(iter(self.weights))

    @property
    def test_only(self) -> bool:
        """Entries whose only weights are random: architecture fixtures, never leaderboard material."""
        return all(src is RANDOM_INIT for src in self.weights.values())

    def available_offline(self, tag: str | None = None) -> bool:
        return available_offline(self.weights[tag or self.default_weights])


@dataclass(frozen=True)
class LoadedWeights:
    """What was loaded into a tokenizer; recorded in every result file."""

    tag: str
    source: str
    sha256: str | None = None
    path: str | None = None
    extra: dict = field(default_factory=dict)


_REGISTRY: dict[str, TokenizerEntry] = {}


def register_tokenizer(name: str, *, weights: dict[str, WeightSource], convert: StateDictConverter | None = None,
                       description: str = ""):
    """Decorator for a zero-argument factory that builds the (randomly initialised) module."""
    if not weights:
        raise ValueError(f"{name}: an entry names at least one weights source")

    def deco(factory: Callable[[], Tokenizer]):
        if name in _REGISTRY:
            raise ValueError(f"tokenizer {name!r} is registered twice")
        _REGISTRY[name] = TokenizerEntry(name, factory, dict(weights), convert, description)
        return factory

    return deco


def list_tokenizers(pattern: str = "*", *, available_only: bool = False, include_test: bool = True) -> list[str]:
    """Registered names matching a glob; ``available_only`` keeps those loadable without network."""
    return sorted(
        name for name, e in _REGISTRY.items()
        if fnmatch.fnmatch(name, pattern)
        and (include_test or not e.test_only)
        and (not available_only or e.available_offline())
    )


def get_entry(name: str) -> TokenizerEntry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown tokenizer {name!r}{hint} (see `vtbench list tokenizers`)")
    return _REGISTRY[name]


def parse_spec(spec: str) -> tuple[TokenizerEntry, str]:
    """``"name"`` or ``"name:tag"`` -> (entry, weights tag). ``random`` is accepted for every entry."""
    name, _, tag = spec.partition(":")
    entry = get_entry(name)
    tag = tag or entry.default_weights
    if tag not in entry.weights and tag != "random":
        raise KeyError(f"tokenizer {name!r} has no weights {tag!r}; it has: {', '.join(entry.weights)} (and 'random')")
    return entry, tag


def load_tokenizer(spec: str, device: str | torch.device = "cpu") -> Tokenizer:
    """Build a tokenizer and load its weights strictly; returns it in eval mode on ``device``.

    Raises `WeightsUnavailable` when the weights are not on this machine and cannot be fetched.
    """
    entry, tag = parse_spec(spec)
    src = entry.weights.get(tag, RANDOM_INIT)
    if src is RANDOM_INIT:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random test models are the same on every load
            model = entry.build()
    else:
        model = entry.build()
    if src is NO_WEIGHTS:
        if any(True for _ in model.parameters()):
            raise RuntimeError(f"{entry.name} has parameters but its entry declares no weights")
        record = LoadedWeights(tag, src.describe())
    elif src is RANDOM_INIT:
        record = LoadedWeights(tag, src.describe())
    else:
        path, sha = resolve(src)
        state = read_state_dict(path)
        if entry.convert is not None:
            state = entry.convert(state)
        load_strict(model, state, str(path))
        record = LoadedWeights(tag, src.describe(), sha, str(path))
    model.loaded_weights = record
    model.registry_name = entry.name
    model.label = entry.name if tag == entry.default_weights else f"{entry.name}@{tag}"
    return model.eval().to(device)

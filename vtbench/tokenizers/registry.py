"""timm-style registry: `register_tokenizer`, `load_tokenizer("name[:tag]")`, `create_tokenizer`, `list_tokenizers`.

A spec is ``name`` (the entry's default weights) or ``name:tag``; the label a loaded tokenizer carries into
results is written the same way (``name`` for the default weights, else ``name:tag``; a user's own file is
``name:file-<sha256[:12]>``). Other installed packages add entries through the ``vtbench.tokenizers``
entry-point group: each entry point names a module (importing it registers its entries) or a callable
(called once).
"""

from __future__ import annotations

import difflib
import fnmatch
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch

from ..errors import UnknownName
from .base import Tokenizer
from .weights import (
    NO_WEIGHTS,
    RANDOM_INIT,
    Checkpoint,
    LocalFile,
    StateDictConverter,
    WeightSource,
    available_offline,
    load_strict,
    read_state_dict,
    resolve,
    single_file,
)

PLUGIN_GROUP = "vtbench.tokenizers"


@dataclass(frozen=True)
class TokenizerEntry:
    name: str
    build: Callable[..., Tokenizer]  # keyword arguments override the entry's config (random weights)
    weights: dict[str, Checkpoint]  # tag -> checkpoint; the first tag is the default
    description: str = ""
    plugin: str = ""  # the distribution that registered it, for entries from other packages
    #: architectures described inside the weights file: {role: path} of the resolved files -> build keywords
    file_config: Callable[[dict[str, Path]], dict] | None = None
    #: False: run only when named (sweeps such as the codec baselines), not by a `vtbench run` without names
    default_run: bool = True

    @property
    def default_weights(self) -> str:
        return next(iter(self.weights))

    @property
    def test_only(self) -> bool:
        """Entries whose only weights are random: architecture fixtures, never leaderboard material."""
        return all(c.source is RANDOM_INIT for c in self.weights.values())

    def available_offline(self, tag: str | None = None) -> bool:
        return all(available_offline(src) for src in self.weights[tag or self.default_weights].files.values())


@dataclass(frozen=True)
class LoadedWeights:
    """What was loaded into a tokenizer; recorded in every result file."""

    tag: str
    source: str
    sha256: str | None = None  # one file: its hash; several: the hashes joined with '+', by role order
    path: str | None = None
    published: bool = True  # False: a user's own checkpoint (weights=PATH), not the entry's released file
    #: the figures the authors report for these weights (`Checkpoint.published`); empty for a user's file
    figures: dict = field(default_factory=dict)


_REGISTRY: dict[str, TokenizerEntry] = {}
_PLUGINS_LOADED = False


def register_tokenizer(name: str, *, weights: dict[str, WeightSource | Checkpoint],
                       convert: StateDictConverter | None = None, description: str = "", plugin: str = "",
                       file_config: Callable[[dict[str, Path]], dict] | None = None, default_run: bool = True):
    """Decorator for a factory that builds the (randomly initialised) module from keyword overrides.

    ``weights`` maps tags to a `Checkpoint`, or to a single source with ``convert`` as its one-file converter.
    ``file_config`` is for checkpoints that describe their own architecture (FlexTok's safetensors header):
    given the resolved files by role, it returns the keywords the factory builds the module with before the
    strict load. ``default_run=False``: evaluated only when named (or matched by a glob), not by a
    `vtbench run` without ``--tokenizer``.
    """
    if not weights:
        raise ValueError(f"{name}: an entry names at least one weights source")
    tags = {tag: w if isinstance(w, Checkpoint) else
            Checkpoint({"model": w}, single_file(convert) if convert is not None else None)
            for tag, w in weights.items()}

    def deco(factory: Callable[..., Tokenizer]):
        if name in _REGISTRY:
            raise ValueError(f"tokenizer {name!r} is registered twice")
        _REGISTRY[name] = TokenizerEntry(name, factory, tags, description, plugin, file_config, default_run)
        return factory

    return deco


def _load_plugins() -> None:
    """Import every ``vtbench.tokenizers`` entry point once; a broken plugin is reported, never fatal."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as e:  # a third party's bug must not take vtbench down
            warnings.warn(f"tokenizer plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}",
                          stacklevel=2)


def list_tokenizers(pattern: str = "*", *, available_only: bool = False, include_test: bool = True,
                    default_run_only: bool = False) -> list[str]:
    """Registered names matching a glob; ``available_only`` keeps those loadable without network,
    ``default_run_only`` those a `vtbench run` without names evaluates."""
    _load_plugins()
    return sorted(
        name for name, e in _REGISTRY.items()
        if fnmatch.fnmatch(name, pattern)
        and (include_test or not e.test_only)
        and (not available_only or e.available_offline())
        and (not default_run_only or e.default_run)
    )


def get_entry(name: str) -> TokenizerEntry:
    _load_plugins()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownName(f"unknown tokenizer {name!r}{hint} (see `vtbench list tokenizers`)")
    return _REGISTRY[name]


def parse_spec(spec: str) -> tuple[TokenizerEntry, str]:
    """``"name"`` or ``"name:tag"`` -> (entry, weights tag). ``random`` is accepted for every entry."""
    name, _, tag = spec.partition(":")
    entry = get_entry(name)
    tag = tag or entry.default_weights
    if tag not in entry.weights and tag != "random":
        have = ", ".join(entry.weights)
        raise UnknownName(f"tokenizer {name!r} has no weights {tag!r}; it has: {have} (and 'random')")
    return entry, tag


def create_tokenizer(name: str, **config) -> Tokenizer:
    """The entry's architecture with random weights; keyword arguments override its config (timm's
    ``create_model(pretrained=False, ...)``)."""
    return get_entry(name).build(**config)


def load_tokenizer(spec: str, device: str | torch.device = "cpu", *,
                   weights: str | Path | dict[str, str | Path] | None = None) -> Tokenizer:
    """Build a tokenizer, load its weights strictly and freeze it (eval mode, no gradients) on ``device``.

    ``weights``: a path to your own checkpoint of the entry's architecture (a dict of role -> path for
    entries of several files), read through the entry's converter and labelled as not the published file.
    Raises `WeightsUnavailable` when the weights are not on this machine and cannot be fetched.
    """
    entry, tag = parse_spec(spec)
    checkpoint = entry.weights.get(tag, Checkpoint({"model": RANDOM_INIT}))
    if weights is not None:
        if ":" in spec:
            raise ValueError(f"give either a weights tag ({spec}) or weights=PATH, not both")
        checkpoint = _user_checkpoint(entry, checkpoint, weights)
    src = checkpoint.source
    if src is RANDOM_INIT:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random test models are the same on every load
            model = entry.build()
        record = LoadedWeights(tag, src.describe())
    elif src is NO_WEIGHTS:
        model = entry.build()
        if any(True for _ in model.parameters()):
            raise RuntimeError(f"{entry.name} has parameters but its entry declares no weights")
        record = LoadedWeights(tag, src.describe())
    else:
        resolved = {role: resolve(s) for role, s in checkpoint.files.items()}
        paths = {role: p for role, (p, _) in resolved.items()}
        model = entry.build(**(entry.file_config(paths) if entry.file_config else {}))
        origin = ", ".join(str(p) for p, _ in resolved.values())
        state = checkpoint.state_dict({role: read_state_dict(p) for role, p in paths.items()})
        load_strict(model, state, origin)
        sha = "+".join(h for _, h in resolved.values())
        if weights is not None:
            tag = f"file-{sha[:12]}"
        record = LoadedWeights(tag, checkpoint.describe(), sha, origin, published=weights is None,
                               figures=dict(checkpoint.published) if weights is None else {})
    model.loaded_weights = record
    model.registry_name = entry.name
    model.label = entry.name if tag == entry.default_weights and weights is None else f"{entry.name}:{tag}"
    return model.requires_grad_(False).eval().to(device)


def _user_checkpoint(entry: TokenizerEntry, template: Checkpoint, weights) -> Checkpoint:
    """The entry's default checkpoint with the user's file(s) in place of the published ones."""
    paths = weights if isinstance(weights, dict) else {"model": weights}
    roles = set(template.files)
    if template.source is NO_WEIGHTS:
        raise ValueError(f"{entry.name} has no weights to replace")
    if template.source is RANDOM_INIT:
        roles = {"model"}
    if set(paths) != roles:
        raise ValueError(f"{entry.name}'s weights are the files {sorted(roles)}; got {sorted(paths)}")
    for p in paths.values():
        if not Path(p).expanduser().is_file():
            raise FileNotFoundError(f"weights file {p} does not exist")
    convert = template.convert if template.source is not RANDOM_INIT else None
    return Checkpoint({role: LocalFile(str(Path(p).expanduser())) for role, p in paths.items()}, convert)

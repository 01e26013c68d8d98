"""Where tokenizer weights come from, how they are verified, and strict loading.

A registry entry names one `WeightSource` per weights tag:

* `HubFile`: a file on the Hugging Face Hub, pinned by sha256. Looked up, in order, in
  ``$VTBENCH_WEIGHTS_DIR`` (as ``<dir>/<repo_id>/<filename>`` or ``<dir>/<filename>``), in the local
  huggingface_hub cache, and only then downloaded (never when ``HF_HUB_OFFLINE=1``).
* `ManualFile`: a file released outside the Hub (e.g. on Google Drive) that the user downloads by hand into
  ``$VTBENCH_WEIGHTS_DIR``; never downloaded by vtbench.
* `PackageFile`: a file shipped inside the vtbench package (the tokenizers vtbench trains itself).
* `LocalFile`: any path on disk.
* `NO_WEIGHTS`: parameter-free tokenizers (baselines).
* `RANDOM_INIT`: explicit random initialisation, for test models only; never a fallback.

Loading is strict: a missing file, a hash mismatch, or a missing or unexpected key is an error.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..common import env_flag, sha256_file
from ..errors import VtbenchError

WEIGHTS_DIR_ENV = "VTBENCH_WEIGHTS_DIR"
PACKAGE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


class WeightsUnavailable(VtbenchError, RuntimeError):
    """The weights file cannot be found here and cannot be fetched."""


class WeightsMismatch(VtbenchError, RuntimeError):
    """A weights file that does not fit the architecture it was loaded into (another variant, another model)."""


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str
    sha256: str | None = None
    revision: str | None = None

    def describe(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}"


@dataclass(frozen=True)
class ManualFile:
    filename: str
    url: str  # where the authors release it
    sha256: str | None = None

    def describe(self) -> str:
        return f"{self.filename} (from {self.url})"


@dataclass(frozen=True)
class PackageFile:
    relpath: str
    sha256: str | None = None

    def describe(self) -> str:
        return f"vtbench/weights/{self.relpath}"


@dataclass(frozen=True)
class LocalFile:
    path: str
    sha256: str | None = None

    def describe(self) -> str:
        return self.path


@dataclass(frozen=True)
class _Marker:
    name: str

    def describe(self) -> str:
        return self.name


NO_WEIGHTS = _Marker("none")
RANDOM_INIT = _Marker("random")
WeightSource = HubFile | ManualFile | PackageFile | LocalFile | _Marker

StateDictConverter = Callable[[dict], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Checkpoint:
    """One weights tag of an entry: the file(s) it reads and how they become the module's state dict.

    ``files`` maps a role to a source (``{"model": ...}`` for one file; FlexTok-style entries name a
    tokenizer file and a VAE). ``convert`` takes ``{role: raw state}`` and returns the module's state dict;
    without one, the file of role ``"model"`` is used as is and other roles are prefixed ``"<role>."``.
    ``published`` holds the figures the authors report for these weights, with their source.
    """

    files: dict[str, WeightSource]
    convert: Callable[[dict[str, dict]], dict[str, torch.Tensor]] | None = None
    license: str = ""
    published: dict = field(default_factory=dict)

    @property
    def source(self) -> WeightSource | None:
        """The single source of a one-file tag (markers included), else None."""
        return next(iter(self.files.values())) if len(self.files) == 1 else None

    def describe(self) -> str:
        return ", ".join(src.describe() for src in self.files.values())

    def state_dict(self, states: dict[str, dict]) -> dict[str, torch.Tensor]:
        if self.convert is not None:
            return self.convert(states)
        out = {}
        for role, state in states.items():
            out.update(state if role == "model" else {f"{role}.{k}": v for k, v in state.items()})
        return out


def single_file(convert: StateDictConverter) -> Callable[[dict[str, dict]], dict[str, torch.Tensor]]:
    """A one-file converter as a `Checkpoint.convert`."""
    return lambda states: convert(states["model"])


# --- locating files ---------------------------------------------------------------------------------
def _weights_dirs() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep) if p]


def _hub_candidates(src: HubFile) -> list[Path]:
    out = []
    for d in _weights_dirs():
        out += [d / src.repo_id / src.filename, d / src.filename]
    return out


def _hub_cache_path(src: HubFile) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(src.repo_id, src.filename, revision=src.revision)
    return Path(hit) if isinstance(hit, str) else None


def _hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return "huggingface_hub not installed"
    return str(constants.HF_HUB_CACHE)


def find_local(src: WeightSource) -> Path | None:
    """The file for ``src`` if it is already on this machine; never touches the network."""
    if isinstance(src, LocalFile):
        p = Path(src.path).expanduser()
        return p if p.is_file() else None
    if isinstance(src, PackageFile):
        p = PACKAGE_WEIGHTS / src.relpath
        return p if p.is_file() else None
    if isinstance(src, HubFile):
        for p in _hub_candidates(src):
            if p.is_file():
                return p
        return _hub_cache_path(src)
    if isinstance(src, ManualFile):
        return next((p for p in (d / src.filename for d in _weights_dirs()) if p.is_file()), None)
    return None


def available_offline(src: WeightSource) -> bool:
    """True when loading needs no network: a file on disk, or no weights at all (not random init)."""
    return src is NO_WEIGHTS or find_local(src) is not None


def _missing_message(src: WeightSource, why: str) -> str:
    if isinstance(src, HubFile):
        looked = [str(p) for p in _hub_candidates(src)] or [f"${WEIGHTS_DIR_ENV} (not set)"]
        looked.append(f"the huggingface_hub cache ({_hub_cache_dir()})")
        return (
            f"weights {src.describe()} are not available: {why}\n"
            f"  looked in: {', '.join(looked)}\n"
            f"  to fix: download '{src.filename}' from https://huggingface.co/{src.repo_id} on a machine "
            f"with network access and put it in a folder named by ${WEIGHTS_DIR_ENV} "
            f"(as <dir>/{src.repo_id}/{src.filename} or <dir>/{src.filename}), "
            f"or run once online so huggingface_hub caches it"
            + (f"; expected sha256 {src.sha256}" if src.sha256 else "")
        )
    if isinstance(src, ManualFile):
        looked = [str(d / src.filename) for d in _weights_dirs()] or [f"${WEIGHTS_DIR_ENV} (not set)"]
        return (
            f"weights {src.filename} are not available: {why}\n"
            f"  looked in: {', '.join(looked)}\n"
            f"  to fix: download '{src.filename}' by hand from {src.url} (the authors' release; vtbench does not "
            f"download it) and put it in a folder named by ${WEIGHTS_DIR_ENV}"
            + (f"; expected sha256 {src.sha256}" if src.sha256 else "")
        )
    return f"weights {src.describe()} are not available: {why}"


def resolve(src: WeightSource) -> tuple[Path, str]:
    """Path and sha256 of the verified weights file, downloading only when allowed and needed."""
    path = find_local(src)
    if path is None and isinstance(src, HubFile):
        path = _download(src)
    if path is None:
        raise WeightsUnavailable(_missing_message(src, "file not found"))
    expected = getattr(src, "sha256", None)
    actual = sha256_file(path)
    if expected and actual != expected:
        fix = ("the installed file is corrupt or was changed: reinstall vtbench (pip install --force-reinstall "
               "--no-deps vtbench, or `git checkout` it in a source checkout)" if isinstance(src, PackageFile)
               else "the file is corrupt or a different version")
        raise WeightsUnavailable(f"sha256 mismatch for {path} ({src.describe()}): expected {expected}, "
                                 f"got {actual}; {fix}")
    return path, actual


def _download(src: HubFile) -> Path:
    if env_flag("HF_HUB_OFFLINE"):
        raise WeightsUnavailable(_missing_message(src, "not on disk and HF_HUB_OFFLINE is set"))
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise WeightsUnavailable(
            _missing_message(src, "not on disk, and downloading needs huggingface_hub: pip install 'vtbench[bench]'")
        ) from None
    if not _hub_reachable():
        raise WeightsUnavailable(_missing_message(src, "not on disk, and the hub cannot be reached from here"))
    try:
        return Path(hf_hub_download(src.repo_id, src.filename, revision=src.revision, etag_timeout=5))
    except Exception as e:  # network errors come in many types; all mean the same thing to the user
        raise WeightsUnavailable(_missing_message(src, f"download failed ({type(e).__name__})")) from None


@functools.lru_cache(maxsize=1)
def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub endpoint, so an offline machine fails at once, not after retries."""
    url = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


# --- reading and strict loading ---------------------------------------------------------------------
#: classes of training records that released checkpoints pickle beside the weights (BSQ-ViT's: an OmegaConf
#: config with its typing and builtin metadata, a numpy FID scalar); they load as inert `_Opaque` stand-ins
OPAQUE_GLOBALS = (
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig", "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata", "omegaconf.nodes.AnyNode", "typing.Any", "builtins.dict", "builtins.list",
    "builtins.int", "collections.defaultdict", "numpy.dtype", "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
)


class _Opaque:
    """Stands in for an object of an `OPAQUE_GLOBALS` class: keeps what the pickle hands it, runs none of its code."""

    def __init__(self, *args):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or from a pickle loaded with ``weights_only=True`` (never code): the
    argparse namespace of a training run loads as itself, the `OPAQUE_GLOBALS` as `_Opaque`, and a global
    outside these and torch's own is refused."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with torch.serialization.safe_globals([argparse.Namespace, *((_Opaque, g) for g in OPAQUE_GLOBALS)]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors and pickle report a damaged file through many exception types
        refused = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line), None)
        if refused:  # torch's own advice (weights_only=False) would run the file's code
            raise WeightsUnavailable(f"cannot read weights {path}: it pickles an object vtbench does not load "
                                     f"({refused}); pickles are read with weights_only=True, never as code") from None
        raise WeightsUnavailable(f"cannot read weights {path}: {type(e).__name__}: {e}") from None


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors header (where some releases keep their model config)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # a damaged header surfaces as several exception types
        raise WeightsUnavailable(f"cannot read the header of {path}: {type(e).__name__}: {e}") from None


def load_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], origin: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists what did not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    )
    if missing or unexpected or shapes:
        def head(items):
            return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "")

        parts = [f"{name}: {head(items)}" for name, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if items]
        raise WeightsMismatch(f"weights from {origin} do not fit {type(model).__name__}:\n  " + "\n  ".join(parts))
    model.load_state_dict(state_dict, strict=True)

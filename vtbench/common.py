"""Small helpers every part of vtbench shares: atomic writes, sha256 hashing, environment flags."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

_TRUE = ("1", "true", "yes", "on")


def env_flag(name: str, default: bool = False) -> bool:
    """True when the environment variable ``name`` says 1/true/yes/on (any case)."""
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in _TRUE


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file_cached(path: Path) -> str:
    """`sha256_file`, computed once per process for each (path, size, mtime)."""
    st = Path(path).stat()
    return _hash_once(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _hash_once(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))

"""Exports of a `vtbench tokenize` folder in the formats AR trainers already read.

* ``llamagen``: LlamaGen's ``extract_codes_c2i.py`` output, read by its ``CustomDataset``
  (``dataset/imagenet.py``): ``<out>/<name><R>_codes/<i>.npy`` of shape ``(1, views, L)`` int64 and
  ``<out>/<name><R>_labels/<i>.npy`` of shape ``(1,)`` int64, ``i`` = 0, 1, ... in dataset order.
  ``CustomDataset`` draws a random view only when its folder path contains ``flip``, so several views
  need such a path.
* ``mar``: MAR's ``main_cache.py`` output, read by its ``CachedFolder`` (``util/loader.py``):
  ``<out>/<class>/<file name>.npz`` holding ``moments`` and ``moments_flip``, each the KL posterior's
  mean and log-variance stacked on the channel axis, ``(2C, h, w)`` float32, unscaled (MAR samples and
  multiplies by its scale itself). Needs a continuous tokenizer with a posterior, ``--augment flip`` and
  class folders.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .common import write_atomic
from .data import TokenDataError, TokenDataset
from .pretokenize import npy_bytes

FORMATS = ("llamagen", "mar")


def export(tokens_dir: str | Path, to: str, out: str | Path, name: str = "imagenet", progress: bool = True) -> int:
    """Write ``tokens_dir`` in format ``to`` under ``out``; returns the number of samples written."""
    if to == "llamagen":
        return _llamagen(TokenDataset(tokens_dir, output="ids", view="all"), Path(out), name, progress)
    if to == "mar":
        return _mar(TokenDataset(tokens_dir, view="all"), Path(out), progress)
    raise TokenDataError(f"export format is one of {', '.join(FORMATS)}, got {to!r}")


def _llamagen(ds: TokenDataset, out: Path, name: str, progress: bool) -> int:
    if ds.layout.multiscale or ds.layout.spatial_dims != 2:
        raise TokenDataError("LlamaGen's c2i trainer reads one 2D grid of ids per view; these tokens are "
                             + ("multi-scale" if ds.layout.multiscale else "a 1D sequence"))
    if ds.classes is None:
        raise TokenDataError("LlamaGen's c2i trainer needs class labels: tokenize a dataset whose images lie in "
                             "one folder per class")
    if ds.views > 1 and "flip" not in str(out):
        raise TokenDataError(f"LlamaGen's CustomDataset draws one of the {ds.views} views only when its folder path "
                             f"contains 'flip' (otherwise it returns all views stacked): use an --out path that "
                             "does, e.g. .../imagenet_code_flip")
    resolution = ds.meta["preprocessing"]["resolution"]
    codes, labels = out / f"{name}{resolution}_codes", out / f"{name}{resolution}_labels"
    for i in tqdm(range(len(ds)), desc="export llamagen", unit="img", disable=not progress):
        ids, label = ds[i]
        write_atomic(codes / f"{i}.npy", npy_bytes(ids.numpy().astype(np.int64)[None]))
        write_atomic(labels / f"{i}.npy", npy_bytes(np.array([label], dtype=np.int64)))
    return len(ds)


def _mar(ds: TokenDataset, out: Path, progress: bool) -> int:
    if not ds.meta["storage"].get("logvar"):
        raise TokenDataError("MAR caches a KL posterior (mean and log-variance): tokenize with a continuous "
                             "tokenizer that has one, such as mar-kl16")
    if ds.meta["views"] != ["image", "flip"]:
        raise TokenDataError(f"MAR caches each image and its mirror: tokenize with --augment flip "
                             f"(these tokens have views {ds.meta['views']})")
    if ds.classes is None:
        raise TokenDataError("MAR's CachedFolder reads one folder per class: tokenize a dataset whose images lie "
                             "in one folder per class")
    (h, w), = ds.layout.scale_shapes
    for i in tqdm(range(len(ds)), desc="export mar", unit="img", disable=not progress):
        moments = []
        for view in (0, 1):
            mean, logvar = ds.posterior(i, view)
            moments.append(np.concatenate([mean.T.reshape(-1, h, w), logvar.T.reshape(-1, h, w)]).astype(np.float32))
        path = out / f"{ds.sample_id(i)}.npz"
        write_atomic(path, _npz_bytes(moments=moments[0], moments_flip=moments[1]))
    return len(ds)


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()

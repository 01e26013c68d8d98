"""Users' image files as 8-bit RGB: one conversion rule per Pillow mode, EXIF orientation applied.

`to_rgb8` is the only place a decoded image becomes RGB:

* 16-bit and 32-bit integer grey (``I;16``, ``I;16B``, ``I;16L``, ``I``) is read on the 16-bit scale
  (0..65535, as PNG, TIFF and PGM store it) and scaled by 255/65535, rounded: 32768 is 128, not white.
  Values outside 0..65535 are refused (their scale is unknown).
* 32-bit float grey (``F``) is read on the 0..1 scale and scaled by 255, rounded; values outside [0, 1]
  (or NaN) are refused, since 0..1 and 0..255 floats cannot be told apart.
* Transparency (``RGBA``, ``LA``, ``PA``, ``RGBa``, a palette's or grey/RGB PNG's ``transparency``) is
  composited on white, rounded: a pixel (r, g, b, a) becomes c * a/255 + 255 * (1 - a/255) per channel.
  Transparent areas thus look as viewers show them on a page, and dark text on a transparent
  background stays readable.
* Every other mode (``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``) goes through
  Pillow's own conversion (CMYK: c' = (255 - c)(255 - k)/255; LAB: CIE L*a*b* D65 to sRGB).
  16-bit RGB(A) PNGs arrive from Pillow's decoder already as 8-bit RGB(A) (the high byte of each value).

Embedded ICC profiles are not applied: pixels are taken as sRGB.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import VtbenchError

#: what reading or decoding a damaged, truncated, oversized or unsupported file raises in Pillow
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)
EXIF_ORIENTATION = 0x0112
_DEEP_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa")


class UnreadableImage(VtbenchError):
    """A user's image cannot be read, decoded or converted; the message says why."""


def read_image(path: Path) -> tuple[Image.Image, bool]:
    """(8-bit RGB image, whether an EXIF orientation was applied) of an image file."""
    return decoded(lambda: Image.open(io.BytesIO(Path(path).read_bytes())))


def decoded(open_image: Callable[[], Image.Image]) -> tuple[Image.Image, bool]:
    """Open and decode an image, apply its EXIF orientation (a phone photo stored sideways is shown
    upright), then `to_rgb8`. Read and decode errors of the file become `UnreadableImage`."""
    try:
        im = open_image()
        im.load()
        transposed = im.getexif().get(EXIF_ORIENTATION, 1) in range(2, 9)
        if transposed:
            im = ImageOps.exif_transpose(im)
    except DECODE_ERRORS as e:
        raise UnreadableImage(f"{type(e).__name__}: {e}") from None
    return to_rgb8(im), transposed


def to_rgb8(im: Image.Image) -> Image.Image:
    """8-bit RGB of any Pillow mode by the rules in the module docstring; raises `UnreadableImage` for
    values whose scale is unknown and modes Pillow cannot convert."""
    if im.mode in _DEEP_GREY or im.mode == "F":
        return Image.fromarray(np.repeat(_grey8(im)[..., None], 3, axis=-1), "RGB")
    try:
        if im.mode in _ALPHA_MODES or "transparency" in im.info:
            return _on_white(np.asarray(im.convert("RGBA"), dtype=np.float64))
        return im.convert("RGB")
    except ValueError as e:
        raise UnreadableImage(f"mode {im.mode} cannot be converted to RGB: {e}") from None


def _grey8(im: Image.Image) -> np.ndarray:
    arr = np.asarray(im, dtype=np.float64)
    top, scale = (1.0, "0..1 (32-bit float)") if im.mode == "F" else (65535.0, "0..65535 (16-bit)")
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if not (0 <= lo and hi <= top):  # also refuses NaN
        raise UnreadableImage(f"mode {im.mode} image with values {lo:g}..{hi:g} outside {scale}: its scale is "
                              "unknown; save it as an 8- or 16-bit image")
    return np.round(arr * (255 / top)).astype(np.uint8)


def _on_white(rgba: np.ndarray) -> Image.Image:
    alpha = rgba[..., 3:] / 255
    rgb = rgba[..., :3] * alpha + 255 * (1 - alpha)
    return Image.fromarray(np.round(rgb).astype(np.uint8), "RGB")

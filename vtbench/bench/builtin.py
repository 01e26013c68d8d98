"""The builtin evaluation set: needs no network and is the same on every machine.

Four subsets, one per task:

* ``photos`` (reconstruction): scikit-image's bundled photographs (colour, and greyscale ones as RGB).
* ``detail`` (detail preservation): procedural images rendered at the evaluation resolution, so no
  resampling softens them (zone plate, gratings at 2-4 px periods, checkerboards, a Siemens star,
  seeded noise textures), plus scikit-image's texture photographs (brick, grass, gravel).
* ``text`` (text preservation): words rendered with Pillow's bundled font at several sizes and line
  counts, black on white and light on dark, with the exact string kept as ground truth.
* ``ladder`` (legibility): three strings of common English words at font sizes 8 to 96 px (DejaVu Sans,
  dark on light), with the words that fit kept as ground truth.

None of these images may be used for training: this set stays a clean evaluation set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .._extras import require

COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry")
GREY_PHOTOS = ("camera", "moon", "page", "text")
TEXTURE_PHOTOS = ("brick", "grass", "gravel")


def skimage_photo(name: str) -> Image.Image:
    data = require("skimage.data", "bench", "the builtin dataset's photographs")
    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return Image.fromarray(arr[..., :3])


# --- procedural detail images -----------------------------------------------------------------------
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    c = (n - 1) / 2
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return x - c, y - c


def _to_image(gray01: np.ndarray) -> Image.Image:
    arr = np.clip(np.round(gray01 * 255), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return Image.fromarray(arr)


def zone_plate(n: int) -> Image.Image:
    """Circular chirp whose local frequency grows linearly to Nyquist at the edge midpoints."""
    x, y = _grid(n)
    return _to_image(0.5 + 0.5 * np.cos(np.pi * (x ** 2 + y ** 2) / n))


def grating(n: int, period: float, angle_deg: float) -> Image.Image:
    """Sinusoidal grating; phase zero at pixel (0, 0) so a 2-pixel period alternates full black and white."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    t = np.deg2rad(angle_deg)
    return _to_image(0.5 + 0.5 * np.cos(2 * np.pi * (x * np.cos(t) + y * np.sin(t)) / period))


def checkerboard(n: int, square: int, colours=((0, 0, 0), (255, 255, 255))) -> Image.Image:
    i, j = np.mgrid[0:n, 0:n] // square
    mask = ((i + j) % 2).astype(bool)
    arr = np.where(mask[..., None], np.array(colours[1], np.uint8), np.array(colours[0], np.uint8))
    return Image.fromarray(arr.astype(np.uint8))


def siemens_star(n: int, spokes: int = 72) -> Image.Image:
    x, y = _grid(n)
    return _to_image((np.sin(spokes * np.arctan2(y, x)) > 0).astype(np.float64))


def noise_texture(n: int, seed: int, exponent: float) -> Image.Image:
    """Colour noise with a 1/f^exponent amplitude spectrum (exponent 0: white, 1: pink), contrast-stretched."""
    rng = np.random.default_rng(seed)
    f = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2)
    f[0, 0] = 1.0
    chans = []
    for _ in range(3):
        spectrum = np.fft.fft2(rng.standard_normal((n, n))) / f ** exponent
        img = np.real(np.fft.ifft2(spectrum))
        lo, hi = np.percentile(img, [1, 99])
        chans.append(np.clip((img - lo) / (hi - lo), 0, 1))
    return _to_image(np.stack(chans, axis=-1))


PROCEDURAL = {
    "zone_plate": zone_plate,
    "grating_p2_h": lambda n: grating(n, 2, 90),
    "grating_p3_v": lambda n: grating(n, 3, 0),
    "grating_p4_d": lambda n: grating(n, 4, 45),
    "grating_p6_d": lambda n: grating(n, 6, 135),
    "checker_1px": lambda n: checkerboard(n, 1),
    "checker_2px": lambda n: checkerboard(n, 2),
    "checker_4px_colour": lambda n: checkerboard(n, 4, ((200, 30, 40), (20, 60, 200))),
    "siemens_star": siemens_star,
    "noise_white": lambda n: noise_texture(n, 1, 0.0),
    "noise_pink": lambda n: noise_texture(n, 2, 1.0),
    "noise_fine": lambda n: noise_texture(n, 3, 0.5),
}


# --- rendered text --------------------------------------------------------------------------------
WORDS = (
    "the quick brown fox jumps over a lazy dog while seven wizards quietly box jam pack vex "
    "zebra hymn fjord glyph quartz sphinx vow black judge token image pixel model decode encode "
    "vector codebook autoregressive scale detail texture 2024 1999 42 3.14 $17 #8 A-Z 0-9 "
    "Paris Tokyo Lagos Lima Oslo Cairo Quebec Zurich Delhi Kyiv"
).split()

#: (font size in px at 256 px, number of lines, dark text on light background?)
TEXT_LAYOUTS = (
    (12, 1, True), (12, 4, True), (12, 8, False),
    (16, 1, True), (16, 3, False), (16, 6, True),
    (24, 1, True), (24, 2, False), (24, 4, True),
    (36, 1, True), (36, 2, True), (48, 1, False),
)


def _wrap(words: list[str], font, width: float, lines: int) -> list[str]:
    out, cur = [], ""
    for w in words:
        trial = f"{cur} {w}".strip()
        if font.getlength(trial) <= width or not cur:
            cur = trial
        else:
            out.append(cur)
            cur = w
            if len(out) == lines:
                break
    if len(out) < lines and cur:
        out.append(cur)
    return out[:lines]


def rendered_text(n: int, index: int) -> tuple[Image.Image, str]:
    """Text image ``index`` of `TEXT_LAYOUTS` at n x n pixels and its exact ground-truth string."""
    size_at_256, lines, dark_on_light = TEXT_LAYOUTS[index]
    size = max(8, round(size_at_256 * n / 256))
    font = ImageFont.load_default(size=size)
    rng = np.random.default_rng(1000 + index)
    words = [WORDS[i] for i in rng.permutation(len(WORDS))]
    margin = n // 16
    text_lines = _wrap(words * 3, font, n - 2 * margin, lines)
    bg, fg = ((250, 250, 245), (15, 15, 20)) if dark_on_light else ((30, 40, 70), (240, 230, 200))
    img = Image.new("RGB", (n, n), bg)
    draw = ImageDraw.Draw(img)
    line_h = size * 1.25
    top = (n - line_h * len(text_lines)) / 2
    for k, line in enumerate(text_lines):
        draw.text((margin, top + k * line_h), line, font=font, fill=fg)
    return img, "\n".join(text_lines)


# --- font-size ladder -----------------------------------------------------------------------------
#: font sizes in px (absolute: the same at every evaluation resolution)
LADDER_SIZES = (8, 12, 16, 24, 32, 48, 64, 96)
#: common English words, none of them in `WORDS` (the mini-zoo's training text); short words first so that
#: something of every string fits at 96 px in a 256 px image
LADDER_STRINGS = (
    "we sell fresh bread every morning",
    "it is cold and windy today",
    "my sister plays music at night",
)
#: DejaVu Sans, bundled with matplotlib: not the font of `TEXT_LAYOUTS` or of the training text (Pillow's)
LADDER_FONT = "DejaVuSans.ttf"


def ladder_font(size: int) -> ImageFont.FreeTypeFont:
    """The ladder's font (`LADDER_FONT`, from matplotlib's bundled fonts) at ``size`` px."""
    matplotlib = require("matplotlib", "bench", "the builtin font-size ladder's font")
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / LADDER_FONT), size)


def ladder_text(n: int, size: int, index: int) -> tuple[Image.Image, str]:
    """String ``index`` of `LADDER_STRINGS` at ``size`` px in an n x n image, dark on light, and its exact
    ground truth: the longest prefix of its words that fits inside a margin of n/16, wrapped onto as many
    lines as fit. When not even the first word fits (e.g. 48 px and up in a 64 px image) the image is left
    blank and the ground truth is empty: the size is not evaluated at that resolution."""
    font = ladder_font(size)
    margin = n // 16
    width = n - 2 * margin
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    max_lines = (n - 2 * margin) // line_h
    lines: list[str] = []
    for w in LADDER_STRINGS[index].split():
        if lines and font.getlength(f"{lines[-1]} {w}") <= width:
            lines[-1] = f"{lines[-1]} {w}"
        elif len(lines) < max_lines and font.getlength(w) <= width:
            lines.append(w)
        else:
            break
    img = Image.new("RGB", (n, n), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    top = (n - line_h * len(lines)) // 2
    for k, line in enumerate(lines):
        draw.text((margin, top + k * line_h), line, font=font, fill=(15, 15, 20))
    return img, "\n".join(lines)

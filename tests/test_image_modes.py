"""Every Pillow mode a user's file can arrive in becomes the right 8-bit RGB (vtbench.bench.image_files)."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vtbench.bench.datasets import FolderDataset, batches
from vtbench.bench.image_files import UnreadableImage, read_image, to_rgb8

GREY16 = [[0, 1000], [32768, 40000]]
GREY16_AS_8 = [[0, 4], [128, 156]]  # round(v * 255 / 65535): 3.89, 127.50, 155.64


def _png16(path, arr, colour_type):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB): colour type 0 grey, 2 RGB, 4 LA, 6 RGBA."""
    arr = np.asarray(arr, dtype=">u2")
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _palette(mode, size):
    im = Image.new(mode, size)
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    return im


def grey16_png(p):
    Image.fromarray(np.array(GREY16, np.uint16)).save(p / "a.png")
    return p / "a.png"


def grey16_flat_png(p):
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(p / "a.png")
    return p / "a.png"


def grey16b_tiff(p):
    Image.frombytes("I;16B", (2, 2), np.array(GREY16, ">u2").tobytes()).save(p / "a.tif")
    return p / "a.tif"


def grey32_tiff(p):
    Image.fromarray(np.array(GREY16, np.int32)).save(p / "a.tif")
    return p / "a.tif"


def grey16_pgm(p):
    (p / "a.pgm").write_bytes(b"P5 2 2 65535\n" + np.array(GREY16, ">u2").tobytes())
    return p / "a.pgm"


def float_tiff(p):
    Image.fromarray(np.array([[0.0, 0.2], [0.502, 1.0]], np.float32)).save(p / "a.tif")
    return p / "a.tif"


def rgb16_png(p):
    _png16(p / "a.png", [[[0x8000, 0x4000, 0xFFFF], [0x1234, 0, 0x0101]]], 2)
    return p / "a.png"


def rgba16_png(p):
    _png16(p / "a.png", [[[0x8000, 0x4000, 0xFFFF, 0xFFFF], [0, 0, 0, 0x8000]]], 6)
    return p / "a.png"


def la16_png(p):
    _png16(p / "a.png", [[[0x8000, 0xFFFF], [0, 0]]], 4)
    return p / "a.png"


def palette_png(p):
    im = _palette("P", (2, 1))
    im.putpixel((0, 0), 1)
    im.save(p / "a.png")
    return p / "a.png"


def palette_trns_png(p):
    im = _palette("P", (2, 1))
    im.putpixel((0, 0), 1)
    im.save(p / "a.png", transparency=bytes([255, 128]))  # index 0 opaque, index 1 half transparent
    return p / "a.png"


def palette_alpha_tiff(p):
    im = _palette("PA", (2, 1))
    im.putpixel((0, 0), (1, 128))
    im.putpixel((1, 0), (0, 255))
    im.save(p / "a.tif")
    return p / "a.tif"


def la_png(p):
    im = Image.new("LA", (2, 1))
    im.putpixel((0, 0), (100, 128))
    im.putpixel((1, 0), (100, 255))
    im.save(p / "a.png")
    return p / "a.png"


def rgba_png(p):
    Image.fromarray(np.array([[[200, 100, 0, 128], [10, 20, 30, 255]]], np.uint8), "RGBA").save(p / "a.png")
    return p / "a.png"


def rgb_colour_key_png(p):
    Image.fromarray(np.array([[[255, 0, 0], [10, 20, 30]]], np.uint8)).save(p / "a.png", transparency=(255, 0, 0))
    return p / "a.png"


def grey_png(p):
    Image.fromarray(np.array([[77, 200]], np.uint8)).save(p / "a.png")
    return p / "a.png"


def bilevel_png(p):
    Image.fromarray(np.array([[False, True]])).save(p / "a.png")
    return p / "a.png"


def cmyk_tiff(p):
    Image.new("CMYK", (2, 1), (0, 128, 255, 64)).save(p / "a.tif")
    return p / "a.tif"


def cmyk_jpeg(p):
    Image.new("CMYK", (8, 8), (0, 128, 255, 64)).save(p / "a.jpg", quality=100)
    return p / "a.jpg"


def ycbcr_tiff(p):
    Image.new("YCbCr", (2, 1), (100, 128, 128)).save(p / "a.tif")
    return p / "a.tif"


def lab_tiff(p):
    Image.new("LAB", (2, 1), (100, 128, 128)).save(p / "a.tif")
    return p / "a.tif"


def _grey(rows):
    return np.repeat(np.array(rows, np.uint8)[..., None], 3, axis=-1)


ON_WHITE_128 = 127  # 0 * 128/255 + 255 * 127/255
CASES = {
    # writer: (mode Pillow opens the file in, expected RGB, tolerance)
    grey16_png: ("I;16", _grey(GREY16_AS_8), 0),
    grey16_flat_png: ("I;16", _grey(np.full((4, 4), 128)), 0),  # the mid-grey, once read as white
    grey16b_tiff: ("I;16B", _grey(GREY16_AS_8), 0),
    grey32_tiff: ("I", _grey(GREY16_AS_8), 0),
    grey16_pgm: ("I", _grey(GREY16_AS_8), 0),
    float_tiff: ("F", _grey([[0, 51], [128, 255]]), 0),  # 0.2 * 255 = 51, 0.502 * 255 = 128.01
    rgb16_png: ("RGB", [[[128, 64, 255], [18, 0, 1]]], 0),  # 0x1234 * 255/65535 = 18.13, 0x0101 -> 1
    rgba16_png: ("RGBA", [[[128, 64, 255], [ON_WHITE_128] * 3]], 0),
    la16_png: ("RGBA", [[[128] * 3, [255] * 3]], 0),  # alpha 0: white
    palette_png: ("P", [[[200, 100, 50], [0, 0, 0]]], 0),
    # 200 * 128/255 + 127 = 227.39, 100 -> 177.20, 50 -> 152.10
    palette_trns_png: ("P", [[[227, 177, 152], [0, 0, 0]]], 0),
    palette_alpha_tiff: ("PA", [[[227, 177, 152], [0, 0, 0]]], 0),
    la_png: ("LA", [[[177] * 3, [100] * 3]], 0),  # 100 * 128/255 + 127 = 177.20
    rgba_png: ("RGBA", [[[227, 177, 127], [10, 20, 30]]], 0),
    rgb_colour_key_png: ("RGB", [[[255, 255, 255], [10, 20, 30]]], 0),  # the keyed colour is transparent
    grey_png: ("L", _grey([[77, 200]]), 0),
    bilevel_png: ("1", _grey([[0, 255]]), 0),
    # (255 - c)(255 - k)/255: 255 * 191/255 = 191, 127 * 191/255 = 95.13, 0
    cmyk_tiff: ("CMYK", [[[191, 95, 0]] * 2], 0),
    cmyk_jpeg: ("CMYK", [[[191, 95, 0]] * 8] * 8, 3),  # lossy
    ycbcr_tiff: ("YCbCr", _grey([[100, 100]]), 0),  # Cb = Cr = 128: no colour, R = G = B = Y
    # L* = 100 * 100/255 = 39.22, Y = ((L* + 16)/116)^3 = 0.1079, sRGB 1.055 Y^(1/2.4) - 0.055 = 0.3618 -> 92.3
    lab_tiff: ("LAB", _grey([[92, 92]]), 0),
}


@pytest.mark.parametrize("write", list(CASES), ids=lambda f: f.__name__)
def test_every_file_mode_becomes_the_right_8bit_rgb(tmp_path, write):
    mode, expected, tol = CASES[write]
    path = write(tmp_path)
    with Image.open(path) as im:
        assert im.mode == mode  # the case covers the mode it is named for
    img, transposed = read_image(path)
    assert img.mode == "RGB" and not transposed
    got = np.asarray(img).astype(int)
    assert got.shape == np.shape(expected)
    assert np.abs(got - np.asarray(expected)).max() <= tol, got.tolist()


@pytest.mark.parametrize("mode, value, expected", [
    ("I;16L", 32768, (128, 128, 128)),  # Pillow writes I;16L files as I;16, so it only exists in memory
    ("I;16N", 32768, (128, 128, 128)),
    # HSV (no file format stores it): h = 100/255 * 360 = 141.2 deg, s = 0.502, v = 128: chroma c = 64.25,
    # sector 2: (0, c, c * 0.353) + (v - c) = (63.75, 128, 86.4)
    ("HSV", (100, 128, 128), (64, 128, 86)),
    ("RGBa", (100, 50, 0, 128), (227, 177, 127)),  # premultiplied: c + 255 * (1 - a/255) = c + 127
])
def test_modes_no_file_format_yields_are_converted_too(mode, value, expected):
    assert to_rgb8(Image.new(mode, (1, 1), value)).getpixel((0, 0)) == expected


@pytest.mark.parametrize("mode, values, match", [
    ("I", [0, 70000], r"values 0\.\.70000 outside 0\.\.65535"),
    ("I", [-1, 5], r"values -1\.\.5 outside 0\.\.65535"),
    ("F", [0.0, 2.0], r"values 0\.\.2 outside 0\.\.1"),
    ("F", [0.0, float("nan")], r"outside 0\.\.1"),
])
def test_values_of_unknown_scale_are_refused_not_guessed(tmp_path, mode, values, match):
    Image.fromarray(np.array([values], np.int32 if mode == "I" else np.float32)).save(tmp_path / "a.tif")
    with pytest.raises(UnreadableImage, match=match):
        read_image(tmp_path / "a.tif")


def test_folder_evaluates_a_16bit_mid_grey_png_as_mid_grey(tmp_path):
    grey16_flat_png(tmp_path)
    batch = next(batches(FolderDataset(tmp_path).samples("photos"), 8, 4, []))
    assert batch.images.unique().tolist() == [128]


def test_exif_orientation_is_applied_and_recorded(tmp_path):
    stored = np.zeros((256, 512, 3), np.uint8)
    stored[:, :256] = (255, 0, 0)  # left half red, right half blue, as stored
    stored[:, 256:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the stored left half is on top
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    Image.fromarray(stored).save(tmp_path / "plain.jpg", quality=95)

    img, transposed = read_image(tmp_path / "phone.jpg")
    assert transposed and img.size == (256, 512)
    batch = next(batches(FolderDataset(tmp_path).samples("photos"), 64, 4, []))
    phone, plain = (batch.images[batch.ids.index(n)].permute(1, 2, 0).int() for n in ("phone.jpg", "plain.jpg"))
    assert batch.meta[batch.ids.index("phone.jpg")]["exif_transposed"] is True
    assert "exif_transposed" not in batch.meta[batch.ids.index("plain.jpg")]
    red, blue = np.array([255, 0, 0]), np.array([0, 0, 255])
    assert np.abs(phone[8, 10].numpy() - red).max() < 20 and np.abs(phone[56, 10].numpy() - blue).max() < 20
    assert np.abs(plain[8, 10].numpy() - red).max() < 20 and np.abs(plain[56, 10].numpy() - red).max() < 20

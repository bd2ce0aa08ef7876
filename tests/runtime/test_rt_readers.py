"""Scan reading: conversions to 8-bit RGB with notes, and one-line refusals of bad files."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from bonemarrow.runtime.io import readers
from bonemarrow.runtime.io.readers import ImageReadError, decode_rgb, read_header, read_rgb
from bonemarrow.runtime.io.labels import encode_label_png

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (23, 31, 3), dtype=np.uint8)


def encode(ext, array):
    ok, data = cv2.imencode(ext, array)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_8bit_rgb_round_trips_without_notes(ext):
    loaded = decode_rgb(encode(ext, RGB[..., ::-1].copy()))
    np.testing.assert_array_equal(loaded.rgb, RGB)
    assert loaded.notes == []


def test_jpeg_is_read_as_rgb():
    loaded = decode_rgb(encode(".jpg", np.full((16, 24, 3), (10, 20, 200), np.uint8)))  # BGR: red-ish in RGB
    assert loaded.rgb.shape == (16, 24, 3) and loaded.format == "jpeg"
    assert loaded.rgb[..., 0].mean() > 150 and loaded.rgb[..., 2].mean() < 60


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_is_scaled_to_8bit(ext):
    sixteen = RGB.astype(np.uint16) * 257  # exact: v * 257 / 257 = v
    loaded = decode_rgb(encode(ext, sixteen[..., ::-1].copy()))
    np.testing.assert_array_equal(loaded.rgb, RGB)
    assert "16-bit samples scaled to 8-bit" in loaded.notes


def test_greyscale_becomes_rgb():
    grey = RGB[..., 0].copy()
    loaded = decode_rgb(encode(".png", grey))
    np.testing.assert_array_equal(loaded.rgb, np.repeat(grey[..., None], 3, axis=2))
    assert "greyscale converted to RGB" in loaded.notes


def test_rgba_is_composited_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (0, 0, 200)  # BGR red
    rgba[:2, :, 3] = 255
    rgba[2:, :, 3] = 0
    loaded = decode_rgb(encode(".png", rgba))
    assert (loaded.rgb[:2] == (200, 0, 0)).all() and (loaded.rgb[2:] == 255).all()
    assert "alpha composited over white" in loaded.notes
    rgba[..., 3] = 255
    assert decode_rgb(encode(".png", rgba)).notes == ["opaque alpha channel dropped"]


def test_palette_png_is_expanded():
    labels = RNG.integers(0, 4, (9, 11), dtype=np.uint8)
    loaded = decode_rgb(encode_label_png(labels))
    colours = np.array([(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)
    np.testing.assert_array_equal(loaded.rgb, colours[labels])
    assert "palette image expanded to RGB" in loaded.notes


def huge_png_header(width, height):
    """A structurally valid PNG that *claims* width x height (its pixel data is tiny and wrong)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))


def test_pixel_limit_is_checked_before_decoding(monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded despite the limit")
    monkeypatch.setattr(readers.cv2, "imdecode", no_decoding)
    with pytest.raises(ImageReadError, match="exceeds the limit"):
        decode_rgb(huge_png_header(100_000, 100_000), "bomb.png", max_pixels=10**8)
    monkeypatch.setenv(readers.MAX_PIXELS_ENV, "100")
    with pytest.raises(ImageReadError, match="bomb.png: 23 x 31 .* exceeds the limit of 100"):
        decode_rgb(huge_png_header(23, 31), "bomb.png")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_headers_give_the_size(ext):
    header = read_header(encode(ext, RGB))
    assert (header.width, header.height) == (31, 23)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_files_are_refused_in_one_line(ext, keep, capfd):
    data = encode(ext, RNG.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    with pytest.raises(ImageReadError) as caught:
        decode_rgb(data[: int(len(data) * keep)], f"scan{ext}")
    assert str(caught.value).startswith(f"scan{ext}: ") and "\n" not in str(caught.value)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no libpng / libtiff chatter


def test_corrupt_png_data_is_refused():
    data = bytearray(encode(".png", RGB))
    data[60:70] = bytes(10)
    with pytest.raises(ImageReadError, match="CRC error"):
        decode_rgb(bytes(data), "x.png")


@pytest.mark.parametrize("data,match", [
    (b"", "empty file"),
    (b"GIF89a....", "not a PNG, JPEG or TIFF"),
    (b"\x89PNG\r\n\x1a\n", "truncated PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00\xff\xff\xff\x00", "truncated TIFF"),
])
def test_bad_bytes(data, match):
    with pytest.raises(ImageReadError, match=match):
        decode_rgb(data, "f")


def test_unreadable_path(tmp_path):
    with pytest.raises(ImageReadError, match="cannot read"):
        read_rgb(tmp_path / "absent.png")
    with pytest.raises(ImageReadError, match="cannot read"):
        read_rgb(tmp_path)


def test_find_images_names_and_collisions(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for rel in ["a/x.png", "a/sub/x.png", "a/notes.txt", "b.tif"]:
        (tmp_path / rel).write_bytes(b"")
    items, problems = readers.find_images([tmp_path / "a", tmp_path / "b.tif", tmp_path / "zzz"], recursive=True)
    assert [name for _, name in items] == ["sub__x", "x", "b"]
    assert problems == [(str(tmp_path / "zzz"), "no such file or folder")]
    items, _ = readers.find_images([tmp_path / "a"])
    assert [name for _, name in items] == ["x"]
    items, problems = readers.find_images([tmp_path / "a/x.png", tmp_path / "a/sub/x.png", tmp_path / "a/x.png"])
    assert len(items) == 1 and "already used" in problems[0][1]

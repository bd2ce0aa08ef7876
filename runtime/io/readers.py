"""Read scans (PNG, JPEG, TIFF) as 8-bit RGB, refusing bad files with one clear line.

A decoded scan is an ImageSource (LoadedImage.source) for the tiler; a new input
format is a new reader returning a source of its own.

The header is parsed BEFORE decoding, so a file claiming more pixels than the limit
is refused without allocating its pixels (a decompression bomb costs nothing),
and PNG/TIFF files are checked for truncation by walking their structure (chunk
lengths and CRCs; strip and tile extents). Decoding is OpenCV's. Everything that
is not 8-bit RGB is converted, with a note saying what was done:

* 16-bit samples -> 8-bit (rounded, v / 257);
* greyscale -> RGB; palette PNG -> RGB;
* alpha -> composited over white (glass is white, so transparent = background).
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.tiling.sources import ArraySource

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Default pixel limit: a seed-scale scan is ~12 MP; 250 MP of RGB is ~750 MB of RAM.
DEFAULT_MAX_PIXELS = 250_000_000
MAX_PIXELS_ENV = "BONEMARROW_MAX_PIXELS"

# OpenCV's own error logging (TIFF errors and the like) would add noise to our one line.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class ImageReadError(ValueError):
    """A file that cannot be used as a scan; the message is one line naming the file."""


@dataclass
class Header:
    format: str  # "png", "jpeg", "tiff"
    width: int
    height: int
    details: dict = field(default_factory=dict)


@dataclass
class LoadedImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    format: str
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def source(self) -> ArraySource:
        """The decoded pixels as the tiler's ImageSource (no copy)."""
        return ArraySource(self.rgb)


def max_pixels_default() -> int:
    value = os.environ.get(MAX_PIXELS_ENV)
    return int(value) if value else DEFAULT_MAX_PIXELS


# ------------------------------------------------------------------- headers
def _png_header(data: bytes) -> Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ValueError("truncated PNG (no image header)")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    # Walk the chunks: every length must fit, every CRC must match, IEND must come.
    offset = 8
    while True:
        if offset + 12 > len(data):
            raise ValueError("truncated PNG (file ends before the IEND chunk)")
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 12 + length
        if end > len(data):
            raise ValueError(f"truncated PNG (chunk {kind.decode('latin-1')!r} runs past the end of the file)")
        crc = struct.unpack(">I", data[end - 4:end])[0]
        if zlib.crc32(data[offset + 4:end - 4]) & 0xFFFFFFFF != crc:
            raise ValueError(f"corrupt PNG (CRC error in chunk {kind.decode('latin-1')!r})")
        if kind == b"IEND":
            break
        offset = end
    return Header("png", width, height, {"bit_depth": depth, "colour_type": colour})


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(data: bytes) -> Header:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise ValueError("corrupt JPEG (bad marker)")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            offset += 2
            continue
        if marker in (0xD9, 0xDA):
            break
        length = struct.unpack(">H", data[offset + 2:offset + 4])[0]
        if marker in _SOF:
            if offset + 9 > len(data):
                break
            depth, height, width = struct.unpack(">BHH", data[offset + 4:offset + 9])
            return Header("jpeg", width, height, {"bit_depth": depth})
        offset += 2 + length
    raise ValueError("truncated or corrupt JPEG (no frame header)")


_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}
_TIFF_INT = {1: "B", 3: "H", 4: "I", 16: "Q", 6: "b", 8: "h", 9: "i", 17: "q"}


def _tiff_header(data: bytes) -> Header:
    order = "<" if data[:2] == b"II" else ">"
    version = struct.unpack(order + "H", data[2:4])[0]
    big = version == 43
    if big:
        first, count_fmt, entry_size, inline = struct.unpack(order + "Q", data[8:16])[0], "Q", 20, 8
    else:
        first, count_fmt, entry_size, inline = struct.unpack(order + "I", data[4:8])[0], "H", 12, 4
    count_size = struct.calcsize(count_fmt)
    if first + count_size > len(data):
        raise ValueError("truncated TIFF (image directory past the end of the file)")
    entries = struct.unpack(order + count_fmt, data[first:first + count_size])[0]
    if first + count_size + entries * entry_size > len(data):
        raise ValueError("truncated TIFF (image directory cut short)")
    tags: dict[int, tuple[int, ...]] = {}
    for i in range(entries):
        at = first + count_size + i * entry_size
        if big:
            tag, kind, count = struct.unpack(order + "HHQ", data[at:at + 12])
            value_at = at + 12
        else:
            tag, kind, count = struct.unpack(order + "HHI", data[at:at + 8])
            value_at = at + 8
        if kind not in _TIFF_INT:
            continue
        size = _TIFF_SIZES[kind] * count
        if size > inline:
            value_at = struct.unpack(order + ("Q" if big else "I"), data[value_at:value_at + inline])[0]
        if value_at + size > len(data):
            raise ValueError("truncated TIFF (tag data past the end of the file)")
        tags[tag] = struct.unpack(f"{order}{count}{_TIFF_INT[kind]}", data[value_at:value_at + size])
    if 256 not in tags or 257 not in tags:
        raise ValueError("corrupt TIFF (no image size)")
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):  # strips, tiles
        if offsets_tag in tags and counts_tag in tags:
            end = max((o + c for o, c in zip(tags[offsets_tag], tags[counts_tag])), default=0)
            if end > len(data):
                raise ValueError("truncated TIFF (image data past the end of the file)")
    details = {"bit_depth": max(tags.get(258, (1,))), "sample_format": tags.get(339, (1,))[0]}
    return Header("tiff", tags[256][0], tags[257][0], details)


def read_header(data: bytes) -> Header:
    """Format and size from the first bytes (and structure checks); ValueError if not a scan."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png_header(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_header(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_header(data)
    except struct.error:
        raise ValueError("truncated or corrupt image header") from None
    raise ValueError("not a PNG, JPEG or TIFF image")


# ------------------------------------------------------------------ decoding
def to_rgb8(image: np.ndarray, header: Header | None = None) -> tuple[np.ndarray, list[str]]:
    """OpenCV's decoded array (BGR[A] or grey, 8/16-bit) -> (H, W, 3) uint8 RGB and notes."""
    notes: list[str] = []
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
        notes.append("16-bit samples scaled to 8-bit")
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported sample type {image.dtype} (need 8- or 16-bit integers)")
    if header is not None and header.format == "png" and header.details.get("colour_type") == 3:
        notes.append("palette image expanded to RGB")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        notes.append("greyscale converted to RGB")
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB), notes
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"unsupported channel layout {image.shape}")
    if image.shape[2] == 4:
        alpha = image[..., 3:4]
        if (alpha == 255).all():
            notes.append("opaque alpha channel dropped")
        else:
            notes.append("alpha composited over white")
            alpha32 = alpha.astype(np.uint32)
            blended = image[..., :3].astype(np.uint32) * alpha32 + 255 * (255 - alpha32)
            image = np.concatenate([((blended + 127) // 255).astype(np.uint8), alpha], axis=2)
        return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB), notes
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), notes


def decode_rgb(data: bytes, name: str = "image", max_pixels: int | None = None) -> LoadedImage:
    """Bytes of a PNG/JPEG/TIFF -> LoadedImage; ImageReadError with one line otherwise."""
    limit = max_pixels_default() if max_pixels is None else max_pixels
    try:
        header = read_header(data)
        if header.width <= 0 or header.height <= 0:
            raise ValueError(f"image has no pixels ({header.width} x {header.height})")
        pixels = header.width * header.height
        if pixels > limit:
            raise ValueError(f"{header.width} x {header.height} = {pixels:,} pixels exceeds the limit of "
                             f"{limit:,} (set ${MAX_PIXELS_ENV} to raise it)")
        if header.format == "tiff" and header.details.get("sample_format") == 3:
            raise ValueError("floating-point TIFF is not supported (need 8- or 16-bit integers)")
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"cannot decode the {header.format.upper()} data (corrupt or truncated)")
        if image.shape[:2] != (header.height, header.width):
            raise ValueError(f"decoded size {image.shape[1]} x {image.shape[0]} differs from the header's "
                             f"{header.width} x {header.height}")
        rgb, notes = to_rgb8(image, header)
    except (ValueError, cv2.error, MemoryError) as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ImageReadError(f"{name}: {text}") from None
    return LoadedImage(np.ascontiguousarray(rgb), header.format, notes)


def read_rgb(path: str | os.PathLike, max_pixels: int | None = None) -> LoadedImage:
    """Read a scan from disk as 8-bit RGB (see module docstring)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read ({error.strerror or error})") from None
    return decode_rgb(data, str(path), max_pixels)


def find_images(inputs: list[str | os.PathLike], recursive: bool = False
                ) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Expand files and folders into (path, NAME) pairs, and (input, error) for inputs that don't exist.

    NAME is the file's stem; for files found inside a folder with --recursive it is the
    path below that folder with '/' turned into '__', so equal stems in subfolders
    don't overwrite each other's outputs.
    """
    found: list[tuple[Path, str]] = []
    problems: list[tuple[str, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            candidates = path.rglob("*") if recursive else path.iterdir()
            for file in sorted(p for p in candidates if p.is_file() and p.suffix.lower() in SUFFIXES
                               and not p.name.startswith(".")):
                found.append((file, "__".join(file.relative_to(path).with_suffix("").parts)))
        elif path.is_file():
            found.append((path, path.stem))
        else:
            problems.append((str(path), "no such file or folder"))
    pairs: list[tuple[Path, str]] = []
    done: set[Path] = set()
    names: dict[str, Path] = {}
    for file, name in found:
        key = file.resolve()
        if key in done:  # the same file given twice
            continue
        done.add(key)
        if name in names:
            problems.append((str(file), f"output name {name!r} is already used by {names[name]}"))
            continue
        names[name] = file
        pairs.append((file, name))
    return pairs, problems

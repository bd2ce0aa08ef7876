"""Label maps on disk: one 8-bit channel of class indices, stored as a palette PNG.

The pixel values are the class indices (0..3), and the PNG's palette holds the
class colours, so the same file is exact for programs and readable by eye in any
image viewer. OpenCV cannot write palette PNGs, so the few chunks are written
here with zlib; reading accepts palette PNGs, plain greyscale index images, and
colour images painted in the exact class colours.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.atomic import write_bytes_atomic
from bonemarrow.runtime.labels import COLORS, NUM_CLASSES, decolorize

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_label_png(labels: np.ndarray, compression: int = 6) -> bytes:
    """Encode an (H, W) array of class indices as an 8-bit palette PNG."""
    labels = np.ascontiguousarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label map must be 2-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"label values must lie in 0..{NUM_CLASSES - 1}")
    labels = labels.astype(np.uint8, copy=False)
    height, width = labels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8-bit, colour type 3 (palette)
    palette = b"".join(bytes(c) for c in COLORS)
    # Each scanline is prefixed by filter type 0 (none).
    raw = np.empty((height, width + 1), dtype=np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = labels
    return b"".join([
        _PNG_SIGNATURE,
        _chunk(b"IHDR", header),
        _chunk(b"PLTE", palette),
        _chunk(b"IDAT", zlib.compress(raw.tobytes(), compression)),
        _chunk(b"IEND", b""),
    ])


def write_label_png(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write a label map atomically (see module docstring for the format)."""
    write_bytes_atomic(path, encode_label_png(labels))


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label map written by this project, a greyscale index PNG, or a class-colour image."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.ndim == 2:
        labels = image
    else:
        # Palette PNGs are expanded to colour by OpenCV: map the colours back.
        rgb = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
        try:
            labels = decolorize(rgb)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    if labels.dtype != np.uint8 or (labels.size and labels.max() >= NUM_CLASSES):
        raise ValueError(f"{path}: label values must be 8-bit class indices 0..{NUM_CLASSES - 1}")
    return labels

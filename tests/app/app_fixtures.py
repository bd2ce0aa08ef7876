"""Helpers for the app tests: a tiny contract-honouring ONNX model and scans with known answers.

The model is the runtime tests' `pixelwise` model (tests/runtime/rt_models.py):
white is background, red bone, green fat, blue other tissue, so an image
painted with those colours has an exactly known segmentation.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import rt_models  # noqa: E402  (shared with the runtime tests, not copied)

WHITE = (245, 245, 245)
PAINT = {1: (200, 40, 40), 2: (40, 200, 40), 3: (40, 40, 200)}  # class -> RGB the pixelwise model maps to it


def paint_blocks(height: int, width: int, blocks: list[tuple[int, int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """White glass with (class, y0, y1, x0, x1) rectangles painted in order; returns (rgb, true labels)."""
    rgb = np.full((height, width, 3), WHITE, dtype=np.uint8)
    labels = np.zeros((height, width), dtype=np.uint8)
    for cls, y0, y1, x0, x1 in blocks:
        rgb[y0:y1, x0:x1] = PAINT[cls]
        labels[y0:y1, x0:x1] = cls
    return rgb, labels


def encode(rgb: np.ndarray, suffix: str = ".png") -> bytes:
    ok, data = cv2.imencode(suffix, np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return data.tobytes()


BLOCKS = [(1, 10, 40, 10, 50), (2, 50, 90, 10, 60), (3, 20, 80, 70, 120)]

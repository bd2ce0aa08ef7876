"""Class indices, names and display colours: the one place that defines them.

Every other part of the project (training, export, the runtime, charts) imports
these, so a label map written by any tool means the same thing everywhere.
"""
from __future__ import annotations

import numpy as np

BACKGROUND, BONE, FAT, OTHER = 0, 1, 2, 3
CLASSES: tuple[str, ...] = ("background", "bone", "fat", "other")
NUM_CLASSES = len(CLASSES)
TISSUE_CLASSES: tuple[int, ...] = (BONE, FAT, OTHER)
# As the original project showed them: black, red, green, blue.
COLORS: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255))

_LUT = np.array(COLORS, dtype=np.uint8)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Map an (H, W) array of class indices to an (H, W, 3) uint8 RGB image."""
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise ValueError(f"label value {int(labels.max())} is not a class index (0..{NUM_CLASSES - 1})")
    return _LUT[labels]


def decolorize(rgb: np.ndarray) -> np.ndarray:
    """Inverse of colorize for exact class colours; any other colour is an error."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.full(key.shape, 255, dtype=np.uint8)
    for index, (r, g, b) in enumerate(COLORS):
        out[key == ((r << 16) | (g << 8) | b)] = index
    if (out == 255).any():
        raise ValueError("image holds colours that are not class colours")
    return out

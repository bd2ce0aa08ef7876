"""Smooth random fields, the raw material of every shape and texture.

A coarse grid of Gaussian values blown up with bicubic interpolation gives a
smooth field whose feature size is the grid spacing. OpenCV's resize does this
in C, so even a 6000 x 2000 field costs a few tens of milliseconds.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


# Bicubic interpolation of unit Gaussian nodes has a standard deviation of 0.859
# at any upsampling factor >= 1.5 (measured), so fields are standardised by
# scaling the coarse grid instead of the large output.
_CUBIC_STD = 0.8586


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A float32 field of `shape` with unit standard deviation and features about `scale` pixels wide.

    Broad fields (scale >= 48) are made at an eighth of the size and enlarged
    bilinearly, which looks the same and costs a fraction.
    """
    height, width = shape
    scale = max(float(scale), 1.5)
    if scale >= 48 and min(height, width) >= 64:
        small = smooth_noise(rng, (-(-height // 8), -(-width // 8)), scale / 8)
        return upsample(small, shape)
    grid_h = int(math.ceil(height / scale)) + 3
    grid_w = int(math.ceil(width / scale)) + 3
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32) * np.float32(1 / _CUBIC_STD)
    # A random sub-node offset so that the nodes of different fields do not line up.
    oy = rng.uniform(0, scale)
    ox = rng.uniform(0, scale)
    transform = np.array([[1 / scale, 0, ox / scale], [0, 1 / scale, oy / scale]], np.float32)
    return cv2.warpAffine(grid, transform, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float, octaves: int = 3,
                  persistence: float = 0.5) -> np.ndarray:
    """Sum of smooth fields at halving scales: ragged edges need detail at several sizes."""
    total = np.zeros(shape, np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * smooth_noise(rng, shape, max(scale / 2**octave, 1.5))
        norm += amplitude**2
        amplitude *= persistence
    return total / np.float32(math.sqrt(norm))


def noise_1d(rng: np.random.Generator, length: int, scale: float) -> np.ndarray:
    """A smooth 1-D profile (unit standard deviation), e.g. a core's centre line or thickness."""
    return smooth_noise(rng, (1, length), scale)[0] if length > 0 else np.zeros(0, np.float32)


def upsample(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a low-resolution field to `shape` (height, width)."""
    return cv2.resize(field, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)

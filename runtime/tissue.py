"""A cheap, conservative tissue detector used to skip empty tiles.

About half of a biopsy scan is bare glass, which scans as near-white. Running the
network there is wasted time, so the tiler skips a tile when this detector finds
no tissue anywhere in the tile's footprint. The detector errs towards "tissue":

* it works on blocks of `factor` x `factor` pixels and marks a block as tissue if
  ANY pixel in it is not near-white or is coloured (a min/max pool, not an average,
  so a one-pixel strand of tissue still counts);
* the mask is dilated by a safety margin.

A skipped tile contributes nothing to the blend, and every tile that contains a
detected tissue pixel is computed, so labels inside the mask are exactly what a
run without skipping gives.

The detector reads the source's low-resolution view (ImageSource.low_res_view),
never full-resolution pixels the source does not already hold: a whole-slide
source answers with a pyramid level, and only the rest of the downscaling is
pooled here.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from bonemarrow.runtime.tiling.sources import ImageSource

#: A pixel is glass when every channel is at least this bright ...
WHITE_LEVEL = 215
#: ... and its channels differ by less than this (eosin pink is bright but coloured).
SATURATION_LEVEL = 25
DEFAULT_FACTOR = 8
#: Safety margin around detected tissue, in full-resolution pixels.
DEFAULT_MARGIN = 32


def tissue_pixels(rgb: np.ndarray, white_level: int = WHITE_LEVEL, saturation_level: int = SATURATION_LEVEL) -> np.ndarray:
    """Per-pixel boolean: True where the pixel is not near-white glass."""
    rgb = np.asarray(rgb)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    low = np.minimum(np.minimum(r, g), b)
    high = np.maximum(np.maximum(r, g), b)
    return (low < white_level) | ((high.astype(np.int16) - low) >= saturation_level)


def tissue_mask(
    rgb: np.ndarray,
    factor: int = DEFAULT_FACTOR,
    margin: int = DEFAULT_MARGIN,
    white_level: int = WHITE_LEVEL,
    saturation_level: int = SATURATION_LEVEL,
) -> tuple[np.ndarray, int]:
    """Boolean tissue mask of `rgb` downscaled by `factor` (ceil), and the factor.

    Block (i, j) covers pixels [i*factor, (i+1)*factor) x [j*factor, (j+1)*factor).
    The image is processed in strips so no full-size temporary is created.
    """
    rgb = np.asarray(rgb)
    height, width = rgb.shape[:2]
    factor = max(1, int(factor))
    rows, cols = math.ceil(height / factor), math.ceil(width / factor)
    mask = np.zeros((rows, cols), dtype=bool)
    strip = factor * max(1, 1024 // factor)
    for y in range(0, height, strip):
        block = tissue_pixels(rgb[y:y + strip], white_level, saturation_level)
        mask[y // factor: y // factor + math.ceil(block.shape[0] / factor)] = _any_pool(block, factor)
    radius = math.ceil(margin / factor)
    if radius > 0 and mask.any():
        kernel = np.ones((2 * radius + 1, 2 * radius + 1), dtype=np.uint8)
        mask = cv2.dilate(mask.view(np.uint8), kernel).astype(bool)
    return mask, factor


def detect_tissue(source: ImageSource, factor: int = DEFAULT_FACTOR,
                  margin: int = DEFAULT_MARGIN) -> tuple[np.ndarray, int]:
    """Tissue mask of a source from its low-resolution view: (mask, its downscale factor).

    The view may be finer than `factor` (an in-memory image is its own view; a slide
    gives the pyramid level at or below it); the rest is pooled here, so the mask's
    factor is the view's factor times the pooling, and the margin stays in
    full-resolution pixels.
    """
    view = source.low_res_view(factor)
    pool = max(1, factor // view.factor)
    mask, pool = tissue_mask(view.rgb, factor=pool, margin=math.ceil(margin / view.factor))
    return mask, view.factor * pool


def _any_pool(block: np.ndarray, factor: int) -> np.ndarray:
    """Logical OR over factor x factor blocks (edge blocks may be partial)."""
    h, w = block.shape
    ph, pw = math.ceil(h / factor) * factor, math.ceil(w / factor) * factor
    if (ph, pw) != (h, w):
        block = np.pad(block, ((0, ph - h), (0, pw - w)), constant_values=False)
    return block.reshape(ph // factor, factor, pw // factor, factor).any(axis=(1, 3))


def upsample_mask(mask: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """The downscaled mask at full resolution (for tests and pictures)."""
    full = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
    return full[: shape[0], : shape[1]]

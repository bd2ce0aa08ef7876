"""Where pixels come from: an ImageSource hands out rectangles and a low-resolution view.

The tiler never needs a whole image in memory: it reads one tile's rectangle at a
time, and the tissue detector reads the source's low-resolution view (a pyramid
level for a whole-slide image). A new input format is a new ImageSource.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class LowResView:
    """The whole image at 1/factor of its size.

    rgb: (ceil(H / factor), ceil(W / factor), 3) uint8 RGB; pixel (i, j) stands for the
    block of full-resolution pixels [i*factor, (i+1)*factor) x [j*factor, (j+1)*factor).
    """

    rgb: np.ndarray
    factor: int


@runtime_checkable
class ImageSource(Protocol):
    """Anything that can hand out rectangles of an RGB uint8 image."""

    height: int
    width: int

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Return image[y0:y1, x0:x1] as (y1 - y0, x1 - x0, 3) uint8 RGB."""
        ...

    def low_res_view(self, factor: int) -> LowResView:
        """The whole image downscaled by at most `factor`, as cheaply as the source can give it.

        A whole-slide source returns its pyramid level closest to `factor` without
        going over it; the tissue detector pools the rest. Never the full image of a
        source that does not already hold it in memory.
        """
        ...


class ArraySource:
    """An in-memory (H, W, 3) uint8 image as an ImageSource."""

    def __init__(self, image: np.ndarray):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image is empty: {image.shape}")
        self.image = image
        self.height, self.width = image.shape[:2]

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.image[y0:y1, x0:x1]

    def low_res_view(self, factor: int) -> LowResView:
        """The array itself, at factor 1.

        The pixels are already in memory, so this view costs nothing, and the tissue
        detector's block pooling of it keeps a one-pixel strand of tissue that an
        averaged downscaled copy would wash out (so the same tiles are skipped as
        always). Sources that hold no full-resolution image return a real downscale.
        """
        return LowResView(self.image, 1)

"""Where tiles go: the grid over an image, and how much each tile's pixels are trusted.

The image is covered by overlapping tiles; the last tile of each row and column is
shifted inward so no tile hangs over the edge, and an image shorter than a tile
gets one tile of its length rounded up to the model's divisor (the rest is padding).
The importance map trusts a tile's centre more than its border (less context there).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from bonemarrow.runtime.tiling.config import BLEND_MODES

#: Lowest importance relative to the tile centre: keeps tile corners (where only
#: one tile may reach, at image corners) from dividing by ~0.
IMPORTANCE_FLOOR = 1e-3
#: Gaussian sigma as a fraction of the tile side (as MONAI and nnU-Net use).
SIGMA_SCALE = 0.125


def effective_tile(length: int, tile: int, divisor: int) -> int:
    """Tile side along one axis: `tile` rounded up to the divisor, shrunk for short images.

    An image shorter than a tile gets one tile of its length rounded up to the
    divisor (the rest is padding), not a full tile of mostly padding.
    """
    if tile < 1 or divisor < 1:
        raise ValueError(f"tile ({tile}) and divisor ({divisor}) must be positive")
    side = math.ceil(tile / divisor) * divisor
    return min(side, math.ceil(length / divisor) * divisor)


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering [0, length); the last tile is shifted inward to end at `length`.

    When length < tile there is one tile at 0 (the image is padded to the tile).
    """
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def stride_for(tile: int, overlap: float) -> int:
    """Step between tile starts for a tile side and an overlap fraction in [0, 1)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return max(1, int(round(tile * (1.0 - overlap))))


def importance_map(shape: tuple[int, int], mode: str = "gaussian") -> np.ndarray:
    """(h, w) float32 blending weights: a Gaussian peaked at the centre with a floor > 0, or ones."""
    if mode == "constant":
        return np.ones(shape, dtype=np.float32)
    if mode != "gaussian":
        raise ValueError(f"blend must be one of {BLEND_MODES}, got {mode!r}")
    axes = []
    for side in shape:
        centre = (side - 1) / 2.0
        sigma = max(side * SIGMA_SCALE, 1e-6)
        coords = np.arange(side, dtype=np.float64)
        axes.append(np.exp(-0.5 * ((coords - centre) / sigma) ** 2))
    weights = np.outer(axes[0], axes[1])
    weights /= weights.max()
    return np.maximum(weights, IMPORTANCE_FLOOR).astype(np.float32)


@dataclass(frozen=True)
class Tile:
    y: int
    x: int


@dataclass
class TileGrid:
    """Where tiles go on the (possibly padded) image."""

    height: int  # image size
    width: int
    tile_h: int
    tile_w: int
    ys: list[int]
    xs: list[int]
    padded_h: int = field(init=False)
    padded_w: int = field(init=False)

    def __post_init__(self) -> None:
        self.padded_h = max(self.height, self.tile_h)
        self.padded_w = max(self.width, self.tile_w)

    @property
    def total(self) -> int:
        return len(self.ys) * len(self.xs)

    def tiles(self) -> Iterator[Tile]:
        """Row by row, top to bottom: the order the tiler relies on to finish rows early."""
        for y in self.ys:
            for x in self.xs:
                yield Tile(y, x)


def plan_grid(height: int, width: int, *, tile: int, overlap: float = 0.25, divisor: int = 32) -> TileGrid:
    """The tile layout the tiler uses (handy for sizing a progress bar)."""
    tile_h = effective_tile(height, tile, divisor)
    tile_w = effective_tile(width, tile, divisor)
    ys = tile_starts(max(height, tile_h), tile_h, stride_for(tile_h, overlap))
    xs = tile_starts(max(width, tile_w), tile_w, stride_for(tile_w, overlap))
    return TileGrid(height, width, tile_h, tile_w, ys, xs)

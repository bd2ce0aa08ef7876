"""Sliding-window inference with Gaussian blending and bounded memory.

A scan is far larger than what a segmentation network sees at once, so the image
is covered by overlapping tiles (the last tile of each row and column is shifted
inward so no tile hangs over the edge), the model runs on batches of tiles, and
the overlapping probabilities are blended with an importance map that trusts the
tile centre more than its border (the border has less context).

Memory stays bounded: tile rows are processed top to bottom and the probability
accumulator only holds the rows that a later tile can still touch. As soon as no
pending tile reaches a row, that row is normalised, turned into labels and handed
to a `BandSink`; peak memory is O(width x (tile + stride) x classes), not
O(width x height x classes). Images come from an `ImageSource` that reads one
rectangle at a time, so a reader and writer for images larger than RAM plug in.

The tiler knows nothing about onnxruntime or torch: it calls `predict(batch)`
with uint8 [B, 3, h, w] and expects float32 probabilities [B, C, h, w].
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]

PAD_MODES = ("constant", "reflect")
BLEND_MODES = ("gaussian", "constant")
#: Slides are white where there is no tissue, so white is the neutral padding.
DEFAULT_PAD_VALUE = 255
#: Lowest importance relative to the tile centre: keeps tile corners (where only
#: one tile may reach, at image corners) from dividing by ~0.
IMPORTANCE_FLOOR = 1e-3
#: Gaussian sigma as a fraction of the tile side (as MONAI and nnU-Net use).
SIGMA_SCALE = 0.125


# ----------------------------------------------------------------- interfaces
class ImageSource(Protocol):
    """Anything that can hand out rectangles of an RGB uint8 image."""

    height: int
    width: int

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Return image[y0:y1, x0:x1] as (y1 - y0, x1 - x0, 3) uint8 RGB."""
        ...


class BandSink(Protocol):
    """Receives finished rows top to bottom; each row is written exactly once."""

    def write(self, y0: int, labels: np.ndarray, probs: np.ndarray | None) -> None:
        """labels: (rows, W) uint8; probs: (C, rows, W) float32 or None."""
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


class ArraySink:
    """Collects bands into full-size arrays (labels always, probabilities on request)."""

    def __init__(self, height: int, width: int, num_classes: int, keep_probs: bool):
        self.labels = np.zeros((height, width), dtype=np.uint8)
        self.probs = np.zeros((num_classes, height, width), dtype=np.float32) if keep_probs else None
        self.rows_written = 0

    def write(self, y0: int, labels: np.ndarray, probs: np.ndarray | None) -> None:
        if y0 != self.rows_written:
            raise RuntimeError(f"band starts at row {y0}, expected {self.rows_written}")
        rows = labels.shape[0]
        self.labels[y0:y0 + rows] = labels
        if self.probs is not None and probs is not None:
            self.probs[:, y0:y0 + rows] = probs
        self.rows_written += rows


@dataclass
class TilingResult:
    labels: np.ndarray | None  # (H, W) uint8, None when a custom sink received the rows
    probs: np.ndarray | None  # (C, H, W) float32 when return_probs
    tiles_total: int
    tiles_skipped: int
    peak_band_rows: int = 0  # largest number of rows the accumulator held at once
    tile_shape: tuple[int, int] = (0, 0)
    grid: tuple[int, int] = (0, 0)  # tile rows, tile columns


# ---------------------------------------------------------------- geometry
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
        for y in self.ys:
            for x in self.xs:
                yield Tile(y, x)


def plan_grid(height: int, width: int, *, tile: int, overlap: float = 0.25, divisor: int = 32) -> TileGrid:
    """The tile layout sliding_window_inference uses (handy for sizing a progress bar)."""
    tile_h = effective_tile(height, tile, divisor)
    tile_w = effective_tile(width, tile, divisor)
    ys = tile_starts(max(height, tile_h), tile_h, stride_for(tile_h, overlap))
    xs = tile_starts(max(width, tile_w), tile_w, stride_for(tile_w, overlap))
    return TileGrid(height, width, tile_h, tile_w, ys, xs)


def read_padded(source: ImageSource, grid: TileGrid, tile: Tile, pad_mode: str, pad_value: int) -> np.ndarray:
    """One tile's pixels, padded where the tile reaches past a short image's edge.

    Padding only happens along an axis the image is shorter than a tile, where the
    tile spans the whole axis, so padding the tile equals padding the whole image.
    """
    y1 = min(tile.y + grid.tile_h, grid.height)
    x1 = min(tile.x + grid.tile_w, grid.width)
    pixels = source.read(tile.y, y1, tile.x, x1)
    pad_y = grid.tile_h - (y1 - tile.y)
    pad_x = grid.tile_w - (x1 - tile.x)
    if pad_y or pad_x:
        widths = ((0, pad_y), (0, pad_x), (0, 0))
        if pad_mode == "constant":
            pixels = np.pad(pixels, widths, mode="constant", constant_values=pad_value)
        else:
            # Reflection needs length > pad; repeat it for images much smaller than a tile.
            while pixels.shape[0] < grid.tile_h or pixels.shape[1] < grid.tile_w:
                step = ((0, min(grid.tile_h - pixels.shape[0], pixels.shape[0] - 1)),
                        (0, min(grid.tile_w - pixels.shape[1], pixels.shape[1] - 1)), (0, 0))
                if step[0][1] <= 0 and step[1][1] <= 0:  # a 1-pixel axis: repeat it
                    step = ((0, grid.tile_h - pixels.shape[0]), (0, grid.tile_w - pixels.shape[1]), (0, 0))
                    pixels = np.pad(pixels, step, mode="edge")
                    break
                pixels = np.pad(pixels, step, mode="reflect")
    return np.ascontiguousarray(pixels)


# ------------------------------------------------------------- accumulation
class _BandAccumulator:
    """Weighted probability sums for rows [lo, lo + rows) of the padded image.

    Buffers keep spare capacity and finished rows are shifted out in place, so a
    long image costs no repeated allocation.
    """

    def __init__(self, width: int):
        self.width = width
        self.lo = 0
        self.rows = 0
        self.acc: np.ndarray | None = None  # (C, capacity, W)
        self.weight = np.zeros((0, width), dtype=np.float32)
        self.peak_rows = 0

    def _grow(self, hi: int, classes: int) -> None:
        needed = hi - self.lo
        if self.acc is None:
            self.acc = np.zeros((classes, self.weight.shape[0], self.width), dtype=np.float32)
        if needed > self.weight.shape[0]:
            capacity = max(needed, self.weight.shape[0] * 3 // 2)
            acc = np.zeros((classes, capacity, self.width), np.float32)
            weight = np.zeros((capacity, self.width), np.float32)
            acc[:, :self.rows] = self.acc[:, :self.rows]
            weight[:self.rows] = self.weight[:self.rows]
            self.acc, self.weight = acc, weight
        self.rows = max(self.rows, needed)
        self.peak_rows = max(self.peak_rows, self.rows)

    def add(self, y: int, x: int, probs: np.ndarray, importance: np.ndarray) -> None:
        classes, h, w = probs.shape
        if self.acc is not None and classes != self.acc.shape[0]:
            raise ValueError(f"model returned {classes} classes, earlier tiles had {self.acc.shape[0]}")
        if y < self.lo:
            raise RuntimeError(f"tile at row {y} reaches rows already finalised (< {self.lo})")
        self._grow(y + h, classes)
        r = y - self.lo
        self.acc[:, r:r + h, x:x + w] += probs * importance
        self.weight[r:r + h, x:x + w] += importance

    def pop(self, upto: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Remove rows [lo, upto) and return copies of (acc, weight) for them (zeros where nothing landed)."""
        count = upto - self.lo
        if count <= 0:
            return np.zeros((classes, 0, self.width), np.float32), np.zeros((0, self.width), np.float32)
        self._grow(upto, classes)
        acc, weight = self.acc[:, :count].copy(), self.weight[:count].copy()
        rest = self.rows - count
        if rest > 0:
            self.acc[:, :rest] = self.acc[:, count:self.rows].copy()
            self.weight[:rest] = self.weight[count:self.rows].copy()
        self.acc[:, rest:self.rows] = 0.0
        self.weight[rest:self.rows] = 0.0
        self.lo, self.rows = upto, rest
        return acc, weight


def _argmax_classes(probs: np.ndarray) -> np.ndarray:
    """argmax over axis 0 (first maximum wins, like np.argmax), as class-by-class
    comparisons: much faster than a strided argmax over a few classes."""
    labels = np.zeros(probs.shape[1:], dtype=np.uint8)
    best = probs[0].copy()
    for index in range(1, probs.shape[0]):
        better = probs[index] > best
        labels[better] = index
        np.maximum(best, probs[index], out=best)
    return labels


def _finish_rows(acc: np.ndarray, weight: np.ndarray, want_probs: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalise blended sums; rows/pixels no computed tile covered become background."""
    covered = weight > 0
    probs = np.zeros_like(acc)
    np.divide(acc, weight, out=probs, where=covered[None])
    labels = _argmax_classes(probs)
    labels[~covered] = 0
    if want_probs:
        probs[:, ~covered] = 0.0
        probs[0][~covered] = 1.0
        return labels, probs
    return labels, None


# ------------------------------------------------------------------- driver
def run_tiled(
    source: ImageSource,
    predict: Predict,
    sink: BandSink,
    *,
    tile: int,
    overlap: float = 0.25,
    batch_size: int = 4,
    divisor: int = 32,
    blend: str = "gaussian",
    tissue: np.ndarray | None = None,
    tissue_factor: int = 1,
    want_probs: bool = False,
    banded: bool = True,
    pad_mode: str = "constant",
    pad_value: int = DEFAULT_PAD_VALUE,
    progress: Progress | None = None,
) -> TilingResult:
    """Tile `source`, run `predict`, blend, and stream finished rows into `sink`.

    tissue: optional boolean mask of the image downscaled by `tissue_factor`; a tile
    with no True in its footprint is skipped (contributes nothing). banded=False keeps
    every row until the end (the reference the banded path must equal).
    """
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    importance_map((1, 1), blend)  # validates the mode early
    grid = plan_grid(source.height, source.width, tile=tile, overlap=overlap, divisor=divisor)
    importance = importance_map((grid.tile_h, grid.tile_w), blend)

    tiles = list(grid.tiles())
    if tissue is not None:
        keep = [t for t in tiles if _has_tissue(tissue, tissue_factor, t, grid)]
    else:
        keep = tiles
    skipped = len(tiles) - len(keep)
    done = skipped
    if progress is not None:
        progress(done, len(tiles))

    accumulator = _BandAccumulator(grid.padded_w)
    classes: int | None = None
    emitted = 0  # rows of the real image already handed to the sink

    def emit(upto: int) -> None:
        nonlocal emitted
        upto = min(upto, grid.height)
        if upto <= emitted:
            return
        acc, weight = accumulator.pop(upto, classes or 1)
        labels, probs = _finish_rows(acc[:, :, :grid.width], weight[:, :grid.width], want_probs)
        sink.write(emitted, labels, probs)
        emitted = upto

    for start in range(0, len(keep), batch_size):
        batch_tiles = keep[start:start + batch_size]
        batch = np.stack([read_padded(source, grid, t, pad_mode, pad_value) for t in batch_tiles])
        batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        out = np.asarray(predict(batch), dtype=np.float32)
        expected = (len(batch_tiles), grid.tile_h, grid.tile_w)
        if out.ndim != 4 or (out.shape[0], out.shape[2], out.shape[3]) != expected:
            raise ValueError(f"predict returned shape {out.shape}, expected ({expected[0]}, C, {expected[1]}, {expected[2]})")
        classes = out.shape[1]
        for t, probs in zip(batch_tiles, out):
            accumulator.add(t.y, t.x, probs, importance)
        done += len(batch_tiles)
        if progress is not None:
            progress(done, len(tiles))
        if banded:
            following = keep[start + batch_size] if start + batch_size < len(keep) else None
            emit(following.y if following is not None else grid.padded_h)
    if classes is None:
        classes = 4  # every tile skipped: all background, in the project's 4 classes
    emit(grid.padded_h)
    return TilingResult(None, None, len(tiles), skipped, accumulator.peak_rows,
                        (grid.tile_h, grid.tile_w), (len(grid.ys), len(grid.xs)))


def _has_tissue(mask: np.ndarray, factor: int, t: Tile, grid: TileGrid) -> bool:
    y0, x0 = t.y // factor, t.x // factor
    y1 = math.ceil(min(t.y + grid.tile_h, grid.height) / factor)
    x1 = math.ceil(min(t.x + grid.tile_w, grid.width) / factor)
    return bool(mask[y0:y1, x0:x1].any())


def sliding_window_inference(
    image: np.ndarray,
    predict: Predict,
    *,
    tile: int,
    overlap: float = 0.25,
    batch_size: int = 4,
    divisor: int = 32,
    blend: str = "gaussian",
    skip_background: bool = True,
    return_probs: bool = False,
    progress: Progress | None = None,
    pad_mode: str = "constant",
    pad_value: int = DEFAULT_PAD_VALUE,
    banded: bool = True,
    num_classes: int = 4,
) -> TilingResult:
    """Segment an (H, W, 3) uint8 RGB image tile by tile; see the module docstring.

    predict: uint8 (B, 3, h, w) -> float32 (B, C, h, w) probabilities; h and w are
      multiples of `divisor`. tile is rounded up to the divisor (and shrunk for short images).
    skip_background: skip tiles without tissue (bonemarrow.runtime.tissue); pixels no
      computed tile covers are background, tissue labels are unchanged.
    pad_mode: images smaller than a tile are padded with `pad_value` (white, the slide
      background) or by reflection ("reflect"), and cropped back.
    progress: called as progress(tiles_done, tiles_total) after each batch.
    """
    source = ArraySource(image)
    mask, factor = None, 1
    if skip_background:
        from bonemarrow.runtime.tissue import tissue_mask

        mask, factor = tissue_mask(image)
    sink = ArraySink(source.height, source.width, num_classes, return_probs)
    result = run_tiled(source, predict, sink, tile=tile, overlap=overlap, batch_size=batch_size, divisor=divisor,
                       blend=blend, tissue=mask, tissue_factor=factor, want_probs=return_probs, banded=banded,
                       pad_mode=pad_mode, pad_value=pad_value, progress=progress)
    result.labels = sink.labels
    result.probs = sink.probs
    return result


__all__: Sequence[str] = (
    "ArraySink", "ArraySource", "BandSink", "ImageSource", "TileGrid", "TilingResult", "importance_map",
    "plan_grid", "run_tiled", "sliding_window_inference", "tile_starts",
)

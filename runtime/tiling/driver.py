"""Sliding-window inference with Gaussian blending and bounded memory.

A scan is far larger than what a segmentation network sees at once, so the image
is covered by overlapping tiles (grid.py), the model runs on batches of tiles, and
the overlapping probabilities are blended with an importance map (accumulate.py).

Memory stays bounded: tiles run top to bottom and the accumulator holds only the
rows a later tile can still touch. As soon as no pending tile reaches a row, it is
turned into labels and handed to every BandSink; rows no tile touches (glass the
tissue detector skipped) stream out as background in bands no taller than a tile.
Peak memory is O(width x (tile + stride) x classes), whatever the image's height.
Pixels come from an ImageSource, one tile's rectangle at a time, so readers and
writers for images larger than memory plug in.

The tiler knows nothing about onnxruntime or torch: it calls `predict(batch)`
with uint8 [B, 3, h, w] and expects float32 probabilities [B, C, h, w]. It reads
the returned array before calling predict again and never keeps it, so a predict
may hand back a buffer it reuses on its next call (LoadedModel.predict_view).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bonemarrow.runtime.labels import NUM_CLASSES
from bonemarrow.runtime.tiling.accumulate import BandAccumulator
from bonemarrow.runtime.tiling.config import DEFAULT_PAD_VALUE, TilingConfig
from bonemarrow.runtime.tiling.grid import Tile, TileGrid, importance_map, plan_grid
from bonemarrow.runtime.tiling.sinks import ArraySink, BandSink
from bonemarrow.runtime.tiling.sources import ArraySource, ImageSource
from bonemarrow.runtime.tissue import detect_tissue

Predict = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


@dataclass
class TilingResult:
    labels: np.ndarray | None  # (H, W) uint8, None when only the caller's sinks received the rows
    probs: np.ndarray | None  # (C, H, W) float32 when return_probs
    tiles_total: int
    tiles_skipped: int
    peak_band_rows: int = 0  # largest number of rows the accumulator held at once
    tile_shape: tuple[int, int] = (0, 0)
    grid: tuple[int, int] = (0, 0)  # tile rows, tile columns


def read_tile(source: ImageSource, grid: TileGrid, tile: Tile, pad_mode: str, pad_value: int) -> np.ndarray:
    """One tile's pixels (h, w, 3), contiguous, padded where the tile reaches past a short image's edge."""
    return np.ascontiguousarray(_tile_pixels(source, grid, tile, pad_mode, pad_value))


def _tile_pixels(source: ImageSource, grid: TileGrid, tile: Tile, pad_mode: str, pad_value: int) -> np.ndarray:
    """read_tile without the final copy: may be a view of the source's pixels.

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
    return pixels


def read_batch(source: ImageSource, grid: TileGrid, tiles: Sequence[Tile], config: TilingConfig) -> np.ndarray:
    """uint8 [B, 3, h, w] for `tiles`, written straight into one array (one copy per tile).

    With config.fixed_batch, a short batch is padded to config.batch_size with
    pad_value pixels, so every call has the same shape; the caller drops those outputs.
    """
    size = max(len(tiles), config.batch_size) if config.fixed_batch else len(tiles)
    batch = np.empty((size, 3, grid.tile_h, grid.tile_w), dtype=np.uint8)
    for index, t in enumerate(tiles):
        pixels = _tile_pixels(source, grid, t, config.pad_mode, config.pad_value)
        for channel in range(3):  # plane by plane: about twice as fast as one transposed copy
            batch[index, channel] = pixels[:, :, channel]
    if size > len(tiles):
        batch[len(tiles):] = config.pad_value
    return batch


def _has_tissue(mask: np.ndarray, factor: int, t: Tile, grid: TileGrid) -> bool:
    y0, x0 = t.y // factor, t.x // factor
    y1 = math.ceil(min(t.y + grid.tile_h, grid.height) / factor)
    x1 = math.ceil(min(t.x + grid.tile_w, grid.width) / factor)
    return bool(mask[y0:y1, x0:x1].any())


def run_tiled(
    source: ImageSource,
    predict: Predict,
    sinks: Sequence[BandSink],
    config: TilingConfig,
    *,
    divisor: int,
    num_classes: int = NUM_CLASSES,
    want_probs: bool = False,
    banded: bool = True,
    progress: Progress | None = None,
) -> TilingResult:
    """Tile `source`, run `predict`, blend, and stream finished rows into every sink in `sinks`.

    config: a resolved TilingConfig (its tile set). divisor: the model's size multiple.
    With config.skip_background, tissue is found on the source's low-resolution view and
    a tile with none in its footprint is skipped (contributes nothing; its rows become
    background where no other tile reaches). banded=False keeps every row until the end
    (the reference the banded path must equal). progress(tiles_done, tiles_total) is
    called after each batch.
    """
    if config.tile is None:
        raise ValueError("the tiling config has no tile size: resolve it against the model first "
                         "(config.resolved(model.info))")
    grid = plan_grid(source.height, source.width, tile=config.tile, overlap=config.overlap, divisor=divisor)
    importance = importance_map((grid.tile_h, grid.tile_w), config.blend)

    tiles = list(grid.tiles())
    if config.skip_background:
        mask, factor = detect_tissue(source)
        keep = [t for t in tiles if _has_tissue(mask, factor, t, grid)]
    else:
        keep = tiles
    skipped = len(tiles) - len(keep)
    done = skipped
    if progress is not None:
        progress(done, len(tiles))

    accumulator = BandAccumulator(grid.padded_w, num_classes, weights=want_probs)  # labels need no weights
    emitted = 0  # rows of the real image already handed to the sinks

    def emit(upto: int) -> None:
        """Finish rows [emitted, upto) in bands of at most one tile's height."""
        nonlocal emitted
        upto = min(upto, grid.height)
        while emitted < upto:
            stop = min(upto, emitted + grid.tile_h)
            labels, probs = accumulator.finish(stop, grid.width, want_probs)
            for sink in sinks:
                sink.write(emitted, labels, probs)
            emitted = stop

    if banded and keep:
        emit(keep[0].y)  # glass above the first tile that runs
    for start in range(0, len(keep), config.batch_size):
        batch_tiles = keep[start:start + config.batch_size]
        batch = read_batch(source, grid, batch_tiles, config)
        out = np.asarray(predict(batch), dtype=np.float32)
        expected = (batch.shape[0], grid.tile_h, grid.tile_w)
        if out.ndim != 4 or (out.shape[0], out.shape[2], out.shape[3]) != expected:
            raise ValueError(f"predict returned shape {out.shape}, expected ({expected[0]}, C, {expected[1]}, {expected[2]})")
        for t, probs in zip(batch_tiles, out):  # outputs of fixed_batch padding are dropped here
            accumulator.add(t.y, t.x, probs, importance)
        done += len(batch_tiles)
        if progress is not None:
            progress(done, len(tiles))
        if banded:
            following = keep[start + config.batch_size] if start + config.batch_size < len(keep) else None
            emit(following.y if following is not None else grid.padded_h)
    emit(grid.padded_h)
    return TilingResult(None, None, len(tiles), skipped, accumulator.peak_rows,
                        (grid.tile_h, grid.tile_w), (len(grid.ys), len(grid.xs)))


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
    num_classes: int = NUM_CLASSES,
    fixed_batch: bool = False,
) -> TilingResult:
    """Segment an (H, W, 3) uint8 RGB image tile by tile: run_tiled over an array, into an array.

    The convenience for code that holds an image and a bare `predict` (training's
    validation, the benchmarks); the settings are TilingConfig's (see there).
    predict: uint8 (B, 3, h, w) -> float32 (B, C, h, w) probabilities; h and w are
      multiples of `divisor`.
    """
    config = TilingConfig(tile=tile, overlap=overlap, batch_size=batch_size, blend=blend, pad_mode=pad_mode,
                          pad_value=pad_value, skip_background=skip_background, fixed_batch=fixed_batch)
    source = ArraySource(image)
    sink = ArraySink(source.height, source.width, num_classes, keep_probs=return_probs)
    result = run_tiled(source, predict, [sink], config, divisor=divisor, num_classes=num_classes,
                       want_probs=return_probs, banded=banded, progress=progress)
    result.labels = sink.labels
    result.probs = sink.probs
    return result

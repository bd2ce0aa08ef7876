"""Tiled inference: plan a grid (grid), blend bands (accumulate), drive a model over a source into sinks (driver).

    config = TilingConfig(overlap=0.25).resolved(model.info)
    run_tiled(source, model.predict, [sink, counter], config, divisor=model.info.divisor)
"""
from bonemarrow.runtime.tiling.accumulate import BandAccumulator
from bonemarrow.runtime.tiling.config import BLEND_MODES, DEFAULT_PAD_VALUE, PAD_MODES, TilingConfig
from bonemarrow.runtime.tiling.driver import Predict, Progress, TilingResult, run_tiled, sliding_window_inference
from bonemarrow.runtime.tiling.grid import TileGrid, importance_map, plan_grid, stride_for, tile_starts
from bonemarrow.runtime.tiling.sinks import ArraySink, BandSink, ClassCounter
from bonemarrow.runtime.tiling.sources import ArraySource, ImageSource, LowResView

__all__ = [
    "ArraySink", "ArraySource", "BLEND_MODES", "BandAccumulator", "BandSink", "ClassCounter", "DEFAULT_PAD_VALUE",
    "ImageSource", "LowResView", "PAD_MODES", "Predict", "Progress", "TileGrid", "TilingConfig", "TilingResult",
    "importance_map", "plan_grid", "run_tiled", "sliding_window_inference", "stride_for", "tile_starts",
]

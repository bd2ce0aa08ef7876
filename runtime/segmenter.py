"""The Python API: a loaded model and its tiling settings, segmenting images or whole sources.

    model = open_model("model.onnx")                     # opened, checked and hashed once
    segmenter = Segmenter(model, TilingConfig(overlap=0.5))
    result = segmenter.segment(rgb)                      # (H, W, 3) uint8 RGB
    result.labels, result.counts, result.fractions["bone_density"]

    segmenter.segment_source(source, [label_file, overlay_file])   # any ImageSource into any BandSinks

One LoadedModel can serve several Segmenters (different settings, same session);
the config is resolved against the model once here, and never changed after.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from bonemarrow.runtime.metrics import tissue_fractions
from bonemarrow.runtime.model import LoadedModel
from bonemarrow.runtime.tiling import (ArraySink, ArraySource, BandSink, ClassCounter, ImageSource, Progress,
                                       TilingConfig, run_tiled)


@dataclass
class Segmentation:
    """What segmenting one image gave: sizes, counts and fractions, timing, tiles, and (for arrays) the maps."""

    height: int
    width: int
    counts: np.ndarray  # pixels per class, int64 [NUM_CLASSES]
    fractions: dict[str, float]  # bone_density, fat_fraction, other_fraction (of tissue)
    seconds: float  # wall time of the segmentation
    model_seconds: float  # of which inside the model
    tiles_total: int
    tiles_skipped: int
    labels: np.ndarray | None = None  # (H, W) uint8 class indices (segment(); None from segment_source)
    probs: np.ndarray | None = None  # (4, H, W) float32 when requested


class Segmenter:
    """Segments images with one loaded model and one resolved TilingConfig."""

    def __init__(self, model: LoadedModel, config: TilingConfig = TilingConfig()):
        self.model = model
        self.config = config.resolved(model.info)

    def segment_source(self, source: ImageSource, sinks: Sequence[BandSink], *,
                       progress: Progress | None = None, want_probs: bool = False) -> Segmentation:
        """Segment any ImageSource, streaming its finished rows into every sink; counts come with the result."""
        start = time.perf_counter()
        model_before = self.model.model_seconds
        counter = ClassCounter()
        tiled = run_tiled(source, self.model.predict_view, [counter, *sinks], self.config,
                          divisor=self.model.info.divisor, want_probs=want_probs, progress=progress)
        return Segmentation(
            height=source.height, width=source.width, counts=counter.counts,
            fractions=tissue_fractions(counter.counts), seconds=time.perf_counter() - start,
            model_seconds=self.model.model_seconds - model_before,
            tiles_total=tiled.tiles_total, tiles_skipped=tiled.tiles_skipped,
        )

    def segment(self, rgb: np.ndarray, *, progress: Progress | None = None,
                return_probs: bool = False) -> Segmentation:
        """Segment one (H, W, 3) uint8 RGB image held in memory; the result holds its label map."""
        source = ArraySource(rgb)
        maps = ArraySink(source.height, source.width, keep_probs=return_probs)
        result = self.segment_source(source, [maps], progress=progress, want_probs=return_probs)
        return replace(result, labels=maps.labels, probs=maps.probs)


__all__ = ["Segmentation", "Segmenter"]

"""The Python API: load a model once, segment many images.

    seg = Segmenter("model.onnx")            # provider "auto": CUDA if it really works
    result = seg.segment(rgb)                # (H, W, 3) uint8 RGB
    result.labels, result.counts, result.fractions["bone_density"]

The model is checked against the contract when it is loaded. `predict` is the
callable the tiler uses; `model_seconds` accumulates time spent inside
onnxruntime, so callers can see how much of the wall time the model takes.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from bonemarrow.runtime.contract import INPUT_NAME, OUTPUT_NAME, ModelInfo, validate_session
from bonemarrow.runtime.metrics import class_counts, tissue_fractions
from bonemarrow.runtime.models import default_model_path
from bonemarrow.runtime.session import SessionChoice, create_session
from bonemarrow.runtime.tiling import Progress, sliding_window_inference


@dataclass
class Segmentation:
    labels: np.ndarray  # (H, W) uint8 class indices
    counts: np.ndarray  # pixels per class, int64 [NUM_CLASSES]
    fractions: dict[str, float]  # bone_density, fat_fraction, other_fraction (of tissue)
    seconds: float  # wall time of segment()
    model_seconds: float  # of which inside the model
    tiles_total: int
    tiles_skipped: int
    probs: np.ndarray | None = None  # (4, H, W) float32 when requested

    @property
    def height(self) -> int:
        return int(self.labels.shape[0])

    @property
    def width(self) -> int:
        return int(self.labels.shape[1])


class Segmenter:
    """An ONNX segmentation model with its tiling settings."""

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        provider: str = "auto",
        *,
        tile: int | None = None,
        overlap: float = 0.25,
        batch_size: int = 4,
        skip_background: bool = True,
        blend: str = "gaussian",
        pad_mode: str = "constant",
        threads: int | None = None,
    ):
        path = default_model_path() if model_path is None else model_path
        self.session, self.choice = create_session(path, provider, threads)
        self.info: ModelInfo = validate_session(self.session, path)
        self.tile = int(tile or self.info.tile)
        if self.tile < 1:
            raise ValueError(f"tile must be positive, got {self.tile}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.overlap = overlap
        self.batch_size = batch_size
        self.skip_background = skip_background
        self.blend = blend
        self.pad_mode = pad_mode
        self._timer = threading.local()

    @property
    def provider(self) -> str:
        """The execution provider the session really runs on."""
        return self.choice.provider

    @property
    def choice_line(self) -> str:
        return self.choice.describe()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [B, 3, h, w] -> float32 [B, 4, h, w]; h, w multiples of info.divisor."""
        start = time.perf_counter()
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.uint8)})[0]
        self._timer.seconds = getattr(self._timer, "seconds", 0.0) + time.perf_counter() - start
        return np.asarray(out, dtype=np.float32)

    def segment(self, rgb: np.ndarray, *, progress: Progress | None = None,
                return_probs: bool = False) -> Segmentation:
        """Segment one (H, W, 3) uint8 RGB image."""
        start = time.perf_counter()
        self._timer.seconds = 0.0
        result = sliding_window_inference(
            rgb, self.predict, tile=self.tile, overlap=self.overlap, batch_size=self.batch_size,
            divisor=self.info.divisor, blend=self.blend, skip_background=self.skip_background,
            return_probs=return_probs, progress=progress, pad_mode=self.pad_mode,
        )
        counts = class_counts(result.labels)
        return Segmentation(
            labels=result.labels, counts=counts, fractions=tissue_fractions(counts),
            seconds=time.perf_counter() - start, model_seconds=self._timer.seconds,
            tiles_total=result.tiles_total, tiles_skipped=result.tiles_skipped, probs=result.probs,
        )


__all__ = ["Segmentation", "Segmenter", "SessionChoice"]

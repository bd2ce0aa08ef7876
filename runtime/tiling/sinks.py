"""Where finished rows go: BandSinks receive labels (and probabilities) band by band, top to bottom.

The tiler hands each finished band to every sink in a list, so one pass can fill
an in-memory label map, count pixels per class and feed output files at once. A
new output that can be built band by band is a new BandSink.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from bonemarrow.runtime.labels import NUM_CLASSES


@runtime_checkable
class BandSink(Protocol):
    """Receives finished rows top to bottom; each row is written exactly once."""

    def write(self, y0: int, labels: np.ndarray, probs: np.ndarray | None) -> None:
        """labels: (rows, W) uint8; probs: (C, rows, W) float32 or None."""
        ...


class ArraySink:
    """Collects bands into full-size arrays (labels always, probabilities on request)."""

    def __init__(self, height: int, width: int, num_classes: int = NUM_CLASSES, keep_probs: bool = False):
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


class ClassCounter:
    """Pixels per class, summed band by band (what bone density is computed from)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.counts = np.zeros(num_classes, dtype=np.int64)

    def write(self, y0: int, labels: np.ndarray, probs: np.ndarray | None) -> None:
        # One byte-wide comparison per class: np.bincount would widen every label to int64 first.
        for index in range(1, self.counts.size):
            self.counts[index] += np.count_nonzero(labels == index)
        self.counts[0] += labels.size - int(np.count_nonzero(labels))

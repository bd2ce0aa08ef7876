"""Blending: weighted probability sums for a band of rows, turned into labels as rows finish.

Only the rows a later tile can still touch are held, so memory grows with the
image's width, not its area. Rows that no tile touched (skipped glass) are never
held at all: they come out as background in bands of the caller's choosing.
"""
from __future__ import annotations

import numpy as np


class BandAccumulator:
    """Weighted probability sums for rows [lo, lo + rows) of the padded image.

    Buffers keep spare capacity and finished rows are shifted out in place, so a
    long image costs no repeated allocation. `peak_rows` is the most rows held at once.
    """

    def __init__(self, width: int, classes: int):
        self.width = width
        self.classes = classes
        self.lo = 0
        self.rows = 0
        self.acc = np.zeros((classes, 0, width), dtype=np.float32)
        self.weight = np.zeros((0, width), dtype=np.float32)
        self.peak_rows = 0

    def _grow(self, hi: int) -> None:
        needed = hi - self.lo
        if needed > self.weight.shape[0]:
            capacity = max(needed, self.weight.shape[0] * 3 // 2)
            acc = np.zeros((self.classes, capacity, self.width), np.float32)
            weight = np.zeros((capacity, self.width), np.float32)
            acc[:, :self.rows] = self.acc[:, :self.rows]
            weight[:self.rows] = self.weight[:self.rows]
            self.acc, self.weight = acc, weight
        self.rows = max(self.rows, needed)
        self.peak_rows = max(self.peak_rows, self.rows)

    def add(self, y: int, x: int, probs: np.ndarray, importance: np.ndarray) -> None:
        """Add one tile's probabilities (C, h, w) at (y, x), weighted by `importance` (h, w)."""
        classes, h, w = probs.shape
        if classes != self.classes:
            raise ValueError(f"model returned {classes} classes, expected {self.classes}")
        if y < self.lo:
            raise RuntimeError(f"tile at row {y} reaches rows already finalised (< {self.lo})")
        self._grow(y + h)
        r = y - self.lo
        self.acc[:, r:r + h, x:x + w] += probs * importance
        self.weight[r:r + h, x:x + w] += importance

    def pop(self, upto: int) -> tuple[np.ndarray, np.ndarray]:
        """Remove rows [lo, upto) and return (acc, weight) for them (zeros where nothing landed).

        Rows past those held are returned as zeros without being held, so a caller
        that pops in bounded steps keeps memory bounded across long empty stretches.
        """
        count = max(0, upto - self.lo)
        held = min(count, self.rows)
        acc = np.zeros((self.classes, count, self.width), np.float32)
        weight = np.zeros((count, self.width), np.float32)
        if held:
            acc[:, :held] = self.acc[:, :held]
            weight[:held] = self.weight[:held]
            rest = self.rows - held
            if rest > 0:
                self.acc[:, :rest] = self.acc[:, held:self.rows].copy()
                self.weight[:rest] = self.weight[held:self.rows].copy()
            self.acc[:, rest:self.rows] = 0.0
            self.weight[rest:self.rows] = 0.0
            self.rows = rest
        self.lo += count
        return acc, weight


def argmax_classes(probs: np.ndarray) -> np.ndarray:
    """argmax over axis 0 (first maximum wins, like np.argmax), as class-by-class
    comparisons: much faster than a strided argmax over a few classes."""
    labels = np.zeros(probs.shape[1:], dtype=np.uint8)
    best = probs[0].copy()
    for index in range(1, probs.shape[0]):
        better = probs[index] > best
        labels[better] = index
        np.maximum(best, probs[index], out=best)
    return labels


def finish_rows(acc: np.ndarray, weight: np.ndarray, want_probs: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalise blended sums into labels (and probabilities); pixels no computed tile covered are background."""
    covered = weight > 0
    probs = np.zeros_like(acc)
    np.divide(acc, weight, out=probs, where=covered[None])
    labels = argmax_classes(probs)
    labels[~covered] = 0
    if want_probs:
        probs[:, ~covered] = 0.0
        probs[0][~covered] = 1.0
        return labels, probs
    return labels, None

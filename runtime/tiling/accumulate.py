"""Blending: weighted probability sums for a band of rows, turned into labels as rows finish.

Only the rows a later tile can still touch are held, so memory grows with the
image's width, not its area. Rows that no tile touched (skipped glass) are never
held at all: they come out as background in bands of the caller's choosing.

The host work per tile is kept to one pass over the tile's pixels per class
(OpenCV's accumulateProduct: sum += probs * importance, in place, no temporary),
and finishing a band allocates only its labels: the argmax runs on the weighted
sums themselves (dividing every class by the same positive weight changes no
argmax), and probabilities are normalised only when a caller asks for them.
"""
from __future__ import annotations

import cv2
import numpy as np


def _opencv_accumulates_in_place() -> bool:
    """True when OpenCV's accumulate functions write into a strided view of a larger array.

    The fast path relies on it; checked once, on a tiny array, so an OpenCV that
    copied its destination instead would fall back to numpy rather than lose sums.
    """
    try:
        base = np.zeros((3, 5), np.float32)
        view = base[1:3, 1:4]
        cv2.accumulateProduct(np.full((2, 3), 2, np.float32), np.full((2, 3), 3, np.float32), view)
        cv2.accumulate(np.ones((2, 3), np.float32), view)
    except cv2.error:
        return False
    return bool((base[1:3, 1:4] == 7).all() and base.sum() == 42)


OPENCV_IN_PLACE = _opencv_accumulates_in_place()


class BandAccumulator:
    """Weighted probability sums for rows [lo, lo + rows) of the padded image.

    Buffers keep spare capacity and finished rows are shifted out in place, so a
    long image costs no repeated allocation. `peak_rows` is the most rows held at once.
    `pop` hands out views of the finished rows; they are shifted out at the next
    `add` or `pop`, so a caller finishes them before calling either again.
    weights=False keeps no weight sums (labels need none; normalised probabilities do):
    `pop` then returns None for them.
    """

    def __init__(self, width: int, classes: int, *, weights: bool = True, use_opencv: bool | None = None):
        self.width = width
        self.classes = classes
        self.lo = 0
        self.rows = 0
        self.acc = np.zeros((classes, 0, width), dtype=np.float32)
        self.weight = np.zeros((0, width if weights else 0), dtype=np.float32)
        self.peak_rows = 0
        self._popped = 0  # rows handed out by the last pop, shifted out at the next add or pop
        self._opencv = OPENCV_IN_PLACE if use_opencv is None else use_opencv
        self._scratch: np.ndarray | None = None  # numpy path: one class's weighted tile

    def _settle(self) -> None:
        """Shift out the rows the last pop handed out (their views are stale from here on)."""
        held, self._popped = self._popped, 0
        if not held:
            return
        rest = self.rows - held
        start = 0
        while start < rest:  # chunks no longer than `held` never overlap their source
            count = min(held, rest - start)
            self.acc[:, start:start + count] = self.acc[:, held + start:held + start + count]
            self.weight[start:start + count] = self.weight[held + start:held + start + count]
            start += count
        self.acc[:, rest:self.rows] = 0.0
        self.weight[rest:self.rows] = 0.0
        self.rows = rest

    def _grow(self, hi: int) -> None:
        needed = hi - self.lo
        if needed > self.weight.shape[0]:
            capacity = max(needed, self.weight.shape[0] * 3 // 2)
            acc = np.zeros((self.classes, capacity, self.width), np.float32)
            weight = np.zeros((capacity, self.weight.shape[1]), np.float32)
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
        self._settle()
        self._grow(y + h)
        r = y - self.lo
        weight = self.weight[r:r + h, x:x + w] if self.weight.shape[1] else None
        if self._opencv and probs.dtype == np.float32 and importance.dtype == np.float32:
            for c in range(classes):
                cv2.accumulateProduct(probs[c], importance, self.acc[c, r:r + h, x:x + w])
            if weight is not None:
                cv2.accumulate(importance, weight)
            return
        if self._scratch is None or self._scratch.shape != (h, w):
            self._scratch = np.empty((h, w), np.float32)
        for c in range(classes):
            np.multiply(probs[c], importance, out=self._scratch)
            target = self.acc[c, r:r + h, x:x + w]
            np.add(target, self._scratch, out=target)
        if weight is not None:
            np.add(weight, importance, out=weight)

    def pop(self, upto: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Remove rows [lo, upto); return (acc, weight) for the first of them that are held.

        The arrays are views of the accumulator's buffers, valid until the next add
        or pop. They may have fewer rows than upto - lo: rows past those held received
        nothing (their sums are zero) and are not held, so a caller that pops in
        bounded steps keeps memory bounded across long empty stretches.
        """
        self._settle()
        count = max(0, upto - self.lo)
        held = min(count, self.rows)
        self._popped = held
        self.lo += count
        return self.acc[:, :held], (self.weight[:held] if self.weight.shape[1] else None)

    def finish(self, upto: int, columns: int, want_probs: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Remove rows [lo, upto) and return their labels (and probabilities) for the first `columns` columns."""
        rows = max(0, upto - self.lo)
        acc, weight = self.pop(upto)
        return finish_rows(acc, weight, want_probs, rows=rows, width=columns)


def argmax_classes(probs: np.ndarray) -> np.ndarray:
    """argmax over axis 0 (first maximum wins, like np.argmax), as class-by-class
    comparisons: much faster than a strided argmax over a few classes.

    The label is the last class that beat every class before it, i.e. the largest
    such class index, so it is a running maximum of uint8 masks (no masked writes).
    """
    labels = np.zeros(probs.shape[1:], dtype=np.uint8)
    if probs.shape[0] < 2 or labels.size == 0:
        return labels
    best = probs[0].copy()
    better = np.empty(probs.shape[1:], dtype=bool)
    for index in range(1, probs.shape[0]):
        np.greater(probs[index], best, out=better)
        if index < probs.shape[0] - 1:
            np.maximum(best, probs[index], out=best)
        np.maximum(labels, better.view(np.uint8) * np.uint8(index), out=labels)
    return labels


def finish_rows(acc: np.ndarray, weight: np.ndarray | None, want_probs: bool, rows: int | None = None,
                width: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and probabilities) for `rows` rows from blended sums of the first acc.shape[1] of them.

    Rows past those in `acc` received no tile; pixels no computed tile covered are
    background (probability 1 for class 0). Labels come from the sums themselves:
    every class of a pixel is divided by the same positive weight, which changes no
    argmax, and an uncovered pixel's sums are all zero, so it is class 0 already.
    `width` crops the columns (the padded image's extra columns).
    """
    held = acc.shape[1]
    rows = held if rows is None else rows
    width = acc.shape[2] if width is None else width
    acc = acc[:, :, :width]
    labels = np.zeros((rows, width), np.uint8)
    if held:
        labels[:held] = argmax_classes(acc)
    if not want_probs:
        return labels, None
    probs = np.zeros((acc.shape[0], rows, width), np.float32)
    probs[0] = 1.0
    if held:
        if weight is None:
            raise ValueError("normalised probabilities need the weight sums (BandAccumulator(weights=True))")
        weight = weight[:, :width]
        covered = weight > 0
        np.divide(acc, weight, out=probs[:, :held], where=covered[None])
    return labels, probs

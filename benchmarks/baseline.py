"""The original project's whole-image inference, reimplemented as the benchmark baseline.

What the original did (and what bm-run is measured against):
  * 480 x 480 crops every 120 px in both directions (each pixel is seen by up to
    16 crops); crops at the right/bottom edge are cut short by the image border
    and no crop starts past the first one that reaches the border;
  * each crop padded (bottom/right) with white to a multiple of 256 per side,
    run through the PyTorch model one crop at a time, and cut back to the crop;
  * the crop's probabilities added into full-image accumulators with a weight of
    1.0 in the centre and 0.75 in the outer 5 % of the crop on every side;
  * labels = argmax of the weighted average; every crop runs, glass included.
The full-size float32 accumulators are part of the original's memory cost, so
they are kept here on purpose.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

CROP = 480
STRIDE = 120
PAD_MULTIPLE = 256
PAD_VALUE = 255  # white, the colour of glass
EDGE_FRACTION = 0.05
EDGE_WEIGHT = 0.75

Predict = Callable[[np.ndarray], np.ndarray]


def crop_starts(length: int, crop: int = CROP, stride: int = STRIDE) -> list[int]:
    """Crop origins along one axis: 0, stride, ... up to the first crop that reaches the end."""
    if length < 1 or crop < 1 or stride < 1:
        raise ValueError(f"length ({length}), crop ({crop}) and stride ({stride}) must be positive")
    starts = [0]
    while starts[-1] + crop < length:
        starts.append(starts[-1] + stride)
    return starts


def pad_to_multiple(crop: np.ndarray, multiple: int = PAD_MULTIPLE, value: int = PAD_VALUE) -> np.ndarray:
    """(h, w, 3) -> (H, W, 3) with H, W the next multiples of `multiple`, padded bottom/right with `value`."""
    h, w = crop.shape[:2]
    height, width = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
    if (height, width) == (h, w):
        return crop
    padded = np.full((height, width) + crop.shape[2:], value, dtype=crop.dtype)
    padded[:h, :w] = crop
    return padded


def crop_weights(height: int, width: int, edge_fraction: float = EDGE_FRACTION,
                 edge_weight: float = EDGE_WEIGHT) -> np.ndarray:
    """(height, width) float32: 1.0 inside, `edge_weight` in the outer `edge_fraction` of each side."""
    weights = np.full((height, width), edge_weight, dtype=np.float32)
    by, bx = round(edge_fraction * height), round(edge_fraction * width)
    weights[by:height - by, bx:width - bx] = 1.0
    return weights


def baseline_inference(image: np.ndarray, predict: Predict, *, crop: int = CROP, stride: int = STRIDE,
                       multiple: int = PAD_MULTIPLE, progress: Callable[[int, int], None] | None = None
                       ) -> tuple[np.ndarray, int]:
    """(labels (H, W) uint8, crops run) for an (H, W, 3) uint8 RGB image, the original way."""
    height, width = image.shape[:2]
    ys, xs = crop_starts(height, crop, stride), crop_starts(width, crop, stride)
    total = len(ys) * len(xs)
    acc = None
    weight_sum = np.zeros((height, width), dtype=np.float32)
    done = 0
    for y in ys:
        for x in xs:
            piece = image[y:y + crop, x:x + crop]
            h, w = piece.shape[:2]
            padded = pad_to_multiple(piece, multiple)
            probs = predict(np.ascontiguousarray(padded.transpose(2, 0, 1))[None])[0, :, :h, :w]
            if acc is None:
                acc = np.zeros((probs.shape[0], height, width), dtype=np.float32)
            weights = crop_weights(h, w)
            acc[:, y:y + h, x:x + w] += probs * weights
            weight_sum[y:y + h, x:x + w] += weights
            done += 1
            if progress:
                progress(done, total)
    labels = np.argmax(acc / weight_sum, axis=0).astype(np.uint8)
    return labels, total

"""Overlay pictures: class colours laid over the scan so a person can check the result.

Background is left as the scan; tissue classes are tinted with their colour
(labels.COLORS) at `alpha`, so structure stays visible under the colour.
"""
from __future__ import annotations

import numpy as np

from bonemarrow.runtime.labels import BACKGROUND, COLORS

DEFAULT_ALPHA = 0.45


def overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = DEFAULT_ALPHA, rows: int = 512) -> np.ndarray:
    """(H, W, 3) uint8 RGB with class colours blended over non-background pixels.

    Works in bands of `rows` so the float temporaries stay small on large scans.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    labels = np.asarray(labels)
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    lut = np.array(COLORS, dtype=np.float32)
    out = rgb.copy()
    for y in range(0, rgb.shape[0], rows):
        band, lab = rgb[y:y + rows].astype(np.float32), labels[y:y + rows]
        tinted = band * (1 - alpha) + lut[lab] * alpha
        tissue = lab != BACKGROUND
        out[y:y + rows][tissue] = np.clip(np.rint(tinted[tissue]), 0, 255).astype(np.uint8)
    return out

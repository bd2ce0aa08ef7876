"""The stain canvas: what every painter writes, and the one place labels are assigned.

Painters never write colours. They write amounts of three absorbers per pixel
(haematoxylin, eosin, haemoglobin of red cells); colour.py turns amounts into
RGB with the slide's own stain hues, strengths and white balance. A Canvas
write sets the amounts AND the label of the same pixels from the same mask, so
labels are exact by construction: whatever is painted last on a pixel decides
both what it looks like and what it is.
"""
from __future__ import annotations

import numpy as np

HAEM, EOSIN, BLOOD = 0, 1, 2


class Canvas:
    def __init__(self, height: int, width: int):
        self.stain = np.zeros((height, width, 3), np.float32)
        self.labels = np.zeros((height, width), np.uint8)

    def put(self, mask: np.ndarray, label: int, stain: np.ndarray | tuple[float, float, float]) -> None:
        """Paint `mask` with `label` and stain amounts (a constant triple, or a full-image (H, W, 3) layer)."""
        self.labels[mask] = label
        if isinstance(stain, tuple):
            self.stain[mask] = np.asarray(stain, np.float32)
        else:
            self.stain[mask] = stain[mask]


def layer(height: int, width: int, haem: float = 0.0, eosin: float = 0.0, blood: float = 0.0) -> np.ndarray:
    """A full-image (H, W, 3) float32 stain layer filled with constant amounts."""
    out = np.zeros((height, width, 3), np.float32)
    for channel, amount in ((HAEM, haem), (EOSIN, eosin), (BLOOD, blood)):
        if amount:
            out[..., channel] = amount
    return out

"""Layers of a PSD as canvas-sized arrays.

A PSD layer stores only its bounding box, and a layer mask its own rectangle
plus a default value for everything outside it. Everything here returns arrays
the size of the canvas, with each layer placed at its offset and clipped to the
canvas, so callers never think about offsets.

Thresholds: a pixel is covered when its alpha is >= 128 (layers without a
mask) or its mask value is >= 128 (layers with a mask).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLD = 128


@dataclass
class LayerInfo:
    """What role detection needs to know about one pixel layer."""

    index: int            # 0 = bottom layer
    name: str
    has_mask: bool
    bbox: tuple[int, int, int, int]  # left, top, right, bottom on the canvas
    layer: object         # the psd_tools layer


def pixel_layers(psd) -> list[LayerInfo]:
    """The PSD's pixel layers bottom to top (groups are looked into, not returned)."""
    found = []
    for layer in psd.descendants():
        if layer.is_group():
            continue
        found.append(LayerInfo(index=len(found), name=str(layer.name), has_mask=bool(layer.has_mask()),
                               bbox=tuple(int(v) for v in layer.bbox), layer=layer))
    return found


def _place(canvas: np.ndarray, patch: np.ndarray, left: int, top: int) -> None:
    """Copy `patch` into `canvas` with its top-left corner at (left, top), clipped to the canvas."""
    height, width = canvas.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + patch.shape[1], width), min(top + patch.shape[0], height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = patch[y0 - top:y1 - top, x0 - left:x1 - left]


def layer_rgba(info: LayerInfo, size: tuple[int, int]) -> np.ndarray:
    """The layer's RGBA pixels on a transparent canvas of `size` (width, height)."""
    width, height = size
    canvas = np.zeros((height, width, 4), np.uint8)
    image = info.layer.topil()
    if image is not None:
        left, top = info.bbox[0], info.bbox[1]
        _place(canvas, np.asarray(image.convert("RGBA")), left, top)
    return canvas


def layer_alpha(info: LayerInfo, size: tuple[int, int]) -> np.ndarray:
    """Boolean canvas mask: alpha >= 128."""
    return layer_rgba(info, size)[..., 3] >= THRESHOLD


def layer_mask(info: LayerInfo, size: tuple[int, int]) -> np.ndarray:
    """Boolean canvas mask: layer-mask value >= 128, the mask's default colour outside its rectangle."""
    width, height = size
    mask = info.layer.mask
    canvas = np.full((height, width), mask.background_color, np.uint8)
    image = mask.topil()
    if image is not None:
        _place(canvas, np.asarray(image.convert("L")), int(mask.left), int(mask.top))
    return canvas >= THRESHOLD


def coverage(info: LayerInfo, size: tuple[int, int]) -> np.ndarray:
    """What a label layer marks: its mask if it has one (the pixels are just a fill), else its alpha."""
    return layer_mask(info, size) if info.has_mask else layer_alpha(info, size)


def scan_rgb(info: LayerInfo, size: tuple[int, int]) -> np.ndarray:
    """The scan layer as RGB; any transparency is composited over white, as Photoshop shows it."""
    rgba = layer_rgba(info, size).astype(np.float32)
    alpha = rgba[..., 3:4] / 255
    return np.round(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)

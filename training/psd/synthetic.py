"""Write a generated biopsy as an annotation PSD laid out like the hospital's.

Layer 0 is the raw scan; a tissue silhouette ("no background") whose alpha
marks tissue; a bone layer without a layer mask whose alpha marks bone; and a
fat layer whose pixels are a plain fill shown through a layer mask that marks
fat. Names, order, crops/offsets, alpha levels, mask rectangles and sloppy
bone-over-fat strokes vary so that bm-prepare's every path is exercised.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.atomic import atomic_path
from bonemarrow.runtime.labels import BONE, FAT

SCAN_NAMES = ("Background", "raw scan", "Original", "SCAN")
TISSUE_NAMES = ("no background", "No Background", "Tissue", "tissue outline")
BONE_NAMES = ("bone", "Bone", "BONE trabeculae")
FAT_NAMES = ("fat", "Fat", "FAT cells")


@dataclass
class PsdLayout:
    """How one synthetic PSD is laid out (recorded in the manifest)."""

    names: dict = field(default_factory=lambda: {"scan": "Background", "tissue": "no background",
                                                 "bone": "bone", "fat": "fat"})
    order: tuple = ("scan", "tissue", "bone", "fat")   # bottom to top
    crop: dict = field(default_factory=lambda: {"tissue": "full", "bone": "full", "fat": "full"})
    soft_alpha: bool = False          # covered alpha anywhere in 128..255, uncovered in 0..127
    fat_mask_rect: str = "bbox"       # "bbox": mask rectangle around the fat, default 0; "canvas": default 255
    bone_over_fat: bool = False       # the bone strokes also cover fat next to bone (fat wins)


def random_layout(rng: np.random.Generator) -> PsdLayout:
    """A layout like the hospital's files, drawn at random."""
    named = rng.random() < 0.5
    anonymous = {"scan": "Background", "tissue": "Layer 1", "bone": "Layer 2", "fat": "Layer 3"}
    names = {}
    for role, choices in (("scan", SCAN_NAMES), ("tissue", TISSUE_NAMES), ("bone", BONE_NAMES), ("fat", FAT_NAMES)):
        names[role] = str(rng.choice(choices)) if named or rng.random() < 0.3 else anonymous[role]
    rest = ["tissue", "bone", "fat"]
    rng.shuffle(rest)
    if not named:  # Photoshop numbers new layers in creation order; the order on the stack differs.
        for number, role in enumerate(rest, start=1):
            if names[role].startswith("Layer "):
                names[role] = f"Layer {number}"
    return PsdLayout(
        names=names, order=("scan", *rest),
        crop={role: str(rng.choice(["full", "bbox", "beyond"])) for role in ("tissue", "bone", "fat")},
        soft_alpha=bool(rng.random() < 0.5), fat_mask_rect=str(rng.choice(["bbox", "canvas"])),
        bone_over_fat=bool(rng.random() < 0.5),
    )


def _bbox(mask: np.ndarray, margin: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) around the mask's pixels, widened by `margin`, at least 1x1."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0, 0, 1, 1
    return (int(xs.min()) - margin, int(ys.min()) - margin, int(xs.max()) + 1 + margin, int(ys.max()) + 1 + margin)


def _crop_rect(mode: str, mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, int]:
    height, width = mask.shape
    if mode == "full":
        return 0, 0, width, height
    if mode == "bbox":
        left, top, right, bottom = _bbox(mask, int(rng.integers(0, 6)), (width, height))
        return max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    # "beyond": the layer pokes out past the canvas (Photoshop keeps such pixels).
    pad = int(rng.integers(3, 20))
    return -pad, -pad, width + pad, height + pad


def _cut(array: np.ndarray, rect: tuple[int, int, int, int], fill=0) -> np.ndarray:
    """The part of a canvas array inside `rect`, padded with `fill` where the rect leaves the canvas."""
    left, top, right, bottom = rect
    height, width = array.shape[:2]
    out = np.full((bottom - top, right - left, *array.shape[2:]), fill, array.dtype)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    out[y0 - top:y1 - top, x0 - left:x1 - left] = array[y0:y1, x0:x1]
    return out


def _alpha(mask: np.ndarray, soft: bool, rng: np.random.Generator) -> np.ndarray:
    if not soft:
        return np.where(mask, 255, 0).astype(np.uint8)
    high = rng.integers(128, 256, mask.shape, dtype=np.uint8)
    low = rng.integers(0, 128, mask.shape, dtype=np.uint8)
    return np.where(mask, high, low)


def write_label_psd(path: str | os.PathLike, rgb: np.ndarray, labels: np.ndarray, layout: PsdLayout,
                    rng: np.random.Generator | None = None) -> None:
    """Write `rgb` + `labels` as a layered PSD following `layout` (atomically)."""
    from PIL import Image
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer

    rng = rng or np.random.default_rng(0)
    height, width = labels.shape
    fat = labels == FAT
    bone = labels == BONE
    marks = {"tissue": labels != 0, "bone": bone, "fat": fat}
    if layout.bone_over_fat:
        near_bone = cv2.dilate(bone.view(np.uint8), np.ones((9, 9), np.uint8)) > 0
        marks["bone"] = bone | (fat & near_bone)
    fills = {"tissue": (250, 250, 250), "bone": (255, 0, 0), "fat": (0, 255, 0)}
    # An RGBA document: psd-tools keeps layer transparency only there (in an RGB one it turns alpha into masks).
    psd = PSDImage.new("RGBA", (width, height))
    for role in layout.order:
        name = layout.names[role]
        if role == "scan":
            PixelLayer.frompil(Image.fromarray(np.ascontiguousarray(rgb), "RGB"), psd, name=name, top=0, left=0)
            continue
        rect = _crop_rect(layout.crop[role], marks[role], rng)
        left, top, right, bottom = rect
        pixels = np.empty((bottom - top, right - left, 4), np.uint8)
        pixels[..., :3] = fills[role]
        if role == "fat":
            pixels[..., 3] = 255  # a plain fill: the mask says where the fat is
        else:
            pixels[..., 3] = _cut(_alpha(marks[role], layout.soft_alpha, rng), rect)
        layer = PixelLayer.frompil(Image.fromarray(pixels, "RGBA"), psd, name=name, top=top, left=left)
        if role == "fat":
            if layout.fat_mask_rect == "canvas":
                mask_rect, default = (0, 0, width, height), 255
            else:
                l, t, r, b = _bbox(fat, int(rng.integers(0, 6)), (width, height))
                mask_rect, default = (max(l, 0), max(t, 0), min(r, width), min(b, height)), 0
            values = _cut(_alpha(fat, layout.soft_alpha, rng), mask_rect)
            mask = layer.create_mask(Image.fromarray(values, "L"), top=mask_rect[1], left=mask_rect[0])
            mask.data.background_color = default
    with atomic_path(path) as tmp:
        psd.save(str(tmp))


def write_synthetic_psd(path: str | os.PathLike, rgb: np.ndarray, labels: np.ndarray,
                        rng: np.random.Generator) -> dict:
    """Write with a random hospital-like layout; returns the layout as a dict for the manifest."""
    layout = random_layout(rng)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_label_psd(path, rgb, labels, layout, rng)
    return asdict(layout)

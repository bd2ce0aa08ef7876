"""Draw the generator's contact sheet: typical biopsies, the extremes of the ranges, and 1:1 crops.

    python -m bonemarrow.training.synth.contact_sheet docs/synthetic_contact_sheet.png

The first rows are ordinary draws from the training profile (the "middles");
the next rows force single parameters to the ends of their training ranges
(tiny or huge scale, magenta marrow beside pale bone, purple bone, faded and
over-stained slides, cold and warm light, confluent fat); one row is drawn
from the shifted hold-out profile; the last row shows crops at full
resolution, where cell-scale texture lives. Each panel is a downscaled scan
beside its colour labels. The sheet is quantised to 256 colours to stay small.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from bonemarrow.runtime.labels import colorize
from bonemarrow.runtime.metrics import bone_density
from bonemarrow.training.synth import generate_biopsy, image_rng
from bonemarrow.training.synth.style import TRAIN, Style, draw_style

SEED = 2024
WIDTH, HEIGHT = 3000, 1000

#: (caption, forced values) for the extreme rows; everything else is drawn from the training profile.
EXTREMES: tuple[tuple[str, dict[str, float]], ...] = (
    ("scale 0.55x, magenta marrow, pale bone",
     {"scale": 0.55, "marrow_eosin": 0.55, "bone_eosin": 0.3, "bone_haematoxylin": 0.0, "red_cells": 1.6,
      "bone_density": 0.25, "has_no_bone": 0.0}),
    ("scale 1.8x, purple bone, confluent large fat",
     {"scale": 1.8, "bone_haematoxylin": 0.35, "bone_eosin": 0.5, "fat_bias": 2.4, "adipocyte_diameter": 58.0,
      "bone_density": 0.2, "has_no_bone": 0.0}),
    ("faded stain, grey glass, cold light, blurred",
     {"haematoxylin_strength": 0.55, "eosin_strength": 0.55, "glass_density": 0.09, "white_balance": -1.0,
      "blur": 1.5, "soft_focus": 2.6}),
    ("over-stained, warm light, haemorrhage and fibrosis",
     {"haematoxylin_strength": 1.6, "eosin_strength": 1.6, "white_balance": 1.0, "haemorrhage": 0.35,
      "fibrosis": 0.25, "fat_bias": -1.5}),
)


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    draw.rectangle([0, 0, 8 + 6 * len(text), 14], fill=(255, 255, 255))
    draw.text((4, 2), text, fill=(0, 0, 0))
    return np.asarray(picture)


def _panel(rgb: np.ndarray, labels: np.ndarray, caption: str, width: int) -> np.ndarray:
    size = (width, width * rgb.shape[0] // rgb.shape[1])
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small_labels = cv2.resize(colorize(labels), size, interpolation=cv2.INTER_NEAREST)
    caption = f"{caption}  bone density {bone_density(labels):.0%}"
    return np.concatenate([_caption(small, caption), small_labels], axis=1)


def _forced(index: int, values: dict[str, float]) -> Style:
    drawn = dict(draw_style(image_rng(SEED + 1, index), TRAIN).values)
    drawn.update(values)
    return Style(drawn)


def contact_sheet(middles: int = 2, panel_width: int = 640) -> np.ndarray:
    panels, crops = [], []
    for index in range(middles):
        rgb, labels = generate_biopsy(image_rng(SEED, index), WIDTH, HEIGHT)
        panels.append(_panel(rgb, labels, f"training profile #{index}", panel_width))
        crops.append((rgb, labels))
    for index, (caption, values) in enumerate(EXTREMES):
        rgb, labels = generate_biopsy(image_rng(SEED + 1, index), WIDTH, HEIGHT, style=_forced(index, values))
        panels.append(_panel(rgb, labels, caption, panel_width))
        crops.append((rgb, labels))
    rgb, labels = generate_biopsy(image_rng(SEED + 2, 0), WIDTH, HEIGHT, ranges="shifted")
    panels.append(_panel(rgb, labels, "shifted hold-out profile", panel_width))
    # Full-resolution crops of two middles and two extremes, side by side with their labels.
    side = panel_width // 2
    row = []
    for rgb, labels in (crops[0], crops[2], crops[3], crops[5]):
        y, x = HEIGHT // 2 - side // 2, WIDTH // 2 - side // 2
        row.append(np.concatenate([rgb[y:y + side, x:x + side], colorize(labels[y:y + side, x:x + side])], axis=0))
    crop_row = _caption(np.concatenate(row, axis=1), "crops at full resolution (1:1): scan above labels")
    gap = np.full((4, 2 * panel_width, 3), 255, np.uint8)
    parts = [part for panel in [*panels, crop_row] for part in (panel, gap)][:-1]
    return np.concatenate(parts, axis=0)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/synthetic_contact_sheet.png")
    sheet = Image.fromarray(contact_sheet()).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()

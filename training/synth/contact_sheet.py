"""Draw the generator's contact sheet: generated biopsies beside their colour labels.

    python -m bonemarrow.training.synth.contact_sheet docs/synthetic_contact_sheet.png

Rows of whole cores (downscaled) show the layout and its variety; the last row
shows a crop at full resolution, where the cell-scale texture lives. The sheet
is quantised to 256 colours to stay well under 1 MB.
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

SEED = 2024


def _label(image: np.ndarray, text: str) -> np.ndarray:
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    draw.rectangle([0, 0, 8 + 6 * len(text), 14], fill=(255, 255, 255))
    draw.text((4, 2), text, fill=(0, 0, 0))
    return np.asarray(picture)


def contact_sheet(rows: int = 4, panel_width: int = 640, seed: int = SEED) -> np.ndarray:
    panels = []
    for index in range(rows):
        rgb, labels = generate_biopsy(image_rng(seed, index), 3000, 1000)
        size = (panel_width, panel_width // 3)
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        small_labels = cv2.resize(colorize(labels), size, interpolation=cv2.INTER_NEAREST)
        caption = f"seed {seed} #{index}  3000x1000  bone density {bone_density(labels):.0%}"
        panels.append(np.concatenate([_label(small, caption), small_labels], axis=1))
    height = panel_width // 2
    y, x = 500 - height // 2, 1500 - panel_width // 2
    crop = rgb[y:y + height, x:x + panel_width]
    crop_labels = colorize(labels[y:y + height, x:x + panel_width])
    panels.append(np.concatenate([_label(crop, "the last core at full resolution (1:1)"), crop_labels], axis=1))
    gap = np.full((4, 2 * panel_width, 3), 255, np.uint8)
    return np.concatenate([part for panel in panels for part in (panel, gap)][:-1], axis=0)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/synthetic_contact_sheet.png")
    sheet = Image.fromarray(contact_sheet()).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()

"""Tiny synthetic datasets drawn with OpenCV, independent of bm-synth (helpers for tests/training)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.io.labels import write_label_png

# Plain colours per class, so a few training steps can already learn them.
CLASS_COLOURS = {0: (245, 245, 245), 1: (200, 60, 120), 2: (250, 225, 235), 3: (110, 70, 160)}


def draw_pair(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, labels): a tissue ellipse of 'other' with fat discs and bone bars inside."""
    labels = np.zeros((height, width), np.uint8)
    centre = (width // 2, height // 2)
    cv2.ellipse(labels, centre, (int(width * 0.42), int(height * 0.4)), 0, 0, 360, 3, -1)
    for _ in range(6):
        x, y = int(rng.uniform(0.25, 0.75) * width), int(rng.uniform(0.25, 0.75) * height)
        cv2.circle(labels, (x, y), int(rng.integers(4, 9)), 2, -1)
    for _ in range(2):
        x, y = int(rng.uniform(0.3, 0.7) * width), int(rng.uniform(0.3, 0.7) * height)
        cv2.rectangle(labels, (x, y), (x + int(rng.integers(10, 25)), y + 6), 1, -1)
    image = np.zeros((height, width, 3), np.float32)
    for cls, colour in CLASS_COLOURS.items():
        image[labels == cls] = colour
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def write_dataset(root: Path, splits: dict[str, int], height: int = 96, width: int = 128, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    items = []
    for split, count in splits.items():
        for index in range(count):
            name = f"{split}_{index}"
            image, labels = draw_pair(rng, height, width)
            cv2.imwrite(str(root / "images" / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            write_label_png(root / "labels" / f"{name}.png", labels)
            items.append({"name": name, "split": split, "width": width, "height": height})
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "items": items, "failures": []}))
    return root

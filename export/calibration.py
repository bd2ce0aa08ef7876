"""Tiles from a dataset folder: int8 calibration input and held-out gate samples.

Calibration takes the training split (what the model was fitted on is what its
activations were shaped by); the int8 gate takes the val/test splits, so the
gate never judges the quantised model on the very tiles that set its ranges.
Tiles are drawn where the label map shows tissue: the runtime skips blank glass,
so calibrating on it would only waste the 8-bit range.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.label_io import read_label_png
from bonemarrow.runtime.labels import BACKGROUND

CALIBRATION_SPLITS = ("train",)
HELD_OUT_SPLITS = ("val", "test")
MIN_TISSUE = 0.2


class DatasetError(ValueError):
    """A calibration folder that is not a usable dataset (one-line message naming it)."""


def dataset_items(dataset: str | os.PathLike) -> list[dict]:
    """The manifest's items whose image file exists, each with its `split`."""
    root = Path(dataset)
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise DatasetError(f"{root}: not a dataset folder (no manifest.json)")
    try:
        items = json.loads(manifest.read_text())["items"]
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{manifest}: unreadable manifest ({type(error).__name__}: {error})") from None
    found = [item for item in items if (root / "images" / f"{item['name']}.png").is_file()]
    if not found:
        raise DatasetError(f"{root}: the manifest lists no image that exists under images/")
    return found


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _tissue_mask(root: Path, name: str, shape: tuple[int, int]) -> np.ndarray | None:
    label_path = root / "labels" / f"{name}.png"
    if not label_path.is_file():
        return None
    labels = read_label_png(label_path)
    return labels != BACKGROUND if labels.shape == shape else None


def sample_tiles(
    dataset: str | os.PathLike,
    *,
    splits: Sequence[str],
    count: int,
    height: int,
    width: int,
    seed: int = 0,
) -> np.ndarray:
    """Up to `count` uint8 tiles [N,3,height,width] from images of the given splits.

    Images smaller than a tile are skipped; crops with < 20 % tissue are retried a
    few times before being accepted anyway (a tissue-free dataset still calibrates).
    """
    root = Path(dataset)
    items = [item for item in dataset_items(root) if item.get("split") in splits]
    rng = np.random.default_rng(seed)
    tiles: list[np.ndarray] = []
    order = rng.permutation(len(items)) if items else []
    # Round-robin over the images so a few large scans do not supply every tile.
    images = []
    for index in order:
        name = items[index]["name"]
        image = _read_rgb(root / "images" / f"{name}.png")
        if image.shape[0] >= height and image.shape[1] >= width:
            images.append((image, _tissue_mask(root, name, image.shape[:2])))
    if not images:
        return np.empty((0, 3, height, width), dtype=np.uint8)
    attempts = 0
    while len(tiles) < count and attempts < count * 20:
        image, tissue = images[attempts % len(images)]
        attempts += 1
        top = int(rng.integers(0, image.shape[0] - height + 1))
        left = int(rng.integers(0, image.shape[1] - width + 1))
        if tissue is not None and attempts < count * 10:
            if tissue[top : top + height, left : left + width].mean() < MIN_TISSUE:
                continue
        tiles.append(image[top : top + height, left : left + width].transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(tiles)) if tiles else np.empty((0, 3, height, width), np.uint8)

"""Tiles from a dataset folder: int8 calibration input and held-out gate samples.

Calibration takes the training split (what the model was fitted on is what its
activations were shaped by); the gate's dataset samples take the val/test
splits, so the int8 gate never judges the quantised model on the very tiles
that set its ranges. Tiles are drawn where the label map shows tissue: the
runtime skips blank glass, so calibrating on it would only waste the 8-bit range.
Images are read one at a time (training.dataset_io), never the whole dataset.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bonemarrow.runtime.errors import first_line
from bonemarrow.runtime.labels import BACKGROUND
from bonemarrow.training.data import DatasetError
from bonemarrow.training.dataset_io import load_item, read_manifest

CALIBRATION_SPLITS = ("train",)
HELD_OUT_SPLITS = ("val", "test")
MIN_TISSUE = 0.2
MAX_IMAGES = 12  # whole scans can be large: read at most this many, cut several tiles from each

__all__ = ["CALIBRATION_SPLITS", "HELD_OUT_SPLITS", "DatasetError", "dataset_items", "sample_tiles"]


def dataset_items(dataset: str | os.PathLike) -> list[dict]:
    """The manifest's items; DatasetError (one line) when the folder is not a dataset."""
    root = Path(dataset)
    if not (root / "manifest.json").is_file():
        raise DatasetError(f"{root}: not a dataset folder (no manifest.json)")
    try:
        manifest = read_manifest(root)
        items = manifest["items"]
        if not isinstance(items, list) or not all(isinstance(i, dict) and "name" in i for i in items):
            raise ValueError("'items' must be a list of objects with a name")
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{root / 'manifest.json'}: unreadable manifest ({first_line(error)})") from None
    return items


def sample_tiles(
    dataset: str | os.PathLike,
    *,
    splits: Sequence[str | None],
    count: int,
    height: int,
    width: int,
    seed: int = 0,
) -> np.ndarray:
    """Up to `count` uint8 tiles [N,3,height,width] from images of the given splits.

    Images smaller than a tile are skipped; crops with < 20 % tissue are retried
    before being accepted anyway (a dataset without tissue still calibrates).
    """
    root = Path(dataset)
    items = [item for item in dataset_items(root) if item.get("split") in splits]
    rng = np.random.default_rng(seed)
    images = []
    for index in rng.permutation(len(items)):
        try:
            rgb, labels = load_item(root, items[index])
        except (ValueError, OSError) as error:
            raise DatasetError(str(error)) from None
        if rgb.shape[0] >= height and rgb.shape[1] >= width:
            images.append((rgb, labels != BACKGROUND))
        if len(images) >= min(count, MAX_IMAGES):
            break
    tiles: list[np.ndarray] = []
    attempts = 0
    # Round-robin over the images so that a few large scans do not supply every tile.
    while images and len(tiles) < count and attempts < count * 20:
        rgb, tissue = images[attempts % len(images)]
        attempts += 1
        top = int(rng.integers(0, rgb.shape[0] - height + 1))
        left = int(rng.integers(0, rgb.shape[1] - width + 1))
        if attempts < count * 10 and tissue[top : top + height, left : left + width].mean() < MIN_TISSUE:
            continue
        tiles.append(rgb[top : top + height, left : left + width].transpose(2, 0, 1))
    if not tiles:
        return np.empty((0, 3, height, width), dtype=np.uint8)
    return np.ascontiguousarray(np.stack(tiles))

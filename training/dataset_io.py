"""The dataset folder every training tool reads: images/, labels/ and manifest.json.

DATASET/images/NAME.png is the RGB scan, DATASET/labels/NAME.png its label map
(bonemarrow.runtime.io.labels format) and DATASET/manifest.json lists every item
with its split, size, class fractions, source and sha256, plus the inputs that
could not be converted ("failures"). Splits come from a hash of the item name,
so adding files never moves an existing item to another split.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.atomic import write_bytes_atomic, write_text_atomic
from bonemarrow.runtime.json_io import json_safe
from bonemarrow.runtime.io.labels import read_label_png, write_label_png
from bonemarrow.runtime.metrics import class_counts, tissue_fractions

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15


def split_for(name: str, val_fraction: float = DEFAULT_VAL_FRACTION,
              test_fraction: float = DEFAULT_TEST_FRACTION) -> str:
    """The split of an item, a pure function of its name (SHA-256 mapped to [0, 1))."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction > 1:
        raise ValueError(f"split fractions must be >= 0 and sum to <= 1 (val {val_fraction}, test {test_fraction})")
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


def encode_rgb_png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return data.tobytes()


def write_item(dataset: str | os.PathLike, name: str, rgb: np.ndarray, labels: np.ndarray, *, source: str,
               sha256: str | None = None, val_fraction: float = DEFAULT_VAL_FRACTION,
               test_fraction: float = DEFAULT_TEST_FRACTION, **extra) -> dict:
    """Write one image and its label map (atomically) and return its manifest entry.

    `sha256` names the source file's hash; without one (generated data) it is
    the hash of the written image PNG.
    """
    if rgb.shape[:2] != labels.shape or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{name}: image {rgb.shape} and labels {labels.shape} do not match")
    dataset = Path(dataset)
    png = encode_rgb_png(rgb)
    write_bytes_atomic(dataset / "images" / f"{name}.png", png)
    write_label_png(dataset / "labels" / f"{name}.png", labels)
    counts = class_counts(labels)
    return {
        "name": name,
        "split": split_for(name, val_fraction, test_fraction),
        "width": int(labels.shape[1]),
        "height": int(labels.shape[0]),
        "fractions": tissue_fractions(counts),
        "counts": counts.tolist(),
        "source": source,
        "sha256": sha256 or hashlib.sha256(png).hexdigest(),
        **extra,
    }


def write_manifest(dataset: str | os.PathLike, items: list[dict], failures: list[dict] | None = None,
                   **extra) -> Path:
    """Write DATASET/manifest.json atomically; items are sorted by name for stable diffs."""
    path = Path(dataset) / "manifest.json"
    manifest = {"format_version": FORMAT_VERSION, **extra,
                "items": sorted(items, key=lambda item: item["name"]), "failures": failures or []}
    # NaN (an item without tissue) is not JSON: store null.
    text = json.dumps(json_safe(manifest), indent=1, allow_nan=False)
    write_text_atomic(path, text + "\n")
    return path


def read_manifest(dataset: str | os.PathLike) -> dict:
    path = Path(dataset) / "manifest.json"
    manifest = json.loads(path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {manifest.get('format_version')!r}")
    return manifest


def items_in_split(manifest: dict, split: str) -> list[dict]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    return [item for item in manifest["items"] if item["split"] == split]


def load_item(dataset: str | os.PathLike, item: dict | str) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 (H, W, 3), labels uint8 (H, W)) of one dataset item."""
    name = item if isinstance(item, str) else item["name"]
    dataset = Path(dataset)
    path = dataset / "images" / f"{name}.png"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    labels = read_label_png(dataset / "labels" / f"{name}.png")
    if labels.shape != bgr.shape[:2]:
        raise ValueError(f"{name}: image {bgr.shape[:2]} and labels {labels.shape} differ in size")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), labels

"""The dataset folder every training tool reads: images/, labels/ and manifest.json.

DATASET/images/NAME.png is the RGB scan, DATASET/labels/NAME.png its label map
(bonemarrow.runtime.io.labels format) and DATASET/manifest.json lists every item
with its split, size, class fractions, source and sha256, plus the inputs that
could not be converted ("failures"). Splits come from a hash of the item name,
so adding files never moves an existing item to another split; the one exception
keeps small datasets trainable: when the hash leaves 'val' empty and there are 2
or more items, the item whose hash lies nearest the val range is moved there
(`ensure_val_item`); a large dataset's val split is never empty, so it never moves.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.atomic import write_bytes_atomic
from bonemarrow.runtime.io.labels import read_label_png, write_label_png
from bonemarrow.runtime.json_io import write_json_atomic
from bonemarrow.runtime.metrics import class_counts, tissue_fractions

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15


def split_position(name: str) -> float:
    """Where an item's name hashes to in [0, 1): SHA-256's first 8 bytes."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_for(name: str, val_fraction: float = DEFAULT_VAL_FRACTION,
              test_fraction: float = DEFAULT_TEST_FRACTION) -> str:
    """The split of an item, a pure function of its name (SHA-256 mapped to [0, 1))."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction > 1:
        raise ValueError(f"split fractions must be >= 0 and sum to <= 1 (val {val_fraction}, test {test_fraction})")
    position = split_position(name)
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


PROMOTED_NOTE = "moved to val: the hash split left 'val' empty"


def ensure_val_item(items: list[dict], val_fraction: float = DEFAULT_VAL_FRACTION) -> dict | None:
    """Give 'val' one item when the hash split left it empty and there are 2 or more items; return it.

    The item moved is the one whose hash position lies nearest the val range: the
    lowest-hash train item (or, when train has fewer than 2 items, the highest-hash
    test item, so train keeps what it has). It is marked with "split_note".
    Nothing moves when val already has an item, when there are fewer than 2 items,
    or when --val-fraction is 0 (the user asked for no validation split).
    """
    if val_fraction <= 0 or len(items) < 2 or any(item["split"] == "val" for item in items):
        return None
    train = [item for item in items if item["split"] == "train"]
    test = [item for item in items if item["split"] == "test"]
    if len(train) >= 2 or not test:
        chosen = min(train, key=lambda item: (split_position(item["name"]), item["name"]))
    else:
        chosen = max(test, key=lambda item: (split_position(item["name"]), item["name"]))
    chosen["split"] = "val"
    chosen["split_note"] = PROMOTED_NOTE
    return chosen


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
    """Write DATASET/manifest.json atomically; items are sorted by name for stable diffs.

    Every item must name a distinct file: two items of one name (or of names that
    differ only in case, one file on Windows and macOS) would share images/NAME.png,
    and the manifest would describe a file that was overwritten.
    """
    path = Path(dataset) / "manifest.json"
    seen: dict[str, str] = {}
    for item in items:
        key = item["name"].casefold()
        if key in seen:
            raise ValueError(f"items {seen[key]!r} and {item['name']!r} would share images/{item['name']}.png")
        seen[key] = item["name"]
    manifest = {"format_version": FORMAT_VERSION, **extra,
                "items": sorted(items, key=lambda item: item["name"]), "failures": failures or []}
    # NaN (an item without tissue) is not JSON: the writer stores null.
    write_json_atomic(path, manifest, indent=1)
    return path


def item_files(dataset: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """(images/NAME.png, labels/NAME.png) of one item."""
    dataset = Path(dataset)
    return dataset / "images" / f"{name}.png", dataset / "labels" / f"{name}.png"


def previous_item_names(dataset: str | os.PathLike) -> set[str]:
    """Names of the items in DATASET's current manifest (empty when there is none or it is unreadable)."""
    try:
        manifest = json.loads((Path(dataset) / "manifest.json").read_text(encoding="utf-8"))
        return {item["name"] for item in manifest["items"] if isinstance(item.get("name"), str)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def remove_stale_items(dataset: str | os.PathLike, names: Iterable[str]) -> list[str]:
    """Delete the image and label files of items an earlier run wrote that the new manifest no longer lists.

    Only names from the earlier manifest are touched, never other files in the folder.
    Returns the names whose files were removed.
    """
    removed = []
    for name in sorted(names):
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            continue  # a manifest is read from disk: never follow a name out of the folder
        gone = False
        for path in item_files(dataset, name):
            try:
                path.unlink()
                gone = True
            except FileNotFoundError:
                pass
        if gone:
            removed.append(name)
    return removed


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

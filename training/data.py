"""Reading a dataset folder and sampling training crops where there is tissue.

A dataset is DATASET/manifest.json + images/NAME.png (RGB) + labels/NAME.png
(class indices, see bonemarrow.runtime.io.labels). Everything is checked up front
so a broken dataset fails in one line before any training time is spent.

Crops are drawn around a pixel of a randomly chosen class present in the image
(bone, fat, other, and background within reach of tissue, each equally likely),
so rare bone is seen as often as the abundant classes and the hard background
(lumens, tears, the core's edge: white like fat) as often as fat; a small share
of crops is drawn uniformly so the networks also see plain glass. Every crop's randomness comes from
(seed, step, index in batch) alone, which makes a run reproducible and a resumed
run identical to an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.errors import first_line
from bonemarrow.runtime.io.labels import read_label_png
from bonemarrow.runtime.labels import BACKGROUND, CLASSES, NUM_CLASSES, TISSUE_CLASSES
from bonemarrow.training.augment import AugmentConfig, augment_crop, half_resolution

SPLITS = ("train", "val", "test")
#: Share of crops centred on a uniformly random pixel instead of a tissue pixel.
UNIFORM_CROP_SHARE = 0.1
#: At most this many candidate centre pixels are kept per class and image.
MAX_CANDIDATES = 20000
#: Background pixels this close to tissue (in pixels) are crop centres of their own class.
NEAR_TISSUE = 24


class DatasetError(ValueError):
    """A dataset folder that cannot be trained on (message is one line naming the file)."""


@dataclass
class Sample:
    """One image with its label map, kept in memory."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray  # (H, W) uint8 class indices
    # Candidate crop centres per class: (N, 2) int32 (y, x).
    centres: dict[int, np.ndarray] = field(default_factory=dict)
    _half: np.ndarray | None = field(default=None, repr=False)

    @property
    def half(self) -> np.ndarray:
        """The image at half resolution, made on first use (zoomed-out crops sample it)."""
        if self._half is None:
            self._half = half_resolution(self.image)
        return self._half


@dataclass
class Dataset:
    root: Path
    manifest_sha256: str
    splits: dict[str, list[Sample]]

    def split(self, name: str) -> list[Sample]:
        return self.splits.get(name, [])

    def class_pixel_counts(self, split: str = "train") -> np.ndarray:
        counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        for sample in self.split(split):
            counts += np.bincount(sample.labels.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
        return counts


def read_rgb(path: Path) -> np.ndarray:
    """An RGB uint8 image, or a DatasetError naming the file."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DatasetError(f"{path}: missing image file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DatasetError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _candidate_centres(labels: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Up to MAX_CANDIDATES crop centres per class: each tissue class, and background near tissue."""
    near = cv2.dilate((labels != BACKGROUND).view(np.uint8), np.ones((2 * NEAR_TISSUE + 1,) * 2, np.uint8)) > 0
    masks = {cls: labels == cls for cls in TISSUE_CLASSES}
    masks[BACKGROUND] = (labels == BACKGROUND) & near
    centres = {}
    for cls in sorted(masks):
        ys, xs = np.nonzero(masks[cls])
        if ys.size == 0:
            continue
        if ys.size > MAX_CANDIDATES:
            keep = rng.choice(ys.size, MAX_CANDIDATES, replace=False)
            ys, xs = ys[keep], xs[keep]
        centres[cls] = np.stack([ys, xs], axis=1).astype(np.int32)
    return centres


def _read_manifest(root: Path) -> tuple[dict, str]:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a dataset folder")
    path = root / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{path}: missing (a dataset needs manifest.json, images/ and labels/)")
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not valid JSON ({first_line(error)})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items"), list):
        raise DatasetError(f"{path}: no 'items' list")
    if manifest.get("format_version") != 1:
        raise DatasetError(f"{path}: format_version {manifest.get('format_version')!r} is not supported (need 1)")
    return manifest, hashlib.sha256(raw).hexdigest()


#: How to get a training and a validation split, quoted in the errors that find one empty.
SPLIT_FIX = ("rerun bm-prepare or bm-synth on 2 or more images (they give 'val' at least one; "
             "see --val-fraction) or set an item's \"split\" in manifest.json")


def _split_counts(manifest: dict) -> str:
    counts = {name: 0 for name in SPLITS}
    for item in manifest["items"]:
        if isinstance(item, dict) and item.get("split") in counts:
            counts[item["split"]] += 1
    return ", ".join(f"{count} {name}" for name, count in counts.items())


def load_dataset(root: str | os.PathLike, splits: Sequence[str] = ("train", "val"), seed: int = 0) -> Dataset:
    """Read and check every image/label pair of the given splits into memory."""
    root = Path(root)
    manifest, digest = _read_manifest(root)
    manifest_path = root / "manifest.json"
    rng = np.random.default_rng([seed, 0x5EED])
    out: dict[str, list[Sample]] = {name: [] for name in splits}
    seen = set()
    for index, item in enumerate(manifest["items"]):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise DatasetError(f"{manifest_path}: item {index} has no name")
        name, split = item["name"], item.get("split")
        if split not in SPLITS:
            raise DatasetError(f"{manifest_path}: item {name!r} has split {split!r}, not one of {list(SPLITS)}")
        if name in seen:
            raise DatasetError(f"{manifest_path}: item name {name!r} appears twice")
        seen.add(name)
        if split not in out:
            continue
        image_path, label_path = root / "images" / f"{name}.png", root / "labels" / f"{name}.png"
        image = read_rgb(image_path)
        if not label_path.is_file():
            raise DatasetError(f"{label_path}: missing label file")
        try:
            labels = read_label_png(label_path)
        except ValueError as error:
            raise DatasetError(str(error)) from None
        if labels.shape != image.shape[:2]:
            raise DatasetError(
                f"{label_path}: size {labels.shape[1]}x{labels.shape[0]} differs from its image "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        declared = (item.get("height"), item.get("width"))
        if declared != (None, None) and declared != image.shape[:2]:
            raise DatasetError(
                f"{image_path}: size {image.shape[1]}x{image.shape[0]} differs from the manifest's "
                f"{item.get('width')}x{item.get('height')}"
            )
        out[split].append(Sample(name, image, labels, _candidate_centres(labels, rng)))
    if "train" in out and not out["train"]:
        raise DatasetError(f"{manifest_path}: no items in the 'train' split ({_split_counts(manifest)}): "
                           f"{SPLIT_FIX}")
    if "val" in out and not out["val"]:
        raise DatasetError(f"{manifest_path}: no items in the 'val' split ({_split_counts(manifest)}; validation "
                           f"picks the checkpoints): {SPLIT_FIX}")
    return Dataset(root, digest, out)


def check_crop_fits(dataset: Dataset, crop: int) -> None:
    """Training crops may not be larger than the smallest training image (no padding of labels)."""
    for sample in dataset.split("train"):
        height, width = sample.labels.shape
        if min(height, width) < crop:
            raise DatasetError(f"{dataset.root / 'images' / sample.name}.png: image {width}x{height} is smaller than the {crop}px crop; use a smaller --crop")


class CropSampler:
    """Deterministic augmented crops: batch(step) depends only on (seed, step)."""

    def __init__(self, samples: Sequence[Sample], crop: int, seed: int, augment: AugmentConfig | None = None) -> None:
        if not samples:
            raise DatasetError("no training samples")
        self.samples = list(samples)
        self.crop = crop
        self.seed = seed
        self.augment = augment if augment is not None else AugmentConfig()

    def centre(self, sample: Sample, rng: np.random.Generator) -> tuple[float, float]:
        height, width = sample.labels.shape
        if sample.centres and rng.random() >= UNIFORM_CROP_SHARE:
            classes = sorted(sample.centres)
            points = sample.centres[classes[rng.integers(len(classes))]]
            y, x = points[rng.integers(len(points))]
            return float(y), float(x)
        return float(rng.uniform(0, height)), float(rng.uniform(0, width))

    def sample(self, step: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (crop, crop, 3) uint8, labels (crop, crop) uint8) for one batch slot."""
        rng = np.random.default_rng([self.seed, step, index])
        sample = self.samples[rng.integers(len(self.samples))]
        centre = self.centre(sample, rng)
        half = sample.half if self.augment.scale_range[0] < 1 else None
        return augment_crop(sample.image, sample.labels, centre, self.crop, rng, self.augment, half)

    def batch(self, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, 3, crop, crop) uint8 and labels (B, crop, crop) int64."""
        pairs = [self.sample(step, i) for i in range(batch_size)]
        images = np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2)
        labels = np.stack([p[1] for p in pairs]).astype(np.int64)
        return np.ascontiguousarray(images), labels


def describe(dataset: Dataset) -> str:
    counts = dataset.class_pixel_counts("train")
    share = counts / max(1, counts.sum())
    parts = ", ".join(f"{name} {100 * s:.1f}%" for name, s in zip(CLASSES, share))
    return (f"{dataset.root}: {len(dataset.split('train'))} train / {len(dataset.split('val'))} val images; "
            f"train pixels: {parts}")

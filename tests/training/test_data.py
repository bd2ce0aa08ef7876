"""Dataset checks, crop sampling and augmentation."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bonemarrow.runtime.io.labels import write_label_png
from bonemarrow.runtime.labels import COLORS, TISSUE_CLASSES, colorize
from bonemarrow.training.augment import AugmentConfig, augment_crop, half_resolution, stain_jitter
from bonemarrow.training.data import CropSampler, DatasetError, check_crop_fits, load_dataset
from tr_fixtures import draw_pair, write_dataset


def test_loads_splits_and_hash(tiny_dataset):
    dataset = load_dataset(tiny_dataset)
    assert [s.name for s in dataset.split("train")] == ["train_0", "train_1", "train_2"]
    assert len(dataset.split("val")) == 1
    sample = dataset.split("train")[0]
    assert sample.image.shape == (96, 128, 3) and sample.labels.shape == (96, 128)
    assert len(dataset.manifest_sha256) == 64
    assert set(sample.centres) <= {0, *TISSUE_CLASSES} and sample.centres


def _edit_manifest(root, change):
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda root: (root / "manifest.json").unlink(), "manifest.json: missing"),
        (lambda root: (root / "manifest.json").write_text("{"), "not valid JSON"),
        (lambda root: _edit_manifest(root, lambda m: m.update(items=[])), "no items in the 'train' split"),
        (lambda root: _edit_manifest(root, lambda m: m.update(items=[i for i in m["items"] if i["split"] != "val"])),
         "no items in the 'val' split"),
        (lambda root: (root / "labels" / "train_1.png").unlink(), "train_1.png: missing label file"),
        (lambda root: (root / "images" / "train_2.png").write_bytes(b"junk"), "train_2.png: not a readable image"),
        (lambda root: write_label_png(root / "labels" / "train_0.png", np.zeros((10, 12), np.uint8)),
         "size 12x10 differs from its image 128x96"),
        (lambda root: _edit_manifest(root, lambda m: m["items"][0].update(width=100)), "differs from the manifest"),
        (lambda root: _edit_manifest(root, lambda m: m["items"][0].update(split="dev")), "has split 'dev'"),
    ],
)
def test_unusable_datasets_fail_in_one_line(tiny_dataset, breakage, message):
    breakage(tiny_dataset)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(tiny_dataset)
    assert "\n" not in str(info.value)


def test_missing_folder_and_oversized_crop(tmp_path, tiny_dataset):
    with pytest.raises(DatasetError, match="not a dataset folder"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="smaller than the 128px crop"):
        check_crop_fits(load_dataset(tiny_dataset), 128)


def test_crops_are_deterministic_and_mostly_on_tissue(tiny_dataset):
    samples = load_dataset(tiny_dataset).split("train")
    sampler = CropSampler(samples, 32, seed=3)
    images, labels = sampler.batch(step=5, batch_size=4)
    again_images, again_labels = CropSampler(samples, 32, seed=3).batch(step=5, batch_size=4)
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4, 32, 32)
    assert np.array_equal(images, again_images) and np.array_equal(labels, again_labels)
    assert not np.array_equal(labels, sampler.batch(step=6, batch_size=4)[1])
    # Centre pixels land on tissue for (almost) all crops: background is about half the image.
    centres = np.concatenate([sampler.batch(step, 8)[1][:, 16, 16] for step in range(10)])
    assert (centres != 0).mean() > 0.8


def test_identity_augmentation_is_an_exact_crop():
    rng = np.random.default_rng(0)
    image, labels = draw_pair(rng, 96, 128)
    out_image, out_labels = augment_crop(image, labels, (47.5, 63.5), 32, rng, AugmentConfig.none())
    assert np.array_equal(out_image, image[32:64, 48:80])
    assert np.array_equal(out_labels, labels[32:64, 48:80])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), crop=st.sampled_from([32, 64]))
def test_geometry_keeps_image_and_labels_aligned(seed, crop):
    rng = np.random.default_rng(seed)
    _, labels = draw_pair(rng, 96, 128)
    image = colorize(labels)  # pixels are exactly their class colour
    config = AugmentConfig(rotate_prob=1.0, elastic_prob=0.5).geometry_only()
    centre = (float(rng.uniform(0, 96)), float(rng.uniform(0, 128)))
    out_image, out_labels = augment_crop(image, labels, centre, crop, rng, config, half_resolution(image))
    assert out_image.shape == (crop, crop, 3) and out_labels.shape == (crop, crop)
    assert set(np.unique(out_labels)) <= set(np.unique(labels))
    # Linear interpolation blurs class borders only. Zoomed in by z, one source pixel spans z output
    # pixels, and nearest-neighbour labels round by half a pixel: away from a border (radius
    # ceil(z_max) + 1) every pixel still has exactly its label's colour. Zoomed out, the crop samples
    # the half-resolution copy, whose area averaging reaches one of its pixels past a border.
    matches = (out_image == np.array(COLORS, np.uint8)[out_labels]).all(axis=2)
    radius = math.ceil(config.scale_range[1]) + 1
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    border = cv2.dilate(out_labels, kernel) != cv2.erode(out_labels, kernel)
    assert (matches | border).mean() >= 0.98  # image and labels warped differently fail this on most crops


def test_stain_jitter_keeps_glass_white_and_identity_at_zero():
    rng = np.random.default_rng(1)
    image, _ = draw_pair(rng, 32, 32)
    image = image.astype(np.float32)
    image[:4] = 255.0
    unchanged = stain_jitter(image, rng, AugmentConfig(stain_scale=0.0, stain_shift=0.0))
    assert np.abs(unchanged - image).max() < 1.0
    jittered = stain_jitter(image, rng, AugmentConfig(stain_scale=0.3, stain_shift=0.05))
    assert np.abs(jittered[:4] - 255.0).max() < 1.0
    assert np.abs(jittered[4:] - image[4:]).max() > 2.0


def test_rgb_channel_order_survives_reading(tmp_path):
    root = write_dataset(tmp_path / "ds", {"train": 1, "val": 1}, 32, 32)
    sample = load_dataset(root).split("train")[0]
    bgr = cv2.imread(str(root / "images" / "train_0.png"))
    assert np.array_equal(sample.image, bgr[..., ::-1])

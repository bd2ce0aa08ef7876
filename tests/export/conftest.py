"""Shared, session-scoped artefacts for the export tests: tiny real models, checkpoints, a dataset.

Exports are the slow part, so each model/precision is exported once and the
tests read the result. Real presets are used, shrunk where the preset allows
(U-Net init_features 4); the DeepLab backbones cannot shrink.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bonemarrow.export.exporter import ExportOptions, export_checkpoint
from bonemarrow.runtime.label_io import write_label_png

# Small gate shapes (multiples of the presets' divisor 32): batch > 1, non-square, three of them.
SMALL_SHAPES = ((2, 64, 96), (3, 96, 64), (1, 32, 128))


def tiny_model(preset: str, seed: int = 0):
    from bonemarrow.training.models import build_model

    torch.manual_seed(seed)
    return build_model(preset, unet_features=4).eval()


@pytest.fixture(scope="session")
def compact_checkpoint(tmp_path_factory) -> Path:
    from bonemarrow.training.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "compact.pt"
    save_checkpoint(path, tiny_model("compact"), {})
    return path


def _dataset(root: Path, count: int = 6, width: int = 160, height: int = 128) -> Path:
    """A dataset folder in the COMMON format, from the synthetic biopsy generator when it is there."""
    try:
        from bonemarrow.training.synth import generate_biopsy, image_rng
    except ImportError:  # pragma: no cover - the data helper's generator not installed
        generate_biopsy = None
    from bonemarrow.export.parity import synthetic_tiles

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    items = []
    for index in range(count):
        if generate_biopsy is not None:
            rgb, labels = generate_biopsy(image_rng(3, index), width, height)
        else:
            rgb = synthetic_tiles(1, height, width, index)[0].transpose(1, 2, 0)
            labels = np.where(rgb.mean(axis=2) > 235, 0, 3).astype(np.uint8)
        name = f"img{index}"
        cv2.imwrite(str(root / "images" / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        write_label_png(root / "labels" / f"{name}.png", labels)
        items.append({"name": name, "split": ("train", "train", "val")[index % 3], "width": width, "height": height})
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "items": items, "failures": []}))
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("data") / "ds")


def small_options(**kwargs) -> ExportOptions:
    kwargs.setdefault("shapes", SMALL_SHAPES)
    kwargs.setdefault("calibration_size", 96)
    kwargs.setdefault("calibration_tiles", 6)
    return ExportOptions(**kwargs)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, compact_checkpoint, dataset):
    """Export the tiny compact checkpoint once per precision on first use: {precision: ExportResult}."""
    out_dir = tmp_path_factory.mktemp("models")
    cache = {}

    def get(precision: str):
        if precision not in cache:
            options = small_options(precision=precision, calibration=dataset if precision == "int8" else None)
            cache[precision] = export_checkpoint(compact_checkpoint, out_dir / f"compact-{precision}.onnx", options)
        return cache[precision]

    return get

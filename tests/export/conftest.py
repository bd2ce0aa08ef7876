"""Shared, session-scoped artefacts for the export tests: tiny real models, checkpoints, a dataset.

Exports are the slow part, so each model/precision is exported once and the
tests read the result. Real presets are used, shrunk where the preset allows
(U-Net init_features 4); the DeepLab backbones cannot shrink.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
pytest.importorskip("torch", reason="torch is not installed (pip install 'bonemarrow-seg[export]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'bonemarrow-seg[export]')")
pytest.importorskip("onnxsim", reason="onnxsim is not installed (pip install 'bonemarrow-seg[export]')")
import torch

from bonemarrow.export.exporter import ExportOptions, export_checkpoint

# Small gate shapes (multiples of the presets' divisor 32): batch > 1, non-square, three of them.
SMALL_SHAPES = ((2, 64, 96), (3, 96, 64), (1, 32, 128))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """PyTorch with one thread while an export test runs (restored after): on a shared 2-core
    machine its OpenMP threads otherwise stall for seconds per forward pass."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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


def as_if_saved_on_gpu(source: Path, target: Path) -> Path:
    """Copy a checkpoint with every tensor storage tagged 'cuda:0', as torch.save writes it on a GPU.

    The pickle memoises the location string, so rewriting its one occurrence re-tags every storage.
    """
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info, data)
    return target


@pytest.fixture(scope="session")
def gpu_checkpoint(tmp_path_factory, compact_checkpoint) -> Path:
    """The compact checkpoint as if trained and saved on a GPU."""
    return as_if_saved_on_gpu(compact_checkpoint, tmp_path_factory.mktemp("ckpt-gpu") / "compact-gpu.pt")


def _dataset(root: Path, count: int = 6, width: int = 160, height: int = 128) -> Path:
    """A dataset folder in the project's format, from the synthetic biopsy generator (2/3 train, 1/3 val)."""
    from bonemarrow.training.dataset_io import write_item, write_manifest
    from bonemarrow.training.synth import generate_biopsy, image_rng

    items = []
    for index in range(count):
        rgb, labels = generate_biopsy(image_rng(3, index), width, height)
        item = write_item(root, f"img{index}", rgb, labels, source="synthetic")
        item["split"] = ("train", "train", "val")[index % 3]  # a tiny set: fix the splits by hand
        items.append(item)
    write_manifest(root, items)
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("data") / "ds")


def small_options(**kwargs) -> ExportOptions:
    kwargs.setdefault("shapes", SMALL_SHAPES)
    kwargs.setdefault("threads", 1)  # the test machine is shared: one thread avoids OpenMP stalls
    kwargs.setdefault("calibration_size", 96)
    kwargs.setdefault("calibration_tiles", 6)
    return ExportOptions(**kwargs)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, compact_checkpoint, gpu_checkpoint, dataset):
    """Export the tiny compact checkpoint once per precision on first use: {precision: ExportResult}.

    fp32 comes from the GPU-saved copy (trained on a GPU, exported on this CPU), the others from
    the CPU-saved file: both kinds of checkpoint are exercised without an extra export.
    """
    out_dir = tmp_path_factory.mktemp("models")
    cache = {}

    def get(precision: str):
        if precision not in cache:
            options = small_options(precision=precision, calibration=dataset if precision == "int8" else None)
            source = gpu_checkpoint if precision == "fp32" else compact_checkpoint
            cache[precision] = export_checkpoint(source, out_dir / f"compact-{precision}.onnx", options)
        return cache[precision]

    return get

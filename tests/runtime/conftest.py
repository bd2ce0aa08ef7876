"""Shared fixtures for the runtime tests: tiny ONNX models on disk and ORT predictors."""
from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort
import pytest

import rt_models


def ort_predict(model):
    """A predict(batch) callable over an in-memory ONNX model, one thread (the CI box is small)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(["probs"], {"image": batch})[0]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """Valid and broken models saved once per test session."""
    root = tmp_path_factory.mktemp("models")
    for name in ("pixelwise", "constant", "receptive"):
        rt_models.save(getattr(rt_models, name)(), root / f"{name}.onnx")
    return root


def tissue_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """White glass with a textured pink/purple blob in the middle (a scan in miniature)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 245, dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    blob = ((yy - height / 2) / (height * 0.3)) ** 2 + ((xx - width / 2) / (width * 0.3)) ** 2 < 1
    texture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[blob] = texture[blob] // 2 + np.array([90, 20, 80], dtype=np.uint8)
    return image


@functools.lru_cache(maxsize=1)
def cuda_status() -> str:
    """'runs' (a CUDA session really starts), 'cannot start' (a CUDA build without a usable GPU or its
    libraries) or 'absent' (a CPU build): tests of the fallback line need the last two."""
    import tempfile
    from pathlib import Path

    from bonemarrow.runtime.providers import CUDA, ProviderError, open_session

    if CUDA not in ort.get_available_providers():
        return "absent"
    with tempfile.TemporaryDirectory() as scratch:
        path = rt_models.save(rt_models.pixelwise(), Path(scratch) / "m.onnx")
        try:
            open_session(path, "cuda")
        except ProviderError:
            return "cannot start"
    return "runs"

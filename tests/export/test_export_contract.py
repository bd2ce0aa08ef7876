"""An exported fp32 model honours the runtime's model contract and matches PyTorch."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from bonemarrow.export.metadata import read_metadata
from bonemarrow.runtime.contract import file_sha256
from bonemarrow.runtime.labels import CLASSES, COLORS
from bonemarrow.runtime.model import open_model
from bonemarrow.training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def fp32(exported):
    result = exported("fp32")
    assert result.passed, result.report["gates"]["fp32"]["failures"]
    return result


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_io_names_types_and_dynamic_axes(fp32):
    model = onnx.load(fp32.model_path)
    (image,), (probs,) = model.graph.input, model.graph.output
    assert image.name == "image" and image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert probs.name == "probs" and probs.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(image) == ["batch", 3, "height", "width"]
    assert _dims(probs) == ["batch", 4, "height", "width"]
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]


def test_runtime_accepts_it_and_reads_the_contract_keys(fp32, gpu_checkpoint):
    info = open_model(fp32.model_path, "cpu", 1).info
    assert info.precision == "fp32" and info.tile == 512 and info.divisor == 32
    assert info.classes == CLASSES and info.colors == COLORS
    assert [m["name"] for m in info.members] == ["unet", "deeplabv3"]
    assert sum(m["weight"] for m in info.members) == pytest.approx(1.0)
    meta = read_metadata(onnx.load(fp32.model_path))
    assert meta["source_checkpoint_sha256"] == file_sha256(gpu_checkpoint)
    assert meta["preset"] == "compact" and meta["opset"] == 17
    assert meta["versions"]["torch"] == torch.__version__ and meta["versions"]["onnxruntime"] == ort.__version__
    assert meta["versions"]["onnx"] == onnx.__version__
    assert dt.datetime.fromisoformat(meta["exported_at"]).tzinfo is not None
    assert meta["parity"]["fp32"]["passed"] is True


@pytest.mark.parametrize("shape", [(1, 3, 64, 160), (4, 3, 128, 32)])
def test_runs_at_other_sizes_and_batches_like_pytorch(fp32, compact_checkpoint, shape):
    session = ort.InferenceSession(str(fp32.model_path), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    probs = session.run(None, {"image": image})[0]
    model, _ = load_checkpoint(compact_checkpoint)
    with torch.no_grad():
        reference = model(torch.from_numpy(image)).numpy()
    assert probs.shape == (shape[0], 4, shape[2], shape[3]) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(probs - reference).max() <= 1e-4


def test_parity_report_lies_beside_the_model(fp32):
    report_path = fp32.model_path.with_name("compact-fp32.parity.json")
    assert fp32.report_path == report_path
    report = json.loads(report_path.read_text())
    gate = report["gates"]["fp32"]
    assert report["passed"] and gate["passed"] and report["simplified"]
    assert report["model_sha256"] == file_sha256(fp32.model_path)
    shapes = {tuple(s["shape"]) for s in gate["samples"]}
    assert len(shapes) >= 3
    assert any(b > 1 for b, _, _, _ in shapes) and any(h != w for _, _, h, w in shapes)
    assert all(h % 32 == 0 and w % 32 == 0 for _, _, h, w in shapes)
    assert {s["kind"] for s in gate["samples"]} == {"synthetic", "random"}
    assert gate["max_abs_prob_diff"] <= 1e-4 and gate["label_agreement"] >= 0.9999

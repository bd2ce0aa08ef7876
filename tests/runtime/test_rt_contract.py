"""Every contract violation is refused with one clear line naming the file; good models load."""
from __future__ import annotations


import numpy as np
import pytest

import rt_models
from bonemarrow.runtime.contract import ModelContractError
from bonemarrow.runtime.model import open_model
from bonemarrow.runtime.segmenter import Segmenter
from bonemarrow.runtime.tiling import TilingConfig


def saved(tmp_path, model, name="model.onnx"):
    return rt_models.save(model, tmp_path / name)


def refuse(path, match):
    with pytest.raises(ModelContractError, match=match) as caught:
        open_model(path, "cpu", 1)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "Traceback" not in message
    return message


def test_valid_model_loads_with_its_metadata(tmp_path):
    path = saved(tmp_path, rt_models.pixelwise(rt_models.metadata(tile=96, divisor=32, extra="kept")))
    model = open_model(path, "cpu", 1)
    info = model.info
    assert (info.tile, info.divisor, info.precision, info.format_version) == (96, 32, "fp32", 1)
    assert info.classes == ("background", "bone", "fat", "other")
    assert info.metadata["extra"] == "kept" and len(model.sha256) == 64


@pytest.mark.parametrize("builder,match", [
    (rt_models.float_input, "tensor\\(float\\), expected tensor\\(uint8\\)"),
    (rt_models.rank3_input, "expected rank 4"),
    (rt_models.wrong_output_channels, "3 classes, expected 4"),
    (lambda: rt_models.pixelwise(out_name="scores"), "no output 'probs'"),
])
def test_wrong_inputs_and_outputs(tmp_path, builder, match):
    refuse(saved(tmp_path, builder()), match)


def test_wrong_input_name_and_fixed_size(tmp_path):
    model = rt_models.pixelwise()
    model.graph.input[0].name = "pixels"
    model.graph.node[0].input[0] = "pixels"
    refuse(saved(tmp_path, model, "a.onnx"), "named 'pixels'")
    model = rt_models.pixelwise()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = 64
    refuse(saved(tmp_path, model, "b.onnx"), "fixed height")


@pytest.mark.parametrize("meta,match", [
    (None, "no 'bonemarrow' metadata"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({k: v for k, v in rt_models.metadata().items() if k != "divisor"}, "lacks divisor"),
    (rt_models.metadata(format_version="1"), "format_version' must be an integer"),
    (rt_models.metadata(format_version=2), "format_version 2 is not supported"),
    (rt_models.metadata(classes=["bg", "bone", "fat"]), "list of 4 names"),
    (rt_models.metadata(classes=["background", "fat", "bone", "other"]), "in this order"),
    (rt_models.metadata(colors=[[0, 0, 0]] * 3), "colors"),
    (rt_models.metadata(colors=[[0, 0, 0], [300, 0, 0], [0, 255, 0], [0, 0, 255]]), "colors"),
    (rt_models.metadata(tile=0), "'tile' must be a positive integer"),
    (rt_models.metadata(divisor=True), "'divisor' must be a positive integer"),
    (rt_models.metadata(tile=100, divisor=32), "not a multiple of divisor"),
    (rt_models.metadata(members=[]), "members"),
    (rt_models.metadata(members=[{"name": "a"}]), "members"),
    (rt_models.metadata(precision="fp8"), "precision"),
])
def test_malformed_metadata(tmp_path, meta, match):
    refuse(saved(tmp_path, rt_models.pixelwise(meta)), match)


def test_corrupt_truncated_empty_and_missing_files(tmp_path):
    good = rt_models.pixelwise().SerializeToString()
    (tmp_path / "empty.onnx").write_bytes(b"")
    refuse(tmp_path / "empty.onnx", "empty")
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    refuse(tmp_path / "cut.onnx", "cannot load the model")
    (tmp_path / "junk.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    refuse(tmp_path / "junk.onnx", "cannot load the model")
    refuse(tmp_path / "absent.onnx", "not found")
    refuse(tmp_path, "not a file")


def test_open_model_refuses_too_and_a_good_model_segments(tmp_path):
    bad = saved(tmp_path, rt_models.pixelwise(rt_models.metadata(precision="fp64")), "bad.onnx")
    with pytest.raises(ModelContractError):
        open_model(bad, provider="cpu")
    model = open_model(saved(tmp_path, rt_models.constant()), provider="cpu")
    result = Segmenter(model, TilingConfig(tile=32)).segment(np.zeros((40, 50, 3), np.uint8))
    assert result.labels.shape == (40, 50) and (result.labels == 2).all()
    assert result.counts.tolist() == [0, 0, 2000, 0] and result.fractions["fat_fraction"] == 1.0
    assert model.provider == "CPUExecutionProvider"

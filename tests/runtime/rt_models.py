"""Tiny ONNX models that honour (or deliberately break) the runtime's model contract.

Built with onnx.helper so the tests need no trained weights:
* pixelwise: 1x1 convolution with small integer weights on the cast image, then
  softmax over channels. Logits are exact integers / 16, so two classes either tie
  exactly or differ clearly: labels can be compared exactly across tilings.
* constant: the same probabilities at every pixel, whatever the image.
* receptive: two 3x3 convolutions (zero padding) -> receptive field radius 2.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RECEPTIVE_RADIUS = 2


def metadata(**overrides) -> dict:
    meta = {
        "format_version": 1,
        "classes": ["background", "bone", "fat", "other"],
        "colors": [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
        "tile": 64,
        "divisor": 8,
        "members": [{"name": "test", "weight": 1.0}],
        "precision": "fp32",
    }
    meta.update(overrides)
    return meta


def _graph(nodes, inits, *, in_type=TensorProto.UINT8, in_shape=("B", 3, "H", "W"), in_name="image",
           out_type=TensorProto.FLOAT, out_shape=("B", 4, "H", "W"), out_name="probs"):
    inputs = [helper.make_tensor_value_info(in_name, in_type, list(in_shape))]
    outputs = [helper.make_tensor_value_info(out_name, out_type, list(out_shape))]
    return helper.make_graph(nodes, "test", inputs, outputs, initializer=inits)


def _model(graph, meta: dict | str | None) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        value = meta if isinstance(meta, str) else json.dumps(meta)
        helper.set_model_props(model, {"bonemarrow": value})
    onnx.checker.check_model(model)
    return model


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


# Integer weights: background likes bright pixels, bone red, fat green-ish, other blue.
PIXEL_WEIGHTS = np.array([[1, 1, 1], [2, -1, -1], [-1, 2, -1], [-1, -1, 2]], dtype=np.float32).reshape(4, 3, 1, 1)
PIXEL_BIAS = np.array([-600, 0, 0, 0], dtype=np.float32)


def pixelwise(meta: dict | str | None = "default", out_name: str = "probs") -> onnx.ModelProto:
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["x", "w", "b"], ["logits"]),
        helper.make_node("Mul", ["logits", "scale"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], [out_name], axis=1),
    ]
    inits = [_init("w", PIXEL_WEIGHTS), _init("b", PIXEL_BIAS), _init("scale", np.float32(1 / 16))]
    return _model(_graph(nodes, inits, out_name=out_name), metadata() if meta == "default" else meta)


def pixelwise_numpy(batch: np.ndarray) -> np.ndarray:
    """Reference for `pixelwise` in numpy (float64), for sanity checks."""
    x = batch.astype(np.float64)
    logits = np.einsum("kc,bchw->bkhw", PIXEL_WEIGHTS[:, :, 0, 0], x) + PIXEL_BIAS[None, :, None, None]
    logits /= 16
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


CONSTANT_PROBS = np.array([0.1, 0.2, 0.6, 0.1], dtype=np.float32)


def constant(meta: dict | None = None) -> onnx.ModelProto:
    """probs = CONSTANT_PROBS everywhere: Softmax(0 * x + log p)."""
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["x", "w", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [_init("w", np.zeros((4, 3, 1, 1))), _init("b", np.log(CONSTANT_PROBS))]
    return _model(_graph(nodes, inits), meta or metadata())


def receptive(meta: dict | None = None, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "s"], ["xs"]),
        helper.make_node("Conv", ["xs", "w1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["logits"], pads=[1, 1, 1, 1]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [
        _init("s", np.float32(1 / 255)),
        _init("w1", rng.normal(0, 1, (6, 3, 3, 3))), _init("b1", rng.normal(0, 0.1, 6)),
        _init("w2", rng.normal(0, 1, (4, 6, 3, 3))), _init("b2", np.array([1.0, 0, 0, 0])),
    ]
    return _model(_graph(nodes, inits), meta or metadata())


# ------------------------------------------------------------ broken variants
def float_input() -> onnx.ModelProto:
    nodes = [helper.make_node("Softmax", ["image"], ["pre"], axis=1),
             helper.make_node("Pad", ["pre", "pads"], ["probs"])]
    inits = [numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 1, 0, 0], dtype=np.int64), "pads")]
    return _model(_graph(nodes, inits, in_type=TensorProto.FLOAT), metadata())


def rank3_input() -> onnx.ModelProto:
    nodes = [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["x", "axes"], ["x4"]),
             helper.make_node("Concat", ["x4", "x4", "x4", "x4"], ["c"], axis=1),
             helper.make_node("Softmax", ["c"], ["probs"], axis=1)]
    inits = [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")]
    return _model(_graph(nodes, inits, in_shape=("B", "H", "W")), metadata())


def wrong_output_channels() -> onnx.ModelProto:
    nodes = [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("Softmax", ["x"], ["probs"], axis=1)]
    return _model(_graph(nodes, [], out_shape=("B", 3, "H", "W")), metadata())


def save(model: onnx.ModelProto, path: Path) -> Path:
    path = Path(path)
    path.write_bytes(model.SerializeToString())
    return path

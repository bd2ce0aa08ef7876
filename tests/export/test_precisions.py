"""fp16 and int8 variants: contract kept, gates recorded, and the runtime runs every precision."""
from __future__ import annotations

import importlib.util
from collections import Counter

import numpy as np
import onnx
import pytest

from bonemarrow.runtime.model import open_model
from bonemarrow.runtime.segmenter import Segmenter
from bonemarrow.runtime.tiling import TilingConfig


# fp16 conversion uses onnxconverter-common (the `export` extra); without it only fp16 is skipped.
HAS_CONVERTER = importlib.util.find_spec("onnxconverter_common") is not None
needs_converter = pytest.mark.skipif(not HAS_CONVERTER, reason="onnxconverter-common is not installed")
FP16 = pytest.param("fp16", marks=needs_converter)


def _producers(model):
    return {out: node for node in model.graph.node for out in node.output}


@pytest.mark.parametrize("precision", [FP16, "int8"])
def test_variant_keeps_io_types_passes_its_gate_and_is_smaller(exported, precision):
    result = exported(precision)
    assert result.passed, result.report["gates"]
    info = open_model(result.model_path, "cpu", 1).info  # the runtime's contract check: uint8 in, float32 out
    assert info.precision == precision
    gates = result.report["gates"]
    assert set(gates) == {"fp32", precision} and all(g["passed"] for g in gates.values())
    assert gates[precision]["provider"] == "CPUExecutionProvider"
    fp32_size = exported("fp32").report["model_bytes"]
    assert result.report["model_bytes"] < {"fp16": 0.6, "int8": 0.4}[precision] * fp32_size


@needs_converter
def test_fp16_weights_are_half_and_the_softmax_tail_is_float(exported):
    model = onnx.load(exported("fp16").model_path)
    kinds = Counter(init.data_type for init in model.graph.initializer if len(init.dims) == 4)
    assert kinds[onnx.TensorProto.FLOAT16] > 0.8 * sum(kinds.values())  # all but the 1x1 logit heads
    producers = _producers(model)
    out = producers["probs"]
    assert out.op_type == "Add"  # the weighted average itself, not a Cast back from half
    softmax_inputs = [producers[n.input[0]] for n in model.graph.node if n.op_type == "Softmax"]
    assert len(softmax_inputs) == 2 and all(p.op_type in ("Conv", "Resize") for p in softmax_inputs)


def test_int8_is_qdq_with_preprocessing_heads_and_average_in_float(exported):
    model = onnx.load(exported("int8").model_path)
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["QuantizeLinear"] > 50 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    producers = _producers(model)
    weights = {init.name for init in model.graph.initializer}
    # Tail: probs <- Add <- Mul <- Softmax <- (Resize <-) head Conv with float32 weights, no Q/DQ between.
    for softmax in (n for n in model.graph.node if n.op_type == "Softmax"):
        node = producers[softmax.input[0]]
        while node.op_type != "Conv":
            assert node.op_type not in ("QuantizeLinear", "DequantizeLinear")
            node = producers[node.input[0]]
        assert node.input[1] in weights  # a float initializer, not a DequantizeLinear output
    node, tail = producers["probs"], []
    while node.op_type != "Softmax":
        tail.append(node.op_type)
        node = producers[node.input[0]]
    assert set(tail) == {"Add", "Mul"}
    # Head: image -> Cast -> Sub -> Div in float, quantised only after normalisation.
    consumers = {name: [n for n in model.graph.node if name in n.input] for name in ("image",)}
    (cast,) = consumers["image"]
    chain = [cast]
    while chain[-1].op_type != "QuantizeLinear":
        (following,) = [n for n in model.graph.node if chain[-1].output[0] in n.input]
        chain.append(following)
    assert [n.op_type for n in chain] == ["Cast", "Sub", "Div", "QuantizeLinear"]


def test_int8_gate_uses_held_out_dataset_tiles(exported):
    gate = exported("int8").report["gates"]["int8"]
    kinds = Counter(s["kind"] for s in gate["samples"])
    assert kinds["dataset"] >= 1 and kinds["synthetic"] == 3 and kinds["random"] == 3
    assert list(gate["thresholds"]["gated_kinds"]) == ["synthetic", "dataset"]


@pytest.mark.parametrize("precision", ["fp32", FP16, "int8"])
def test_runtime_segments_with_every_precision(exported, precision):
    from bonemarrow.export.parity import synthetic_tiles

    model = open_model(exported(precision).model_path, provider="cpu")
    assert model.provider == "CPUExecutionProvider" and model.info.precision == precision
    segmenter = Segmenter(model, TilingConfig(tile=96))
    rgb = np.ascontiguousarray(synthetic_tiles(1, 150, 230, seed=5)[0].transpose(1, 2, 0))
    result = segmenter.segment(rgb)
    assert result.labels.shape == (150, 230) and result.labels.max() <= 3
    assert result.counts.sum() == 150 * 230
    probs = model.predict(np.ascontiguousarray(rgb[:96, :96].transpose(2, 0, 1)[None]))
    assert probs.shape == (1, 4, 96, 96) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)

"""The fp16 variant, meant for GPUs: half the file size and tensor-core speed.

Weights and the members' activations become float16; the graph's input stays
uint8 and its output stays float32 (keep_io_types), so the runtime feeds and
reads it exactly like the fp32 model. The preprocessing and the softmax/average
tail stay float32 (see graph_regions): this also sidesteps a converter quirk,
which retypes the uint8->float Cast's output without changing its `to` attribute.
"""
from __future__ import annotations

import warnings

import onnx

from bonemarrow.export.graph_regions import float_region


def convert_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of a checked fp32 graph (input uint8, output float32)."""
    from onnxconverter_common import float16

    model = onnx.ModelProto.FromString(model.SerializeToString())  # the converter edits in place
    with warnings.catch_warnings():
        # One warning per weight below fp16's smallest normal (clamped to +-1e-7): harmless for
        # such tiny weights and far too many to print; the parity gate measures the effect.
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            node_block_list=float_region(model),
            disable_shape_infer=False,
        )
    _float_outputs(converted)
    onnx.checker.check_model(converted)
    return converted


def _float_outputs(model: onnx.ModelProto) -> None:
    """Make every graph output float32 again.

    With keep_io_types the converter still ends the graph with a Cast to float16
    when the last node is one it was told to keep in float32 (the weighted
    average), and declares the output float16. That Cast is dropped (or turned
    into a cast to float32 when its input really is half).
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    half_tensors = {
        v.name for v in list(graph.value_info) + list(graph.input)
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    }
    for output in graph.output:
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        cast = producer.get(output.name)
        if cast is None or cast.op_type != "Cast":
            continue
        to = next(a for a in cast.attribute if a.name == "to")
        if to.i != onnx.TensorProto.FLOAT16:
            continue
        source = cast.input[0]
        if source in half_tensors or source not in producer:
            to.i = onnx.TensorProto.FLOAT
            continue
        feeder = producer[source]
        feeder.output[list(feeder.output).index(source)] = output.name
        for node in graph.node:  # anything else reading the float32 tensor now reads the output
            for index, name in enumerate(node.input):
                if name == source:
                    node.input[index] = output.name
        graph.node.remove(cast)
        kept = [v for v in graph.value_info if v.name != source]
        del graph.value_info[:]
        graph.value_info.extend(kept)

"""The fp16 variant, meant for GPUs: half the file size and tensor-core speed.

Weights and the members' activations become float16; the graph's input stays
uint8 and its output stays float32 (keep_io_types), so the runtime feeds and
reads it exactly like the fp32 model. The preprocessing and the softmax/average
tail stay float32 (see graph_regions): this also sidesteps a converter quirk,
which retypes the uint8->float Cast's output without changing its `to` attribute.
"""
from __future__ import annotations

import onnx

from bonemarrow.export.graph_regions import float_region


def convert_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of a checked fp32 graph (input uint8, output float32)."""
    from onnxconverter_common import float16

    model = onnx.ModelProto.FromString(model.SerializeToString())  # the converter edits in place
    converted = float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        node_block_list=float_region(model),
        disable_shape_infer=False,
    )
    onnx.checker.check_model(converted)
    return converted

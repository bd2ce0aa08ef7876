"""Trace the PyTorch ensemble into ONE fused ONNX graph and tidy it.

The graph holds everything between the uint8 picture and the class
probabilities (preprocessing, both members, softmax, weighted average), so the
runtime needs no PyTorch and cannot get the normalisation constants wrong.

Opset 17: it is the newest opset the TorchScript exporter (dynamo=False) covers
well, every onnxruntime >= 1.14 runs it on CPU, CUDA and TensorRT, and
onnxruntime.quantization and onnxconverter-common both handle it. Nothing in the
ensemble needs a newer operator.
"""
from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

import onnx
import torch

from bonemarrow.runtime.contract import INPUT_NAME, OUTPUT_NAME
from bonemarrow.runtime.errors import first_line

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
# Axis 1 stays fixed: 3 colour channels in, 4 classes out.
DYNAMIC_AXES = {
    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
    OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
}


@dataclass
class GraphExport:
    """An exported graph and how it was tidied (kept for the parity report)."""

    model: onnx.ModelProto
    simplified: bool
    simplify_note: str | None


def trace_to_onnx(model: torch.nn.Module, *, divisor: int, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Run torch.onnx.export (TorchScript path) with dynamic batch, height and width.

    The example input is deliberately batch 2 and non-square: if some module bakes
    a traced size into the graph, the parity gate's other shapes will expose it.
    """
    model = model.eval()
    example = torch.randint(0, 256, (2, 3, 3 * divisor, 2 * divisor), dtype=torch.uint8)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns about its own deprecation and about traced
        # shape arithmetic; the gate, not these warnings, decides whether the graph is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=DYNAMIC_AXES,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def io_dims(model: onnx.ModelProto) -> dict[str, list[str | int]]:
    """Each graph input's and output's dims: a name for a symbolic dim, an int for a fixed one."""
    dims = {}
    for value in list(model.graph.input) + list(model.graph.output):
        shape = value.type.tensor_type.shape
        dims[value.name] = [d.dim_param if d.dim_param else d.dim_value for d in shape.dim]
    return dims


def has_dynamic_io(model: onnx.ModelProto) -> bool:
    """True when batch, height and width of `image` and `probs` are all symbolic."""
    dims = io_dims(model)
    for name in (INPUT_NAME, OUTPUT_NAME):
        shape = dims.get(name)
        if shape is None or len(shape) != 4:
            return False
        if any(not isinstance(shape[axis], str) for axis in (0, 2, 3)):
            return False
    return True


def simplify(model: onnx.ModelProto) -> GraphExport:
    """onnxsim with dynamic shapes; keep the unsimplified graph if it fails or fixes a dim."""
    import onnxsim

    try:
        simplified, ok = onnxsim.simplify(model, check_n=0)
    except Exception as error:  # onnxsim raises many kinds; any of them means "keep the original"
        note = f"onnxsim failed ({first_line(error, with_type=True)}); kept the unsimplified graph"
        log.warning(note)
        return GraphExport(model, False, note)
    if not ok:
        note = "onnxsim reported a failed self-check; kept the unsimplified graph"
    elif not has_dynamic_io(simplified):
        note = f"onnxsim fixed a dynamic dim ({io_dims(simplified)}); kept the unsimplified graph"
    else:
        return GraphExport(simplified, True, None)
    log.warning(note)
    return GraphExport(model, False, note)


def export_graph(model: torch.nn.Module, *, divisor: int, opset: int = DEFAULT_OPSET) -> GraphExport:
    """Trace, simplify and check: the fp32 graph every precision starts from."""
    traced = trace_to_onnx(model, divisor=divisor, opset=opset)
    if not has_dynamic_io(traced):
        raise RuntimeError(f"exported graph lost its dynamic axes: {io_dims(traced)}")
    result = simplify(traced)
    onnx.checker.check_model(result.model)
    return result

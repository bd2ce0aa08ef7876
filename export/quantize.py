"""The int8 variant: static QDQ quantisation for CPUs with onnxruntime.quantization.

Static (not dynamic) because convolutions dominate and only static quantisation
gives onnxruntime integer convolutions; QDQ format because it is the one the
CPU, CUDA and TensorRT providers all fuse. Activations uint8 and weights int8
per channel: the U8S8 path is onnxruntime's fast one on x86 (VNNI) and ARM, and
per-channel weight scales keep thin DeepLab/U-Net layers accurate. Ranges come
from MinMax calibration on dataset tiles. Preprocessing and the softmax /
weighted-average tail are excluded (graph_regions.float_region) so the output
stays a float32 probability map.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx

from bonemarrow.export.graph_regions import float_region
from bonemarrow.export.onnx_export import INPUT_NAME

log = logging.getLogger(__name__)


class _TileReader:
    """onnxruntime's CalibrationDataReader protocol over a stack of uint8 tiles."""

    def __init__(self, tiles: np.ndarray):
        self._tiles = iter(tiles)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tile = next(self._tiles, None)
        return None if tile is None else {INPUT_NAME: tile[None]}

    def rewind(self) -> None:  # the MinMax calibrator reads once; required by newer protocols only
        pass


@contextlib.contextmanager
def _working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def quantize_int8(model: onnx.ModelProto, calibration_tiles: np.ndarray) -> onnx.ModelProto:
    """A QDQ int8 copy of a checked fp32 graph, calibrated on `calibration_tiles` [N,3,H,W] uint8."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_tiles) == 0:
        raise ValueError("int8 quantisation needs at least one calibration tile")
    with tempfile.TemporaryDirectory(prefix="bm-int8-") as work:
        work_dir = Path(work)
        fp32_path, prepared_path, int8_path = (work_dir / n for n in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(model, fp32_path)
        # Shape inference + basic graph optimisation: the quantiser works better on a folded graph.
        # Symbolic inference cannot always resolve the dynamic H/W through Resize; then ONNX's own
        # shape inference is enough (the quantiser needs ranks and channel counts, not H and W).
        # quant_pre_process leaves scratch files (sym_shape_infer_temp.onnx and its external
        # data) in the current folder: run it inside the temporary one.
        with _working_directory(work_dir):
            try:
                quant_pre_process(str(fp32_path), str(prepared_path), auto_merge=True, guess_output_rank=True)
            except Exception as error:
                log.info("symbolic shape inference failed (%s); using ONNX shape inference only", error)
                quant_pre_process(str(fp32_path), str(prepared_path), skip_symbolic_shape=True)
        prepared = onnx.load(prepared_path)
        keep_float = float_region(prepared)
        onnx.save(prepared, prepared_path)  # float_region may have named unnamed nodes
        quantize_static(
            str(prepared_path),
            str(int8_path),
            _TileReader(calibration_tiles),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            nodes_to_exclude=keep_float,
            calibrate_method=CalibrationMethod.MinMax,
        )
        quantized = onnx.load(int8_path)
    onnx.checker.check_model(quantized)
    return quantized

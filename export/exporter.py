"""Checkpoint -> gated ONNX model on disk: the work behind `bm-export`.

Order of events, chosen so that nothing half-made ever sits under the
requested name: check the output folder is writable, load the checkpoint,
export the fp32 graph, build the requested precision, run the parity gate(s)
in memory, and only then write the model (temp file + rename) and its report.
A failed gate writes NAME.failed-parity.json instead and leaves any earlier
model of that name untouched.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from bonemarrow.export import parity
from bonemarrow.export.calibration import DatasetError
from bonemarrow.export.metadata import attach_metadata, build_metadata, file_sha256
from bonemarrow.export.onnx_export import DEFAULT_OPSET, INPUT_NAME, export_graph
from bonemarrow.runtime.atomic import write_bytes_atomic
from bonemarrow.runtime.cli.common import EXIT_FAILED, EXIT_USAGE
from bonemarrow.runtime.errors import first_line
from bonemarrow.runtime.json_io import write_json_atomic
from bonemarrow.training.models.registry import DEFAULT_TILE, ConfigError, check_tile

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


class ExportError(RuntimeError):
    """The export could not be made: one line naming the culprit. `exit_code` is bm-export's exit status."""

    exit_code = EXIT_FAILED  # the export itself failed (ONNX export, conversion, contract)


class UnusableInput(ExportError):
    """A checkpoint, output path, dataset or option that cannot be used (exit 2, like a usage error)."""

    exit_code = EXIT_USAGE


@dataclass
class ExportOptions:
    precision: str = "fp32"
    opset: int = DEFAULT_OPSET
    tile: int | None = None  # None: the checkpoint config's tile, else DEFAULT_TILE
    calibration: Path | None = None
    calibration_tiles: int = 32
    calibration_size: int = 256
    expected_preset: str | None = None
    shapes: Sequence[tuple[int, int, int]] = parity.DEFAULT_SHAPES
    thresholds: dict[str, parity.Thresholds] = field(default_factory=dict)
    seed: int = 0
    quiet: bool = True
    threads: int | None = None  # CPU threads for PyTorch and onnxruntime; None: their defaults (all cores)


@dataclass
class ExportResult:
    passed: bool
    model_path: Path | None  # None when the gate failed and nothing was written
    report_path: Path
    report: dict[str, Any]


def report_paths(output: Path) -> tuple[Path, Path]:
    """(NAME.parity.json, NAME.failed-parity.json) beside NAME.onnx."""
    stem = output.name[: -len(".onnx")] if output.name.endswith(".onnx") else output.name
    return output.with_name(f"{stem}.parity.json"), output.with_name(f"{stem}.failed-parity.json")


def check_writable(output: Path) -> None:
    """Fail before any slow work if the model cannot be written where asked (creating nothing)."""
    if output.is_dir():
        raise UnusableInput(f"{output}: is a folder; give a file name such as {output / 'model.onnx'}")
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders still to create are made when the model is written
    if not folder.is_dir():
        raise UnusableInput(f"{output}: cannot write there ({folder} is not a folder)")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{output.name}.", suffix=".probe"):
            pass
    except OSError as error:
        raise UnusableInput(f"{output}: cannot write there ({error.strerror or error})") from None


def _session(model_bytes: bytes, providers: Sequence[str], threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the quantised graph's benign fusion notices are not for users
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model_bytes, options, providers=list(providers))


def _gate_providers(precision: str) -> list[str]:
    """fp16 is judged on a GPU provider when there is one: that is where it will run."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if precision == "fp16":
        gpu = [p for p in GPU_PROVIDERS if p in available]
        if gpu:
            return [gpu[0], "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class _Progress:
    """A tqdm bar over gate steps, silent with quiet=True."""

    def __init__(self, total: int, quiet: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, disable=quiet, unit="step", leave=False)

    def phase(self, text: str) -> None:
        self.bar.set_description(text)

    def step(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _references(
    model: torch.nn.Module, samples: Sequence[parity.Sample], progress: _Progress, threads: int | None
) -> list[np.ndarray]:
    progress.phase("PyTorch reference")
    previous = torch.get_num_threads()
    if threads:
        # On a busy machine PyTorch's OpenMP threads can wait on each other for seconds per call.
        torch.set_num_threads(threads)
    out = []
    try:
        with torch.inference_mode():
            for sample in samples:
                out.append(model(torch.from_numpy(sample.image)).float().numpy())
                progress.step()
    finally:
        torch.set_num_threads(previous)
    return out


def _run_gate(
    precision: str,
    model: onnx.ModelProto,
    samples: Sequence[parity.Sample],
    references: Sequence[np.ndarray],
    thresholds: parity.Thresholds | None,
    progress: _Progress,
    threads: int | None = None,
) -> parity.GateReport:
    progress.phase(f"parity gate {precision}")
    providers = _gate_providers(precision)
    try:
        session = _session(model.SerializeToString(), providers, threads)
    except Exception as error:  # onnxruntime reports missing kernels as several exception types
        where = "CUDAExecutionProvider (onnxruntime-gpu) on an NVIDIA GPU" if precision == "fp16" else "CPUExecutionProvider"
        return parity.not_runnable(
            precision,
            f"{precision} model cannot run on {providers[0]} here ({first_line(error, with_type=True)}); it is meant for {where}: "
            "run bm-export on such a machine to gate it",
        )
    used = session.get_providers()[0]

    def predict(image: np.ndarray) -> np.ndarray:
        return session.run(None, {INPUT_NAME: image})[0]

    return parity.evaluate(
        precision, samples, references, predict, thresholds=thresholds, provider=used, progress=progress.step
    )


def _held_out_samples(options: ExportOptions, divisor: int) -> list[parity.Sample]:
    """Two batches of val/test tiles from the calibration dataset, if there is one."""
    from bonemarrow.export.calibration import HELD_OUT_SPLITS, sample_tiles

    if options.calibration is None:
        return []
    size = parity.round_up(options.calibration_size, divisor)
    tiles = sample_tiles(options.calibration, splits=HELD_OUT_SPLITS, count=4, height=size, width=size,
                         seed=options.seed + 1)
    return [parity.Sample("dataset", tiles[i : i + 2]) for i in range(0, len(tiles), 2)]


def _calibration_tiles(options: ExportOptions, divisor: int) -> np.ndarray:
    from bonemarrow.export.calibration import CALIBRATION_SPLITS, sample_tiles

    if options.calibration is None:
        raise UnusableInput("int8 needs --calibration DATASET (a dataset folder with manifest.json)")
    size = parity.round_up(options.calibration_size, divisor)
    tiles = sample_tiles(options.calibration, splits=CALIBRATION_SPLITS, count=options.calibration_tiles,
                         height=size, width=size, seed=options.seed)
    if len(tiles) == 0:
        tiles = sample_tiles(options.calibration, splits=("train", "val", "test", None), count=options.calibration_tiles,
                             height=size, width=size, seed=options.seed)
        log.warning("%s: no train-split image of at least %dx%d; calibrating on every split",
                    options.calibration, size, size)
    if len(tiles) == 0:
        raise UnusableInput(f"{options.calibration}: no image is at least {size}x{size} pixels to calibrate on")
    return tiles


def _variant(
    options: ExportOptions, fp32: onnx.ModelProto, calibration: np.ndarray | None, progress: _Progress
) -> onnx.ModelProto:
    """The fp16 or int8 graph derived from the checked fp32 one."""
    if options.precision == "int8":
        progress.phase(f"calibrate int8 on {len(calibration)} tiles")
    else:
        progress.phase("convert fp16")
    try:
        if options.precision == "fp16":
            from bonemarrow.export.fp16 import convert_fp16

            return convert_fp16(fp32)
        from bonemarrow.export.quantize import quantize_int8

        return quantize_int8(fp32, calibration)
    except Exception as error:
        raise ExportError(
            f"{options.precision} conversion failed: {first_line(error, with_type=True)}"
        ) from error


def _check_contract(data: bytes, where: str, providers: Sequence[str]) -> None:
    """The runtime's own contract check on the final bytes: what it would refuse is never written."""
    from bonemarrow.runtime.contract import METADATA_KEY, ModelContractError, check_io, parse_metadata

    try:
        session = _session(data, providers)
        check_io(session, where)
        parse_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), where)
    except ModelContractError as error:
        raise ExportError(f"exported model breaks the runtime contract: {error}") from None


def _summary(report: parity.GateReport) -> dict[str, Any]:
    values = {
        "passed": report.passed,
        "label_agreement": report.label_agreement,
        "max_abs_prob_diff": report.max_abs_prob_diff,
        "density_diff": report.density_diff,
        "worst_tile_density_diff": report.worst_tile_density_diff,
        "provider": report.provider,
    }
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def export_model(
    model: torch.nn.Module,
    output: str | os.PathLike,
    options: ExportOptions | None = None,
    *,
    preset: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_sha256: str | None = None,
    tile: int | None = None,
) -> ExportResult:
    """Export an in-memory ensemble (uint8 [B,3,H,W] -> probs [B,4,H,W]) behind the parity gate."""
    options = options or ExportOptions()
    output = Path(output)
    if options.precision not in parity.THRESHOLDS:
        raise UnusableInput(f"unknown precision {options.precision!r}; choose from {sorted(parity.THRESHOLDS)}")
    check_writable(output)
    model = model.eval()
    divisor = int(model.divisor)
    tile = options.tile or tile or DEFAULT_TILE
    try:
        tile = check_tile(tile)
    except ConfigError as error:
        raise UnusableInput(str(error)) from None
    if tile % divisor:
        raise UnusableInput(f"tile {tile} is not a multiple of the model's divisor {divisor}")

    samples = parity.build_samples(divisor, shapes=options.shapes, seed=options.seed)
    try:
        samples += _held_out_samples(options, divisor)
        calibration = _calibration_tiles(options, divisor) if options.precision == "int8" else None
    except DatasetError as error:
        raise UnusableInput(str(error)) from None
    gates = ["fp32"] + ([options.precision] if options.precision != "fp32" else [])
    progress = _Progress(total=len(samples) * (1 + len(gates)) + 2, quiet=options.quiet)
    try:
        progress.phase("export fp32 graph")
        try:
            graph = export_graph(model, divisor=divisor, opset=options.opset)
        except Exception as error:
            raise ExportError(f"ONNX export failed: {first_line(error, with_type=True)}") from error
        progress.step()
        candidates = {"fp32": graph.model}
        if options.precision != "fp32":
            candidates[options.precision] = _variant(options, graph.model, calibration, progress)
        progress.step()
        references = _references(model, samples, progress, options.threads)
        reports = {
            name: _run_gate(name, candidates[name], samples, references, options.thresholds.get(name), progress,
                            options.threads)
            for name in gates
        }
    finally:
        progress.close()

    final = candidates[options.precision]
    passed = all(r.passed for r in reports.values())
    member_weights = [float(w) for w in torch.as_tensor(model.member_weights).flatten().tolist()]
    meta = build_metadata(
        precision=options.precision,
        tile=tile,
        divisor=divisor,
        member_names=list(model.member_names),
        member_weights=member_weights,
        preset=preset,
        checkpoint_sha256=checkpoint_sha256,
        opset=options.opset,
        extra={"parity": {name: _summary(r) for name, r in reports.items()}},
    )
    attach_metadata(final, meta)
    data = final.SerializeToString()
    if passed:
        _check_contract(data, str(output), _gate_providers(options.precision))
    ok_path, failed_path = report_paths(output)
    report = {
        "model": str(output),
        "written": passed,
        "passed": passed,
        "precision": options.precision,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_sha256": checkpoint_sha256,
        "preset": preset,
        "opset": options.opset,
        "simplified": graph.simplified,
        "simplify_note": graph.simplify_note,
        "model_bytes": len(data),
        "model_sha256": hashlib.sha256(data).hexdigest() if passed else None,
        "metadata": meta,
        "gates": {name: r.to_dict() for name, r in reports.items()},
    }
    if not passed:
        write_json_atomic(failed_path, report)
        return ExportResult(False, None, failed_path, report)
    write_bytes_atomic(output, data)
    write_json_atomic(ok_path, report)
    if failed_path.exists():
        failed_path.unlink()  # an earlier failure's report no longer describes this name
    return ExportResult(True, output, ok_path, report)


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike, options: ExportOptions | None = None) -> ExportResult:
    """Load a checkpoint (CPU- or GPU-saved; always mapped to CPU) and export it."""
    from bonemarrow.training.checkpoint import CheckpointError, load_checkpoint

    options = options or ExportOptions()
    checkpoint = Path(checkpoint)
    check_writable(Path(output))
    try:
        model, config = load_checkpoint(checkpoint, map_location="cpu")
    except CheckpointError as error:
        raise UnusableInput(str(error)) from None
    preset = config.get("preset")
    if options.expected_preset and preset != options.expected_preset:
        raise UnusableInput(f"{checkpoint}: holds a {preset!r} model, not the requested preset {options.expected_preset!r}")
    return export_model(
        model,
        output,
        options,
        preset=preset,
        checkpoint=checkpoint,
        checkpoint_sha256=file_sha256(checkpoint),
        tile=config.get("tile"),
    )

"""The models a bench run compares: one PyTorch ensemble and its ONNX variants, same weights.

Weights come from a checkpoint when one is given; otherwise an untrained model is
built from the preset (latency does not depend on the weights; accuracy figures
are then marked "untrained"). ONNX models given on the command line are used as
they are; every precision still missing is exported from the same PyTorch model
into a scratch folder through bonemarrow.export. The export's parity gate is
made report-only here: the bench measures parity itself, and an untrained
model's int8 variant would otherwise be refused.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bonemarrow.runtime.errors import first_line
from bonemarrow.training.models.registry import DEFAULT_TILE


@dataclass
class ModelSet:
    preset: str
    torch_model: object  # bonemarrow.training.models.Ensemble, in eval mode
    trained: bool
    source: str  # checkpoint path, or "untrained <preset>"
    tile: int
    divisor: int
    overrides: dict = field(default_factory=dict)
    onnx: dict[str, Path] = field(default_factory=dict)  # precision -> model file
    onnx_origin: dict[str, str] = field(default_factory=dict)  # precision -> "given" | "exported"
    missing: dict[str, str] = field(default_factory=dict)  # precision -> why there is none
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"preset": self.preset, "trained": self.trained, "source": self.source, "tile": self.tile,
                "divisor": self.divisor, "overrides": self.overrides,
                "onnx": {p: {"path": str(path), "origin": self.onnx_origin[p]} for p, path in self.onnx.items()},
                "missing": self.missing, "notes": self.notes}


def torch_model(preset: str, checkpoint: str | Path | None = None, overrides: dict | None = None
                ) -> tuple[object, bool, str, int, str]:
    """(model, trained, source, tile, preset) from a checkpoint or an untrained preset."""
    import torch

    if checkpoint is not None:
        from bonemarrow.training.checkpoint import load_checkpoint

        model, config = load_checkpoint(checkpoint, map_location="cpu")
        tile = int(config.get("tile") or DEFAULT_TILE)
        return model.eval(), True, str(checkpoint), tile, str(config.get("preset", preset))
    from bonemarrow.training.models import build_model

    torch.manual_seed(0)
    model = build_model(preset, **(overrides or {})).eval()
    return model, False, f"untrained {preset}", DEFAULT_TILE, preset


def torch_predict(model, device: str = "cpu", precision: str = "fp32"):
    """The tiler's predict callable over a PyTorch model: uint8 [B,3,h,w] -> float32 [B,4,h,w].

    fp16 is CUDA autocast (convolutions in half, softmax and the average in float32),
    which is how a PyTorch user would run half precision; the CPU has no fast fp16 path.
    """
    import torch

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"PyTorch precision must be fp32 or fp16, got {precision!r}")
    half = precision == "fp16"
    if half and not str(device).startswith("cuda"):
        raise ValueError("PyTorch fp16 is measured on CUDA only")

    def predict(batch: np.ndarray) -> np.ndarray:
        autocast = torch.autocast("cuda", dtype=torch.float16) if half else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            out = model(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
        return out.float().cpu().numpy()

    return predict


def calibration_dataset(root: Path, count: int, width: int, height: int, seed: int = 11) -> Path:
    """A small synthetic dataset folder (all train split) for int8 calibration."""
    from bonemarrow.training.dataset_io import write_item, write_manifest
    from bonemarrow.training.synth import generate_biopsy, image_rng

    items = []
    for index in range(count):
        rgb, labels = generate_biopsy(image_rng(seed, index), width, height)
        item = write_item(root, f"calib{index}", rgb, labels, source="bm-bench synthetic")
        items.append({**item, "split": "train"})
    write_manifest(root, items)
    return root


def onnx_precision(path: Path) -> tuple[str, dict]:
    """(precision, metadata) of a contract-conforming ONNX model."""
    from bonemarrow.runtime.model import open_model

    info = open_model(path, "cpu", 1).info
    return info.precision, info.metadata


def export_missing(models: ModelSet, precisions: list[str], workdir: Path, *, quick: bool, quiet: bool) -> None:
    """Export every requested precision not yet in `models.onnx` (report-only parity gate)."""
    from bonemarrow.export.exporter import ExportError, ExportOptions, export_model
    from bonemarrow.export.parity import Thresholds

    todo = [p for p in precisions if p not in models.onnx]
    if not todo:
        return
    calibration = None
    if "int8" in todo:
        size = min(256, models.tile) if not quick else min(128, models.tile)
        calibration = calibration_dataset(workdir / f"calib-{models.preset}", 2 if quick else 6,
                                          max(2 * size, 64), max(size, 32))
    report_only = Thresholds(min_label_agreement=0.0)  # measured, never refused: the bench reports parity itself
    shapes = ((1, 64, 64),) if quick else ((2, 128, 192), (1, 224, 160))
    for precision in todo:
        out = workdir / f"{models.preset}-{precision}.onnx"
        options = ExportOptions(
            precision=precision, tile=models.tile, calibration=calibration if precision == "int8" else None,
            calibration_tiles=4 if quick else 16, calibration_size=min(128 if quick else 256, models.tile),
            shapes=shapes, thresholds={"fp32": report_only, precision: report_only}, quiet=quiet)
        try:
            result = export_model(models.torch_model, out, options, preset=models.preset)
        except (ExportError, RuntimeError, ValueError, ImportError) as error:
            models.missing[precision] = f"export failed: {first_line(error)}"
            continue
        if not result.passed or result.model_path is None:
            models.missing[precision] = f"export wrote no model (see {result.report_path})"
            continue
        models.onnx[precision] = result.model_path
        models.onnx_origin[precision] = "exported"


def load_models(preset: str, *, checkpoint: str | Path | None, onnx_paths: list[Path], precisions: list[str],
                workdir: Path, overrides: dict | None = None, quick: bool = False, quiet: bool = True) -> ModelSet:
    """The PyTorch model and one ONNX model per requested precision, all with the same weights."""
    model, trained, source, tile, preset = torch_model(preset, checkpoint, overrides)
    models = ModelSet(preset=preset, torch_model=model, trained=trained, source=source, tile=tile,
                      divisor=int(model.divisor), overrides=dict(overrides or {}))
    checkpoint_sha = None
    if checkpoint is not None:
        from bonemarrow.runtime.contract import file_sha256

        checkpoint_sha = file_sha256(checkpoint)
    for path in onnx_paths:
        precision, meta = onnx_precision(Path(path))
        if precision in models.onnx:
            models.notes.append(f"{path}: a second {precision} model; kept {models.onnx[precision]}")
            continue
        source_sha = meta.get("source_checkpoint_sha256")
        if checkpoint_sha and source_sha and source_sha != checkpoint_sha:
            models.notes.append(f"{path}: exported from another checkpoint (sha256 {source_sha[:12]}...), "
                                "so its figures are not the same weights")
        if meta.get("tile"):
            models.tile = int(meta["tile"])
        models.onnx[precision] = Path(path)
        models.onnx_origin[precision] = "given"
    export_missing(models, precisions, workdir, quick=quick, quiet=quiet)
    return models


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict:
    """KEY=VALUE pairs (VALUE as JSON when it parses, else a string; commas make a list for `members`)."""
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"override {pair!r} is not KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value.split(",") if key == "members" else value
        overrides[key.strip()] = parsed
    return overrides

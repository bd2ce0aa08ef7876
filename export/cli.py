"""bm-export: checkpoint -> one fused, parity-gated ONNX model for the runtime.

Exit codes (as every bm-* command): 0 written; 1 the export itself failed (ONNX
export, fp16/int8 conversion, the runtime contract); 2 usage error or unusable
input (missing, corrupt or out-of-bounds checkpoint, wrong preset, unwritable
output, unusable calibration dataset, a missing `export` extra); 3 the parity
gate failed (nothing written under the name; NAME.failed-parity.json says why).
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from bonemarrow.runtime.cli.common import (CONTEXT_SETTINGS, EXIT_GATE, choice, fail, quiet_option, require,
                                           threads_option)
from bonemarrow.runtime.contract import PRECISIONS
from bonemarrow.training.models.registry import DEFAULT_TILE, PRESETS, TILE_RANGE

HELP = """Export CHECKPOINT to one ONNX graph (uint8 image -> probs) behind a parity gate.

\b
Exit codes: 0 written; 1 the export failed; 2 usage error or unusable
checkpoint, output or dataset (or a missing extra); 3 the parity gate failed.
"""


def require_export_extras(precision: str) -> None:
    """One line naming the extra to install, before anything imports torch or onnx."""
    for module in ("torch", "torchvision", "onnx", "onnxsim"):
        require(module, "export", "bm-export")
    if precision == "fp16":
        require("onnxconverter_common", "export", "bm-export --precision fp16")
    require("onnxruntime", "cpu", "bm-export's parity gate")


@click.command(help=HELP, context_settings=CONTEXT_SETTINGS)
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Model file to write, e.g. models_onnx/NAME.onnx (its gate report goes beside it).")
@click.option("--precision", type=choice(PRECISIONS), default="fp32", show_default=True,
              help="fp16 is for GPUs; int8 (static QDQ) is for CPUs and needs --calibration.")
@click.option("--opset", type=click.IntRange(13, 21), default=17, show_default=True, help="ONNX opset.")
@click.option("--tile", type=click.IntRange(*TILE_RANGE), default=None,
              help=f"Tile size recorded for the runtime [default: the checkpoint's, else {DEFAULT_TILE}].")
@click.option("--calibration", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset folder (manifest.json, images/, labels/): int8 calibration and held-out gate tiles.")
@click.option("--calibration-tiles", type=click.IntRange(1, 4096), default=32, show_default=True)
@click.option("--calibration-size", type=click.IntRange(32, 2048), default=256, show_default=True,
              help="Side of the calibration and held-out gate tiles (rounded up to the divisor).")
@click.option("--preset", type=choice(sorted(PRESETS)), default=None,
              help="Refuse the checkpoint unless it holds this preset.")
@threads_option(help="CPU threads for PyTorch and onnxruntime during the gate [default: all cores].")
@quiet_option(help="No progress bar.")
def main(checkpoint: Path, output: Path, precision: str, opset: int, tile: int | None, calibration: Path | None,
         calibration_tiles: int, calibration_size: int, preset: str | None, threads: int | None, quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    if precision == "int8" and calibration is None:
        raise click.UsageError("--precision int8 needs --calibration DATASET")
    require_export_extras(precision)
    from bonemarrow.export.exporter import ExportError, ExportOptions, export_checkpoint

    options = ExportOptions(
        precision=precision, opset=opset, tile=tile, calibration=calibration,
        calibration_tiles=calibration_tiles, calibration_size=calibration_size,
        expected_preset=preset, threads=threads, quiet=quiet,
    )
    try:
        result = export_checkpoint(checkpoint, output, options)
    except ExportError as error:
        fail(str(error), error.exit_code)
    for name, gate in result.report["gates"].items():
        click.echo(_gate_line(name, gate), err=not result.passed)
    if not result.passed:
        fail(f"parity gate failed; {output} not written; see {result.report_path}", EXIT_GATE)
    size_mb = result.report["model_bytes"] / 1e6
    click.echo(f"wrote {output} ({precision}, {size_mb:.1f} MB); gate report {result.report_path}")


def _gate_line(name: str, gate: dict) -> str:
    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    verdict = "pass" if gate["passed"] else "FAIL: " + "; ".join(gate["failures"])
    return (f"{name} gate on {gate['provider'] or 'no provider'}: labels {fmt(gate['label_agreement'], '.4%')}, "
            f"max |dprob| {fmt(gate['max_abs_prob_diff'], '.2e')}, "
            f"density diff {fmt(gate['density_diff'], '.4f')} (worst tile {fmt(gate['worst_tile_density_diff'], '.4f')}): "
            f"{verdict}")


if __name__ == "__main__":  # pragma: no cover
    main()
